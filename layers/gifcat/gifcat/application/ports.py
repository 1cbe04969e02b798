"""The domain's ports: what the services need from storage and orchestration. The adapters in
gifcat.adapters implement them on S3, DynamoDB and Step Functions; tests may implement them in memory.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from gifcat.domain.result import ObjectRef, WriteKind


class ObjectGone(LookupError):
    """The object was deleted (or never readable) before it was read."""


class SourceUnavailable(RuntimeError):
    """Storage could not be reached or refused the read for now (throttling, a 5xx, the network).

    Not the upload's fault: the invocation fails so that it is retried (and lands in the dead-letter
    queue when the retries run out), rather than recording a result about the upload."""


class ObjectSource(Protocol):
    def head(self, ref: ObjectRef) -> tuple[ObjectRef, dict[str, str]]: ...
    def read(self, ref: ObjectRef, first: int | None = None) -> bytes: ...
    def sidecar(self, ref: ObjectRef, max_bytes: int) -> bytes | None: ...


class ResultStore(Protocol):
    def put(self, item: dict[str, Any], *, kind: WriteKind = "result") -> bool: ...
    def get(self, pk: str) -> dict[str, Any] | None: ...
    def take_over(self, item: dict[str, Any], stored: dict[str, Any] | None, *, force: bool) -> bool: ...
    def record(
        self, pk: str, fields: dict[str, Any], *, execution: str, only_pending: bool = False
    ) -> bool: ...


# "started": a new execution; "running": this name's execution is still running (a repeated event);
# "closed": this name's execution already ended.
StartOutcome = Literal["started", "running", "closed"]


class Escalator(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> StartOutcome: ...
