"""The result item: one per S3 object, keyed by bucket and key, written with conditions so that
duplicates are harmless and an older upload's result never replaces a newer one's.

The order of uploads is the S3 event sequencer (the only order AWS guarantees for one key; the local
embedded AWS stamps one too). Three writes keep it:

- triage writes the result, or `pending` plus the execution it starts (`put_request`): only over an
  older upload's item, or over its own upload's unfinished one (a retried or repeated event);
- the state machine's Record finishes only the item its own execution owns (`record_request`): a
  newer upload's triage has replaced the `execution` attribute, so a stale execution cannot write;
- a console rerun takes the item over in place, keeping its order (`takeover_request`).

The requests are built here and used by the DynamoDB adapter and by the state machine's Record state,
so the write rules live in one place.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from boto3.dynamodb.types import TypeSerializer
from pydantic import BaseModel

from gifcat.config import Prices
from gifcat.domain.costs import item_cost
from gifcat.domain.model import Classification, GifMetadata, Status

SCHEMA_VERSION = 2  # 2: object_seq is the S3 event sequencer; Record finishes only its own item
SEQ_WIDTH = 40  # sequencers are hex strings of varying length (18 on AWS today)
UNFINISHED = (Status.PENDING, Status.FAILED, Status.UNDECIDED)


NO_SEQUENCER = "-"  # an event without a sequencer (not from S3), or a rerun of an unknown object


def sortable_sequencer(sequencer: str | None) -> str:
    """S3's rule for comparing sequencers of one key: right-pad the shorter with zeros, then compare
    as strings. Upper-cased so that hex case cannot reorder; NO_SEQUENCER sorts before every one."""
    return sequencer.upper().ljust(SEQ_WIDTH, "0") if sequencer else NO_SEQUENCER


def metadata_digest(metadata: GifMetadata) -> str:
    """A short digest of the metadata that was read: part of what tells two uploads apart."""
    doc = json.dumps(metadata.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:16]


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
    "models",
    "prompt_version",
    "timings_ms",
    "cost_usd",
    "cost",
    "stages",
    "execution",
    "updated_at",
)


def classification_fields(
    classification: Classification,
    *,
    execution: str | None = None,
    at: datetime | None = None,
    prices: Prices | None = None,
) -> dict[str, Any]:
    """The answer part of a result item (None where unknown: Record removes those attributes)."""
    at = at or now()
    cost = item_cost(classification.stages, prices) if prices is not None else None
    stages = [t.model_dump(mode="json", exclude_none=True) for t in classification.stages]
    prompt_versions = [t.prompt_version for t in classification.stages if t.prompt_version]
    return {
        "status": classification.status.value,
        "reason": classification.reason,
        "primary": classification.primary,
        "labels": classification.labels,
        "scores": classification.scores,
        "decided_by": classification.decided_by.value if classification.decided_by else None,
        "confidence": classification.confidence,
        "evidence": classification.evidence,
        "suspicious_text": classification.suspicious_text,
        "removed_text": classification.removed_text or None,
        "taxonomy_version": classification.taxonomy_version,
        "models": classification.models(),
        "prompt_version": prompt_versions[-1] if prompt_versions else None,
        "timings_ms": {t.stage.value: t.elapsed_ms for t in classification.stages},
        "cost_usd": cost["total_usd"] if cost else round(classification.cost_usd, 8),
        "cost": cost,
        "stages": stages,
        "execution": execution,
        "updated_at": at.isoformat(),
    }


def _known(item: dict[str, Any]) -> dict[str, Any]:
    # DynamoDB keeps no empty strings in keys nor None usefully: drop what is unknown.
    return {k: v for k, v in item.items() if v is not None and v != ""}


def result_item(
    ref: ObjectRef,
    classification: Classification,
    *,
    metadata: GifMetadata | None = None,
    execution: str | None = None,
    at: datetime | None = None,
    prices: Prices | None = None,
) -> dict[str, Any]:
    """The result as a plain dict (floats, lists, maps): what the README documents."""
    item: dict[str, Any] = {
        "pk": ref.pk,
        "schema_version": SCHEMA_VERSION,
        "bucket": ref.bucket,
        "key": ref.key,
        "version_id": ref.version_id,
        "etag": ref.etag,
        "size": ref.size,
        "sequencer": ref.sequencer,
        "object_seq": ref.object_seq,
        "last_modified": ref.last_modified.isoformat() if ref.last_modified else None,
        "metadata_digest": metadata_digest(metadata) if metadata is not None else None,
        **classification_fields(classification, execution=execution, at=at, prices=prices),
        "title": metadata.title if metadata else None,
        "tags": list(metadata.tags) if metadata else None,
        "description": metadata.description if metadata else None,
        "event_time": ref.event_time.isoformat() if ref.event_time else None,
    }
    return _known(item)


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))  # DynamoDB keeps 38 digits: no rounding needed
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def to_attribute_values(item: dict[str, Any]) -> dict[str, Any]:
    """Plain dict to DynamoDB JSON ({"S": ...}, {"N": ...}), as the low-level API and ASL take it."""
    serializer = TypeSerializer()
    return {k: serializer.serialize(_to_dynamo(v)) for k, v in item.items()}


WriteKind = Literal["result", "pending"]


def put_request(item: dict[str, Any], *, kind: WriteKind = "result") -> dict[str, Any]:
    """PutItem parameters (without TableName) for triage's write of an upload's result.

    Written when there is no item yet, or when the item is an older upload's (lower object_seq). For
    the same upload (a repeated or retried event): a "result" replaces only an unfinished item, a
    "pending" only a pending one. A pending item must always have an execution running for it, and
    the execution of an upload event that already failed or finished is not started again.
    """
    values: dict[str, Any] = {":seq": item["object_seq"], ":pending": Status.PENDING.value}
    if kind == "pending":
        same_upload_ok = "#status = :pending"
    else:
        same_upload_ok = "#status IN (:pending, :failed, :undecided)"
        values |= {":failed": Status.FAILED.value, ":undecided": Status.UNDECIDED.value}
    return {
        "Item": to_attribute_values(item),
        "ConditionExpression": (
            f"attribute_not_exists(pk) OR #seq < :seq OR (#seq = :seq AND {same_upload_ok})"
        ),
        "ExpressionAttributeNames": {"#seq": "object_seq", "#status": "status"},
        "ExpressionAttributeValues": to_attribute_values(values),
    }


def takeover_request(item: dict[str, Any], stored: dict[str, Any] | None, *, force: bool) -> dict[str, Any]:
    """PutItem parameters for a console rerun's pending item, which takes over the stored one in place.

    The rerun has no S3 event, so it keeps the stored item's order (object_seq, sequencer): a rerun
    never outranks an upload, and an upload that lands during the rerun still wins. Without force it
    takes over only an unfinished item.
    """
    item = {k: v for k, v in item.items() if k not in ("object_seq", "sequencer")}
    if stored is None:
        item["object_seq"] = NO_SEQUENCER
        return {"Item": to_attribute_values(_known(item)), "ConditionExpression": "attribute_not_exists(pk)"}
    item["object_seq"] = stored.get("object_seq") or NO_SEQUENCER
    item["sequencer"] = stored.get("sequencer")
    names = {"#seq": "object_seq"}
    values: dict[str, Any] = {":seq": item["object_seq"]}
    condition = "#seq = :seq"
    if not force:
        names["#status"] = "status"
        values |= {f":{s.value}": s.value for s in UNFINISHED}
        condition += " AND #status IN (" + ", ".join(f":{s.value}" for s in UNFINISHED) + ")"
    return {
        "Item": to_attribute_values(_known(item)),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_attribute_values(values),
    }


def record_request(
    pk: str, fields: dict[str, Any], *, execution: str, only_pending: bool = False
) -> dict[str, Any]:
    """UpdateItem parameters (without TableName) that finish an execution's own item.

    Sets the answer's fields (`classification_fields`) and removes those it leaves unknown; the object
    and metadata attributes stay as triage wrote them, so the state machine never carries the
    uploader's metadata whole. The condition is ownership: the item still names this execution.
    """
    names: dict[str, str] = {"#execution": "execution"}
    values: dict[str, Any] = {":execution": execution}
    sets, removes = [], []
    for i, name in enumerate(CLASSIFICATION_FIELDS):
        if name == "execution":
            continue  # kept: it is the condition
        names[f"#f{i}"] = name
        value = fields.get(name)
        if value is None or value == "":
            removes.append(f"#f{i}")
        else:
            sets.append(f"#f{i} = :f{i}")
            values[f":f{i}"] = value
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    condition = "#execution = :execution"
    if only_pending:
        names["#status"] = "status"
        values[":pending"] = Status.PENDING.value
        condition += " AND #status = :pending"
    return {
        "Key": {"pk": {"S": pk}},
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_attribute_values(values),
    }
