"""Typed models of the events gifcat's handlers receive.

The S3 notification model keeps only what triage reads, so it accepts every producer of the format:
AWS itself, and moto, whose events lack userIdentity, requestParameters and the sequencer.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote_plus

from pydantic import BaseModel

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


class RerunRequest(BaseModel):
    """A console rerun: {"bucket", "key"} and optionally "version_id" and "force"."""

    bucket: str
    key: str
    version_id: str | None = None
    force: bool = False


class TriageStepEvent(BaseModel):
    """What the state machine's Triage step passes: the rerun request and the execution's ARN."""

    request: RerunRequest
    execution: str | None = None  # $$.Execution.Id (moto leaves $$.Execution.Name empty for unnamed runs)

    @property
    def execution_name(self) -> str | None:
        return self.execution.rsplit(":", 1)[-1] if self.execution else None
