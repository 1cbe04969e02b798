"""The domain's ports: what the services need from storage and orchestration. The adapters in
gifcat.adapters implement them on S3, DynamoDB and Step Functions; tests may implement them in memory.
"""

from __future__ import annotations

from typing import Any, Protocol

from gifcat.result import ObjectRef


class ObjectGone(LookupError):
    """The object was deleted (or never readable) before it was read."""


class ObjectSource(Protocol):
    def head(self, ref: ObjectRef) -> tuple[ObjectRef, dict[str, str]]: ...
    def read(self, ref: ObjectRef, first: int | None = None) -> bytes: ...
    def sidecar(self, ref: ObjectRef, max_bytes: int) -> bytes | None: ...


class ResultStore(Protocol):
    def put(self, item: dict[str, Any], *, force: bool = False) -> bool: ...


class Escalator(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]: ...
