"""S3 adapter (the ObjectSource port): reads what triage needs of an upload, and no more."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from gifcat.application.ports import SIDECAR_SUFFIX, ObjectArchived, ObjectGone, SourceUnavailable
from gifcat.domain.result import ObjectRef

MAX_KEY_BYTES = 1024  # S3's longest key: a longer sidecar key cannot exist (S3 answers KeyTooLongError)


def _missing(exc: ClientError) -> bool:
    return _code(exc) in {"404", "NoSuchKey", "NoSuchVersion", "NotFound", "NoSuchBucket"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unavailable(what: str, exc: Exception) -> SourceUnavailable:
    """S3 could not answer now (or the object changed under the read): worth a retry, not a result."""
    if isinstance(exc, ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        if _code(exc) in ("AccessDenied", "403", "Forbidden"):
            # S3 says 403 for a missing key to a caller that may not list the bucket (template.yaml
            # grants s3:ListBucket for this): a role without it fails on every GIF without a sidecar.
            message += " (a missing key reads as access denied without s3:ListBucket on the bucket)"
        return SourceUnavailable(f"S3 {what}: {_code(exc)}: {message}")
    return SourceUnavailable(f"S3 {what}: {type(exc).__name__}: {exc}")


class S3Objects:
    def __init__(self, client: Any | None = None) -> None:
        self._s3 = client or boto3.client("s3")

    @property
    def client(self) -> Any:
        """The boto3 S3 client, for another adapter to share (a client costs ~20 ms to build)."""
        return self._s3

    def head(self, ref: ObjectRef) -> tuple[ObjectRef, dict[str, str]]:
        """The object as it is now: size, ETag, last-modified and user metadata."""
        kwargs = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        try:
            head = self._s3.head_object(**kwargs)
        except ClientError as exc:
            if _missing(exc):
                raise ObjectGone(f"s3://{ref.bucket}/{ref.key} no longer exists") from exc
            raise _unavailable("head", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("head", exc) from exc
        updated = ref.model_copy(
            update={
                "etag": head.get("ETag", "").strip('"') or ref.etag,
                "size": head.get("ContentLength", ref.size),
                "last_modified": head.get("LastModified"),
                "version_id": head.get("VersionId") or ref.version_id,
            }
        )
        return updated, dict(head.get("Metadata") or {})

    def read(self, ref: ObjectRef, first: int | None = None) -> bytes:
        """The object's bytes, or only its first `first` bytes (a ranged GET)."""
        kwargs: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            kwargs["VersionId"] = ref.version_id
        elif ref.etag:
            kwargs["IfMatch"] = ref.etag  # the version we checked, not one uploaded since
        if first is not None:
            kwargs["Range"] = f"bytes=0-{max(first, 1) - 1}"
        try:
            return self._s3.get_object(**kwargs)["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                raise ObjectGone(f"s3://{ref.bucket}/{ref.key} no longer exists") from exc
            if _code(exc) == "InvalidObjectState":
                raise ObjectArchived(
                    f"s3://{ref.bucket}/{ref.key} is in an archive storage class and cannot be read "
                    "until it is restored"
                ) from exc
            raise _unavailable("get", exc) from exc  # incl. 412: replaced since the head; retry reads anew
        except BotoCoreError as exc:
            raise _unavailable("get", exc) from exc

    def sidecar(self, ref: ObjectRef, max_bytes: int) -> bytes | None:
        """The metadata sidecar `<key>.json`, if there is one; larger than max_bytes is an error. An
        empty one is b"" (S3 refuses a range of an empty object with InvalidRange): the caller says
        it is empty, where None would have passed it over."""
        key = ref.key + SIDECAR_SUFFIX
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            return None  # the GIF's key is too long for a sidecar to exist: its user metadata serves
        try:
            obj = self._s3.get_object(Bucket=ref.bucket, Key=key, Range=f"bytes=0-{max_bytes}")
            body = obj["Body"].read()
        except ClientError as exc:
            if _missing(exc) or _code(exc) == "KeyTooLongError":
                return None
            if _code(exc) == "InvalidRange":
                return b""
            if _code(exc) == "InvalidObjectState":
                raise ValueError(f"sidecar s3://{ref.bucket}/{key} is archived: restore it first") from exc
            raise _unavailable("get sidecar", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable("get sidecar", exc) from exc
        if len(body) > max_bytes:
            raise ValueError(f"sidecar s3://{ref.bucket}/{key} is larger than {max_bytes} bytes")
        return body


def read_s3_uri(uri: str) -> str:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
