"""Typed models of the events gifcat's handlers receive.

The S3 notification model keeps only what triage reads, so it accepts every producer of the format:
AWS itself, and moto, whose events lack userIdentity, requestParameters and the sequencer.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote_plus

from pydantic import BaseModel, Field

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
    Records: list[S3EventRecord]


def is_upload_key(key: str, suffix: str) -> bool:
    """Whether a key names an upload: it ends with the stack's UploadSuffix in any letter case
    ("Cat.GIF" as "cat.gif"). S3's suffix filter and Step Functions' StringMatches compare case by
    case, so the trigger and the backfill filter by prefix only and ask this; sidecars (<key>.json)
    and other files are not uploads."""
    return key.casefold().endswith(suffix.casefold())


class RerunRequest(BaseModel):
    """A console rerun: {"bucket", "key"} and optionally "version_id" and "force"; a backfill child
    adds "stale_only" (classify only when the result is missing, failed or of another taxonomy)."""

    bucket: str
    key: str
    version_id: str | None = None
    force: bool = False
    stale_only: bool = False

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
