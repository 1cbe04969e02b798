"""S3 adapter (the ArtefactStore port): published embedding artefacts under one prefix.

    s3://BUCKET/PREFIX/versions/v000001/memory.npz     the artefact (gifcat.domain.memory.Learned)
    s3://BUCKET/PREFIX/versions/v000001/manifest.json  what it is (gifcat.domain.artefact)
    s3://BUCKET/PREFIX/current.json                    the manifest of the newest version

A publication writes the file, then its manifest, then current.json: a reader that sees a version in
current.json finds its file complete. The first two writes are conditional (If-None-Match: *), so two
publishers that picked the same number cannot overwrite each other: the second gets PublishConflict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from gifcat.application.ports import PublishConflict, SourceUnavailable
from gifcat.domain.artefact import ArtefactManifest, PublishedArtefact

ARTEFACT_FILE = "memory.npz"
MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "current.json"
VERSION_DIGITS = 6


def version_name(number: int) -> str:
    return f"v{number:0{VERSION_DIGITS}d}"


def version_number(version: str) -> int:
    if not (version.startswith("v") and version[1:].isdigit()):
        raise ValueError(f"not an artefact version: {version!r} (expected v{'0' * VERSION_DIGITS})")
    return int(version[1:])


def parse_location(uri: str) -> tuple[str, str]:
    """s3://BUCKET[/PREFIX] -> (bucket, prefix without slashes at either end)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"artefact location {uri!r}: expected s3://BUCKET[/PREFIX]")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"artefact location {uri!r}: no bucket")
    return bucket, prefix.strip("/")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3ArtefactStore:
    def __init__(self, uri: str, client: Any | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.bucket, self.prefix = parse_location(uri)
        self._s3 = client or boto3.client("s3")

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def current(self) -> PublishedArtefact | None:
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=self._key(CURRENT_FILE))["Body"].read()
        except ClientError as exc:
            if _code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise SourceUnavailable(f"artefacts {self.uri}: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise SourceUnavailable(f"artefacts {self.uri}: {exc}") from exc
        try:
            manifest = ArtefactManifest.model_validate_json(body)
        except ValidationError as exc:
            raise ValueError(f"{self.uri}/{CURRENT_FILE} is not an artefact manifest: {exc}") from exc
        return PublishedArtefact(version=manifest.version, manifest=manifest)

    def fetch(self, version: str, into: Path) -> Path:
        version_number(version)  # a malformed name never becomes a key
        into.mkdir(parents=True, exist_ok=True)
        path = into / f"{version}-{ARTEFACT_FILE}"
        try:
            self._s3.download_file(self.bucket, self._key("versions", version, ARTEFACT_FILE), str(path))
        except (ClientError, BotoCoreError) as exc:
            raise SourceUnavailable(f"artefacts {self.uri}: fetch {version}: {exc}") from exc
        return path

    def publish(self, artefact: Path, manifest: ArtefactManifest) -> PublishedArtefact:
        current = self.current()
        number = version_number(current.version) + 1 if current else 1
        version = version_name(number)
        manifest = manifest.model_copy(update={"version": version})
        body = manifest.model_dump_json(indent=1).encode("utf-8")
        self._put_new(self._key("versions", version, ARTEFACT_FILE), artefact.read_bytes(), version)
        self._put_new(self._key("versions", version, MANIFEST_FILE), body, version)
        self._s3.put_object(Bucket=self.bucket, Key=self._key(CURRENT_FILE), Body=body,
                            ContentType="application/json")
        return PublishedArtefact(version=version, manifest=manifest)

    def _put_new(self, key: str, body: bytes, version: str) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except ClientError as exc:
            if _code(exc) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                raise PublishConflict(
                    f"{self.uri}: version {version} was published by someone else meanwhile; run again"
                ) from exc
            raise
