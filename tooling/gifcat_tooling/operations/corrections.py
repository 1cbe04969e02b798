"""A person's answer for one object: `gifcat correct s3://BUCKET/KEY --category C [--labels a,b]`.

The answer goes on the object's result item as `decided_by: human`. It is checked first and written
only when every check passes (nothing is written otherwise):
- the category and labels are in the taxonomy;
- the object exists, and the result item describes it as it is now (same ETag, and the version asked
  for, if any, is the current one): a result of an older upload is not corrected;
- the item has not changed between the check and the write (a conditional write).

The write rules in gifcat.adapters.dynamodb keep the answer: no machine write replaces a human answer
for the same upload (a repeated event, a run still going, a console rerun with force); a newer upload
is classified as usual and its result replaces the correction.

The answer is about these bytes and this metadata, so the other classified results of the same content
(the upload it copies, its other copies: README "Uploads seen before") take it too, naming the
corrected result in `reused_from`, unless a person corrected them (`spread`; not with `--this-only`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

from gifcat.application.ports import ObjectGone, ObjectSource
from gifcat.domain.model import Status
from gifcat.domain.result import HUMAN, ObjectRef, ResultItem, machine_answer, now, reusable, reused_item
from gifcat.domain.taxonomy import Taxonomy


class CorrectionError(ValueError):
    """The correction cannot be recorded; the message says why. Nothing was written."""


class CorrectionStore(Protocol):
    def get(self, pk: str) -> ResultItem | None: ...
    def correct(self, pk: str, fields: dict[str, Any], *, object_seq: str, etag: str | None) -> bool: ...
    def same_content(self, content_key: str, limit: int | None) -> Iterable[ResultItem]: ...
    def adopt(self, item: ResultItem, was: ResultItem) -> bool: ...


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise CorrectionError(f"{uri!r} is not an object URI: expected s3://BUCKET/KEY")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise CorrectionError(f"{uri!r} is not an object URI: expected s3://BUCKET/KEY")
    return bucket, key


def checked_labels(taxonomy: Taxonomy, category: str, labels: list[str] | None) -> list[str]:
    """The category first, then the other labels once each; every one must be a taxonomy category."""
    known = taxonomy.names
    if category not in known:
        raise CorrectionError(
            f"unknown category {category!r}: taxonomy {taxonomy.version} has {', '.join(known)}"
        )
    out = [category]
    for label in labels or []:
        if label not in known:
            raise CorrectionError(
                f"unknown label {label!r}: taxonomy {taxonomy.version} has {', '.join(known)}"
            )
        if label not in out:
            out.append(label)
    return out


def correct(
    uri: str,
    category: str,
    labels: list[str] | None,
    *,
    taxonomy: Taxonomy,
    source: ObjectSource,
    store: CorrectionStore,
    version_id: str | None = None,
    by: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Record the answer and return the fields written; CorrectionError (nothing written) otherwise."""
    answer = checked_labels(taxonomy, category, labels)
    bucket, key = parse_s3_uri(uri)
    asked = ObjectRef(bucket=bucket, key=key, version_id=version_id)
    try:
        current, _ = source.head(ObjectRef(bucket=bucket, key=key))
        if version_id:
            source.head(asked)  # the version exists...
    except ObjectGone:
        what = f"version {version_id} of {uri}" if version_id else uri
        raise CorrectionError(f"{what} does not exist") from None
    if version_id and current.version_id != version_id:  # ...but is not the current one
        raise CorrectionError(
            f"version {version_id} of {uri} is an older version (the current one is {current.version_id}); "
            "only the current version's result can be corrected"
        )
    stored = store.get(asked.pk)
    if stored is None:
        raise CorrectionError(f"no result for {uri}: it has not been classified (upload it, or backfill)")
    if stored.status is Status.PENDING and not stored.etag:
        raise CorrectionError(f"the result for {uri} is not written yet; try again in a moment")
    if (stored.etag or None) != current.etag:
        raise CorrectionError(
            f"the result for {uri} describes an older version of the object (ETag {stored.etag}, "
            f"now {current.etag}): its new upload is still being classified; try again when its result is in"
        )
    # The machine's answer kept beside the person's: what a learner compares (how often, and how, it
    # erred). A second correction keeps what the machine said first.
    machine = stored.corrected_from if stored.decided_by == HUMAN else machine_answer(stored)
    at = at or now()
    fields: dict[str, Any] = {
        "status": Status.CLASSIFIED.value,
        "primary": category,
        "labels": answer,
        "decided_by": HUMAN,
        "confidence": 1.0,
        "evidence": [f"human: corrected by {by}" if by else "human: corrected"],
        "taxonomy_version": taxonomy.version,
        "corrected_from": machine.model_dump(mode="json", exclude_none=True) if machine else {},
        "corrected_at": at.isoformat(),
        "updated_at": at.isoformat(),
    }
    if by:
        fields["corrected_by"] = by
    written = store.correct(asked.pk, fields, object_seq=stored.object_seq, etag=stored.etag)
    if not written:
        raise CorrectionError(f"the result for {uri} changed while it was being corrected (a new upload?); "
                              "nothing written: check it and try again")
    return {"pk": asked.pk, **fields}


def spread(pk: str, store: CorrectionStore) -> list[str]:
    """Give the person's answer on `pk` to the other classified results of the same bytes, metadata and
    taxonomy version (`reused_item`: each names `pk` in `reused_from`); the pks that took it. A
    result a person corrected keeps its own answer, and one that changed since it was read is left
    (its new answer, or a newer upload, wins)."""
    corrected = store.get(pk)
    if corrected is None or corrected.decided_by != HUMAN or corrected.content_key is None:
        return []
    taken = []
    for other in store.same_content(corrected.content_key, None):
        if other.pk == pk or other.corrected_at is not None or not reusable(corrected, other):
            continue
        # What it saved is what it saved when it was uploaded (nothing, if it was not a repost).
        answered = reused_item(other, corrected).model_copy(
            update={"updated_at": now(), "reused_cost_usd": other.reused_cost_usd})
        if other.status is Status.CLASSIFIED and store.adopt(answered, other):
            taken.append(other.pk)
    return sorted(taken)
