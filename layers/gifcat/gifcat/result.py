"""The result item: one per S3 object, keyed by bucket and key, written with conditions so that
duplicates are harmless and an older result never replaces a newer one.

The same request (item, condition, names, values) is used by the DynamoDB adapter and handed to the
state machine's Record state, so the write rule lives in one place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from pydantic import BaseModel

from gifcat.config import Prices
from gifcat.costs import item_cost
from gifcat.model import Classification, GifMetadata, Status

SCHEMA_VERSION = 1


class ObjectRef(BaseModel):
    """The S3 object a result is about, and the version of it that was read."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None  # from the S3 event: orders events for one key
    last_modified: datetime | None = None
    event_time: datetime | None = None

    @property
    def pk(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def object_seq(self) -> str:
        """A string that sorts like the object's versions: last-modified time, then the event sequencer.

        Reads use the object as it is now (head_object), so a late event for an overwritten object
        classifies the newer object and sorts as new; the sequencer breaks same-second ties.
        """
        millis = int(self.last_modified.timestamp() * 1000) if self.last_modified else 0
        return f"{millis:015d}.{(self.sequencer or '').rjust(32, '0')}"


def now() -> datetime:
    return datetime.now(UTC)


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
    at = at or now()
    cost = item_cost(classification.stages, prices) if prices is not None else None
    stages = [t.model_dump(mode="json", exclude_none=True) for t in classification.stages]
    prompt_versions = [t.prompt_version for t in classification.stages if t.prompt_version]
    item: dict[str, Any] = {
        "pk": ref.pk,
        "schema_version": SCHEMA_VERSION,
        "bucket": ref.bucket,
        "key": ref.key,
        "version_id": ref.version_id,
        "etag": ref.etag,
        "size": ref.size,
        "object_seq": ref.object_seq,
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
        "title": metadata.title if metadata else None,
        "tags": list(metadata.tags) if metadata else None,
        "description": metadata.description if metadata else None,
        "execution": execution,
        "event_time": ref.event_time.isoformat() if ref.event_time else None,
        "updated_at": at.isoformat(),
    }
    # DynamoDB keeps no empty strings in keys nor None usefully: drop what is unknown.
    return {k: v for k, v in item.items() if v is not None and v != ""}


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


def put_request(item: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
    """PutItem parameters (without TableName) enforcing the ordering rule.

    Written when there is no result yet, when this object version is newer, or when it is the same
    version and the stored result is unfinished (pending, failed, undecided). A forced rerun also
    replaces a finished result of the same version. A classified result is never replaced by an older
    object's. Same time but another ETag means two uploads within a second whose events carried no
    sequencer (moto's do not): the write comes from a read of the current object, so it may replace.
    """
    values: dict[str, Any] = {":seq": item["object_seq"]}
    if force:
        same_version_ok = "#seq = :seq"
    else:
        same_version_ok = "#status IN (:pending, :failed, :undecided) OR #etag <> :etag"
        values |= {
            ":pending": Status.PENDING.value,
            ":failed": Status.FAILED.value,
            ":undecided": Status.UNDECIDED.value,
            ":etag": item.get("etag", ""),
        }
    return {
        "Item": to_attribute_values(item),
        "ConditionExpression": (
            f"attribute_not_exists(pk) OR #seq < :seq OR (#seq = :seq AND ({same_version_ok}))"
        ),
        "ExpressionAttributeNames": {
            "#seq": "object_seq",
            **({} if force else {"#status": "status", "#etag": "etag"}),
        },
        "ExpressionAttributeValues": to_attribute_values(values),
    }
