"""What a change to a result tells a team's other systems (README "Result events").

An upload's answer is told once it is known, and again whenever it changes: `GIF classified` (a stage,
a person, or a reused result decided), `GIF not classified` (failed, skipped, undecided: the reason
says why) and `GIF deleted` (the upload is gone). Nothing is told for the steps on the way (`pending`),
for a rewrite that leaves the told answer as it was (a run's claim, a sidecar read again with the same
text, a rerun or a backfill that comes to the same answer), for the deletion of a key that never had a
result, or when a deleted upload's tombstone expires. Delivery is at least once and in no promised
order: `event_id` is the same for every delivery of one write of an answer, so a subscriber can drop
repeats, and `updated_at` orders the answers about one upload (the newest stands).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from gifcat.domain.model import Status
from gifcat.domain.result import DecidedBy, IsoTime, ResultItem

SOURCE = "gifcat"


class DetailType(StrEnum):
    CLASSIFIED = "GIF classified"
    NOT_CLASSIFIED = "GIF not classified"
    DELETED = "GIF deleted"


_DETAIL_TYPE = {
    Status.CLASSIFIED: DetailType.CLASSIFIED,
    Status.FAILED: DetailType.NOT_CLASSIFIED,
    Status.SKIPPED: DetailType.NOT_CLASSIFIED,
    Status.UNDECIDED: DetailType.NOT_CLASSIFIED,
    Status.DELETED: DetailType.DELETED,
}
TOLD = tuple(_DETAIL_TYPE)  # the statuses an event tells; template.yaml's stream filter names these


class ToldAnswer(BaseModel):
    """The part of a result that an event tells: a rewrite that keeps it for the same upload is not news."""

    model_config = ConfigDict(frozen=True)

    status: Status
    category: str | None = None
    labels: list[str] = []
    decided_by: DecidedBy | None = None
    reason: str | None = None


class ResultEventDetail(BaseModel):
    """The event's `detail`: which upload, and its answer (the result item holds the evidence)."""

    event_id: str  # the same for every delivery of this write of the answer: drop repeats by it
    uri: str  # s3://BUCKET/KEY, the result item's key
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    status: Status
    category: str | None = None
    labels: list[str] = []
    decided_by: DecidedBy | None = None
    confidence: float = 0.0
    reason: str | None = None
    taxonomy_version: str | None = None
    corrected_by: str | None = None  # a person's answer
    reused_from: str | None = None  # the result of the same bytes and metadata this one took
    updated_at: IsoTime
    # The answer told before this one about the same upload: the one a correction, a rerun, a backfill
    # or the sweep replaced, or the deleted upload's; None for an upload's first answer.
    previous: ToldAnswer | None = None


# The detail's fields that the result item holds under the same name.
_TOLD_AS_STORED = {
    "bucket", "key", "version_id", "etag", "status", "labels", "decided_by", "confidence", "reason",
    "taxonomy_version", "corrected_by", "reused_from", "updated_at",
}


class ResultEvent(BaseModel):
    detail_type: DetailType
    detail: ResultEventDetail

    @property
    def time(self) -> datetime:
        return self.detail.updated_at


def told(item: ResultItem) -> ToldAnswer | None:
    """What an event about this result says; None while it is on its way (pending)."""
    if item.status not in _DETAIL_TYPE:
        return None
    return ToldAnswer(status=item.status, category=item.primary, labels=item.labels,
                      decided_by=item.decided_by, reason=item.reason)


def told_before(old: ResultItem) -> ToldAnswer | None:
    """The answer a subscriber last heard about the upload `old` describes: its own, or, while a rerun
    holds it pending, the one the rerun took over (`replaces`)."""
    answer, was = told(old), old.replaces
    if answer is not None or was is None or was.status is None:
        return answer
    return ToldAnswer(status=was.status, category=was.primary, labels=was.labels or [],
                      decided_by=was.decided_by, reason=was.reason)


def result_event(old: ResultItem | None, new: ResultItem | None) -> ResultEvent | None:
    """The event a change from `old` to `new` (None: absent) tells, or None when it tells nothing."""
    if new is None:  # the item itself removed: a tombstone expiring, whose deletion was told
        return None
    answer = told(new)
    if answer is None:
        return None
    if new.status is Status.DELETED:
        # A deletion is about whatever upload the key held; with no item before it, nothing was told.
        if old is None:
            return None
        before = told_before(old)
    else:
        same_upload = old is not None and old.object_seq == new.object_seq and old.etag == new.etag
        before = told_before(old) if old is not None and same_upload else None
    if before == answer:
        return None
    digest = hashlib.sha256(
        "\x1f".join([new.pk, new.object_seq, new.etag or "", new.updated_at.isoformat(),
                     answer.model_dump_json()]).encode()
    ).hexdigest()[:32]
    detail = ResultEventDetail(event_id=digest, uri=new.pk, category=new.primary, previous=before,
                               **new.model_dump(include=_TOLD_AS_STORED))
    return ResultEvent(detail_type=_DETAIL_TYPE[new.status], detail=detail)
