"""The result item: one per S3 object, keyed by bucket and key; what a result says, not how a store
encodes it (the DynamoDB adapter builds its conditional writes from these fields).

The order of uploads is the S3 event sequencer (the only order AWS guarantees for one key; the local
embedded AWS stamps one too). Three writes keep it (gifcat.adapters.dynamodb):

- triage writes the result, or `pending` plus the execution it starts: only over an older upload's
  item, or over its own upload's unfinished one (a retried or repeated event);
- the state machine's Record finishes only the item its own execution owns: a newer upload's triage
  has replaced the `execution` attribute, so a stale execution cannot write;
- a console rerun takes the item over in place, keeping its order.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from gifcat.config import Prices
from gifcat.domain.costs import item_cost
from gifcat.domain.model import Classification, GifMetadata, StageName, StageTrace, Status

SCHEMA_VERSION = 2  # 2: object_seq is the S3 event sequencer; Record finishes only its own item
SEQ_WIDTH = 40  # sequencers are hex strings of varying length (18 on AWS today)
UNFINISHED = (Status.PENDING, Status.FAILED, Status.UNDECIDED)
# The statuses `gifcat rerun` looks for. A result in one of them also stores its status as `rerunnable`,
# the key of a sparse index of the results table, so that the few failed or stuck results among
# millions are found by a query, not a scan of the table.
RERUNNABLE = (Status.PENDING, Status.FAILED)


NO_SEQUENCER = "-"  # an event without a sequencer (not from S3), or a rerun of an unknown object
# `decided_by` of a person's correction: no machine write replaces it for the same upload.
HUMAN: Final = "human"
# Who decided a result: a stage of the cascade, or a person (`gifcat correct`).
DecidedBy = StageName | Literal["human"]
DECIDERS: Final = (*(stage.value for stage in StageName), HUMAN)  # every `decided_by`, cheapest first


def sortable_sequencer(sequencer: str | None) -> str:
    """S3's rule for comparing sequencers of one key: right-pad the shorter with zeros, then compare
    as strings. Upper-cased so that hex case cannot reorder; NO_SEQUENCER sorts before every one."""
    return sequencer.upper().ljust(SEQ_WIDTH, "0") if sequencer else NO_SEQUENCER


def _metadata_doc(metadata: GifMetadata) -> str:
    return json.dumps(metadata.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)


def metadata_digest(metadata: GifMetadata) -> str:
    """A short digest of the metadata that was read: part of what tells two uploads apart."""
    return hashlib.sha256(_metadata_doc(metadata).encode("utf-8")).hexdigest()[:16]


def content_key(ref: ObjectRef, metadata: GifMetadata, taxonomy_version: str | None) -> str | None:
    """What an upload is, for reusing a result: its bytes (ETag and size), its metadata and the taxonomy
    it is classified with. Equal keys, equal inputs to every stage. None when one of them is unknown.

    The ETag is the MD5 of the bytes for a single-part upload, of the parts' MD5s for a multipart one
    (the same bytes in other parts: another key, so a miss, never a wrong hit), and not a digest of the
    bytes under SSE-KMS or SSE-C (a new value each upload: a miss)."""
    if not (ref.etag and ref.size and taxonomy_version):
        return None
    doc = "\n".join((ref.etag, str(ref.size), taxonomy_version, _metadata_doc(metadata)))
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:32]


class ObjectRef(BaseModel):
    """The S3 object a result is about, and the version of it that was read."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None  # from the S3 event: orders the uploads of one key
    last_modified: datetime | None = None
    event_time: datetime | None = None

    @property
    def pk(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def object_seq(self) -> str:
        """Sorts like the uploads of this key: the event's sequencer, comparable as a string.

        Not the object's Last-Modified: it has one-second resolution in S3's headers, and for a
        multipart upload it is the time the upload started, not the order in which uploads landed.
        Reads use the object as it is now (head_object), so whichever event sorts last reads the
        last upload: its result is the one that stays.
        """
        return sortable_sequencer(self.sequencer)


# What triage writes: an upload's result, or `pending` while the state machine decides.
WriteKind = Literal["result", "pending"]


def now() -> datetime:
    return datetime.now(UTC)


# The fields that describe the answer (what Record sets); the rest describe the object and its metadata.
CLASSIFICATION_FIELDS = (
    "status",
    "reason",
    "primary",
    "labels",
    "scores",
    "decided_by",
    "confidence",
    "evidence",
    "taxonomy_version",
    "artefact_version",
    "models",
    "prompt_version",
    "timings_ms",
    "cost_usd",
    "cost",
    "stages",
    "execution",
    "updated_at",
    "rerunnable",
    "reused_from",
    "reused_cost_usd",
    "replaces",  # a rerun's, held while it is pending: Record removes it with the answer it writes
)


# A time as the result stores it: ISO 8601 with its offset (datetime.isoformat), parsed back on read.
IsoTime = Annotated[datetime, PlainSerializer(lambda at: at.isoformat(), return_type=str, when_used="json")]


class ResultAnswer(BaseModel):
    """The answer part of a result item: what triage writes and the state machine's Record sets.

    A field left None is unknown: it is not stored, and Record removes it from the item."""

    model_config = ConfigDict(extra="forbid")

    status: Status
    reason: str | None = None
    primary: str | None = None
    labels: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)  # every candidate of the deciding stage
    decided_by: DecidedBy | None = None
    confidence: float = 0.0
    evidence: list[str] = Field(default_factory=list)
    suspicious_text: bool = False  # text addressed to a classifier was cut out before any stage read it
    removed_text: list[str] | None = None
    taxonomy_version: str | None = None
    # The embedding stage's learned artefact: "bundled" (shipped), "v000003" (published by gifcat learn);
    # None when that stage did not run.
    artefact_version: str | None = None
    models: dict[str, str] = Field(default_factory=dict)  # model and version per stage
    prompt_version: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    cost_usd: float = 0.0
    cost: dict[str, float] | None = None  # llm_usd, lambda_usd, stepfunctions_usd, total_usd
    stages: list[StageTrace] = Field(default_factory=list)
    execution: str | None = None  # the state machine execution that owns (pending) or finished it
    updated_at: IsoTime
    # The result whose answer this one took (the same bytes and metadata: `reused_item`): its pk, or the
    # pk of the result that one took its answer from. None: the stages decided this upload themselves.
    reused_from: str | None = None
    # What deciding the answer it took cost (that result's cost_usd): what taking it saved.
    reused_cost_usd: float | None = None
    # Read back from the store and never set: stored() derives it from `status` (RERUNNABLE).
    rerunnable: str | None = Field(default=None, exclude=True)

    def stored(self) -> dict[str, Any]:
        """The fields as stored: JSON types, unknown (None or empty) fields left out, and `rerunnable`,
        the key of the index of failed and pending results, for those only."""
        fields = without_unknown(self.model_dump(mode="json", exclude_none=True))
        if self.status in RERUNNABLE:
            fields["rerunnable"] = self.status.value
        return fields


class MachineAnswer(BaseModel):
    """The machine's answer that a person's correction replaced (`corrected_from`): what a learner
    compares with the person's."""

    status: Status | None = None
    primary: str | None = None
    labels: list[str] | None = None
    decided_by: DecidedBy | None = None
    confidence: float | None = None
    reason: str | None = None
    taxonomy_version: str | None = None


def machine_answer(item: ResultItem) -> MachineAnswer:
    """The item's fields that say what was decided (unknown ones left None)."""
    return MachineAnswer(
        status=item.status,
        primary=item.primary,
        labels=item.labels or None,
        decided_by=item.decided_by,
        confidence=item.confidence,
        reason=item.reason or None,
        taxonomy_version=item.taxonomy_version,
    )


def taken_over(stored: ResultItem | None, etag: str | None) -> MachineAnswer | None:
    """The answer a rerun's pending item takes over from `stored` (a console rerun, a backfill child,
    the sweep), when it is about the same upload (same ETag): the rerun's answer is told with it as
    `previous`, and not told at all when it is the same. A rerun of a pending rerun keeps the answer
    that one took over; a deletion's tombstone (no ETag) is not an answer about the upload."""
    if stored is None or stored.etag is None or stored.etag != etag:
        return None
    if stored.status is Status.PENDING:
        return stored.replaces
    return None if stored.status is Status.DELETED else machine_answer(stored)


class ResultItem(ResultAnswer):
    """One result item per S3 object, keyed by pk = "s3://<bucket>/<key>" (README "The result item")."""

    pk: str
    schema_version: int = SCHEMA_VERSION
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None  # the S3 event sequencer of the upload this result is for
    object_seq: str  # its sortable form: the write condition
    last_modified: IsoTime | None = None
    metadata_digest: str | None = None
    # `content_key`: the key of the results table's index of results by what was classified, which
    # triage queries for a result to reuse.
    content_key: str | None = None
    title: str | None = None
    tags: list[str] | None = None
    description: str | None = None
    metadata_cut: list[str] | None = None  # what reading the metadata cut to fit gifcat's limits
    event_time: IsoTime | None = None
    # Set by a person's correction (decided_by human): who, when, and the machine's answer it replaced.
    corrected_by: str | None = None
    corrected_at: IsoTime | None = None
    corrected_from: MachineAnswer | None = None
    # Set by the state machine's Claim on a pending item: the run (its execution ARN) that goes on, and
    # when (as Step Functions writes times; gifcat.adapters.dynamodb.put_request compares it).
    run: str | None = None
    claimed_at: str | None = None
    # Set on a rerun's pending item (`taken_over`): the answer it took over, until Record writes its own.
    replaces: MachineAnswer | None = None
    # A deleted upload's result (status deleted) expires then (epoch seconds: the table's TTL attribute).
    expires_at: int | None = None


def classification_fields(
    classification: Classification,
    *,
    execution: str | None = None,
    at: datetime | None = None,
    prices: Prices | None = None,
) -> ResultAnswer:
    """The answer part of a result item for this classification."""
    cost = item_cost(classification.stages, prices) if prices is not None else None
    prompt_versions = [t.prompt_version for t in classification.stages if t.prompt_version]
    return ResultAnswer(
        status=classification.status,
        reason=classification.reason,
        primary=classification.primary,
        labels=classification.labels,
        scores=classification.scores,
        decided_by=classification.decided_by,
        confidence=classification.confidence,
        evidence=classification.evidence,
        suspicious_text=classification.suspicious_text,
        removed_text=classification.removed_text or None,
        taxonomy_version=classification.taxonomy_version,
        artefact_version=classification.artefact_version,
        models=classification.models(),
        prompt_version=prompt_versions[-1] if prompt_versions else None,
        timings_ms={t.stage.value: t.elapsed_ms for t in classification.stages},
        cost_usd=cost["total_usd"] if cost else round(classification.cost_usd, 8),
        cost=cost,
        stages=classification.stages,
        execution=execution,
        updated_at=at or now(),
    )


def deleted_item(ref: ObjectRef, reason: str, *, keep_days: int, at: datetime | None = None) -> ResultItem:
    """The result of a deleted (or expired) upload: a tombstone that orders after every upload of the
    key before the deletion (its event's sequencer), so that a late event of one of them cannot write
    a result for an object that is gone, and that expires `keep_days` later (the table's TTL)."""
    at = at or now()
    gone = Classification(status=Status.DELETED, reason=reason)
    item = result_item(ref.model_copy(update={"size": None, "etag": None}), gone, at=at)
    return item.model_copy(update={"expires_at": int((at + timedelta(days=keep_days)).timestamp())})


def without_unknown(item: dict[str, Any]) -> dict[str, Any]:
    """The item without its unknown (None or empty) fields: a result stores only what is known."""
    return {k: v for k, v in item.items() if v is not None and v != ""}


def result_item(
    ref: ObjectRef,
    classification: Classification,
    *,
    metadata: GifMetadata | None = None,
    execution: str | None = None,
    at: datetime | None = None,
    prices: Prices | None = None,
) -> ResultItem:
    """The result item for this object, as read, and this classification."""
    answer = classification_fields(classification, execution=execution, at=at, prices=prices)
    return ResultItem(
        **dict(answer),
        pk=ref.pk,
        bucket=ref.bucket,
        key=ref.key,
        version_id=ref.version_id,
        etag=ref.etag,
        size=ref.size,
        sequencer=ref.sequencer,
        object_seq=ref.object_seq,
        last_modified=ref.last_modified,
        metadata_digest=metadata_digest(metadata) if metadata is not None else None,
        # Only on what goes on past triage: the results a later upload may take (what triage decides,
        # it decides again, for less than the lookup), and no index write for the rest.
        content_key=(
            content_key(ref, metadata, classification.taxonomy_version)
            if metadata is not None and classification.status in (Status.PENDING, Status.UNDECIDED) else None
        ),
        # empty text is unknown: the store keeps no empty strings, so the item says None
        title=(metadata.title or None) if metadata else None,
        tags=list(metadata.tags) if metadata else None,
        description=(metadata.description or None) if metadata else None,
        metadata_cut=list(metadata.cut) or None if metadata else None,
        event_time=ref.event_time,
    )


REUSED_EVIDENCE = "reused: "  # the first evidence line of a result that took another's answer


def reusable(source: ResultItem, item: ResultItem) -> bool:
    """Whether `source`'s answer may stand for `item` (an upload triage left undecided): a finished,
    classified result of the same bytes, metadata and taxonomy version, whoever decided it (a person's
    answer too: it is about these exact bytes and words)."""
    return (
        source.status is Status.CLASSIFIED
        and source.primary is not None
        and item.content_key is not None
        and source.content_key == item.content_key
        and (source.etag, source.size, source.metadata_digest, source.taxonomy_version)
        == (item.etag, item.size, item.metadata_digest, item.taxonomy_version)
    )


def reused_item(item: ResultItem, source: ResultItem) -> ResultItem:
    """`item` (triage's result for an upload, undecided) answered with `source`'s answer (`reusable`).

    Its stages and cost stay its own (triage's: no run, no embedding, no LLM call); the answer, who
    decided it and with which models are the source's, and `reused_from` names the result that was
    decided (the source's own source, if it was reused too)."""
    origin = source.reused_from or source.pk
    # The decision's own evidence: a source that was itself reused has its "reused:" line replaced.
    decided = [e for e in source.evidence if not e.startswith(REUSED_EVIDENCE)]
    return item.model_copy(update={
        "status": Status.CLASSIFIED,
        "reason": None,
        "primary": source.primary,
        "labels": list(source.labels),
        "scores": dict(source.scores),
        "decided_by": source.decided_by,
        "confidence": source.confidence,
        "evidence": [
            f"{REUSED_EVIDENCE}the same bytes and metadata as {origin}, decided by {source.decided_by}",
            *decided,
        ],
        "artefact_version": source.artefact_version,
        "models": dict(source.models),
        "prompt_version": source.prompt_version,
        "reused_from": origin,
        "reused_cost_usd": source.reused_cost_usd if source.reused_from else source.cost_usd,
    })
