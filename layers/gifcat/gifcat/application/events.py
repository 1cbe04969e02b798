"""Typed models of the events gifcat's handlers receive.

The S3 notification model keeps only what triage reads, so it accepts every producer of the format:
AWS itself, and moto, whose events lack userIdentity, requestParameters and the sequencer.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from gifcat.application.ports import SIDECAR_SUFFIX
from gifcat.domain.result import ObjectRef


class S3Bucket(BaseModel):
    name: str


class S3Object(BaseModel):
    key: str
    size: int | None = None
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class S3Entity(BaseModel):
    bucket: S3Bucket
    object: S3Object


class S3EventRecord(BaseModel):
    eventSource: str = "aws:s3"
    eventName: str
    eventTime: datetime | None = None
    s3: S3Entity

    @property
    def created(self) -> bool:
        """An object was created (put, copied, completed): the only events that are uploads. A removal
        (`removed`) ends an upload's result; a restore notified to the function is neither."""
        return self.eventSource == "aws:s3" and self.eventName.startswith("ObjectCreated:")

    @property
    def removed(self) -> bool:
        """An object was deleted (a delete marker, in a versioned bucket) or expired by a lifecycle rule."""
        removals = ("ObjectRemoved:", "LifecycleExpiration:")
        return self.eventSource == "aws:s3" and self.eventName.startswith(removals)

    def object_ref(self) -> ObjectRef:
        """Keys arrive URL-encoded ('a+b%2Bc.gif' is 'a b+c.gif'): decoded as AWS documents."""
        obj = self.s3.object
        return ObjectRef(
            bucket=self.s3.bucket.name,
            key=unquote_plus(obj.key),
            version_id=obj.versionId if obj.versionId not in (None, "", "null") else None,
            etag=obj.eTag,
            size=obj.size,
            sequencer=obj.sequencer,
            event_time=self.eventTime,
        )


class S3UploadEvent(BaseModel):
    # S3 sends {"Event": "s3:TestEvent", ...} with no records when a notification is configured.
    Records: list[S3EventRecord] = Field(default_factory=list)
    Event: str | None = None

    @model_validator(mode="after")
    def _records_or_test(self) -> S3UploadEvent:
        # Anything else without records (an EventBridge "Object Created" event, a payload for another
        # function) is an error, so that it is retried and dead-lettered, never dropped as a test.
        if not self.Records and self.Event != "s3:TestEvent":
            raise ValueError("not an S3 notification: no Records, and not s3:TestEvent")
        return self


def is_upload_key(key: str, suffix: str) -> bool:
    """Whether a key names an upload: it ends with the stack's UploadSuffix in any letter case
    ("Cat.GIF" as "cat.gif"). S3's suffix filter and Step Functions' StringMatches compare case by
    case, so the trigger and the backfill filter by prefix only and ask this; sidecars (<key>.json)
    and other files are not uploads."""
    return key.casefold().endswith(suffix.casefold())


def sidecar_upload_key(key: str, suffix: str) -> str | None:
    """The upload a sidecar key (<upload key>.json) describes, or None for any other key."""
    if not key.endswith(SIDECAR_SUFFIX):
        return None
    upload = key[: -len(SIDECAR_SUFFIX)]
    return upload if is_upload_key(upload, suffix) else None


class RerunRequest(BaseModel):
    """A console rerun: {"bucket", "key"} and optionally "version_id" and "force"; a backfill child
    adds "stale_only" (classify only when the result is missing, failed or of another taxonomy); a
    sidecar put after its upload, "metadata_changed_only" (classify only when the result was made from
    other metadata than the object has now)."""

    bucket: str
    key: str
    version_id: str | None = None
    force: bool = False
    stale_only: bool = False
    metadata_changed_only: bool = False

    def object_ref(self) -> ObjectRef:
        return ObjectRef(bucket=self.bucket, key=self.key, version_id=self.version_id)


class TriageStepEvent(BaseModel):
    """What the state machine's Triage step passes: the rerun request and the execution's ARN."""

    request: RerunRequest
    # $$.Execution.Id: the rerun's item names its execution (moto leaves $$.Execution.Name empty for
    # unnamed runs, so the name is taken from the ARN)
    execution: str = Field(min_length=1)

    @property
    def execution_name(self) -> str:
        """The name in the execution's ARN: arn:...:execution:<machine>:<name> (Standard), or
        arn:...:express:<machine>:<name>:<run id> (Express)."""
        parts = self.execution.split(":")
        if len(parts) == 9 and parts[5] == "express":
            return parts[7]
        return parts[-1]


class ScheduledRequest(BaseModel):
    """What a scheduled function (learn, sweep) is asked: the schedule's event asks nothing; a manual
    invoke may send {"dry_run": true}, exactly: a "true" or a misspelt key must not turn a dry run into
    a publication."""

    model_config = ConfigDict(extra="forbid")

    dry_run: StrictBool = False

    @classmethod
    def of(cls, event: object) -> ScheduledRequest:
        """The request in an invocation's event: an EventBridge schedule's is a real run."""
        if isinstance(event, dict) and event.get("source") == "aws.events":
            return cls()
        return cls.model_validate(event if event is not None else {})
