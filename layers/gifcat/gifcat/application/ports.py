"""The application's ports: what the services need from storage and orchestration. The adapters in
gifcat.adapters implement them on S3, DynamoDB and Step Functions; tests may implement them in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from gifcat.domain.artefact import ArtefactManifest, PublishedArtefact
from gifcat.domain.learning import Fitted, Gate, GatePair, Scorecard
from gifcat.domain.model import GifMetadata
from gifcat.domain.records import LabelledRecord
from gifcat.domain.result import ObjectRef, ResultAnswer, ResultItem, WriteKind

if TYPE_CHECKING:  # numpy: the zip functions import these ports and have none
    from gifcat.domain.memory import Learned


class ObjectGone(LookupError):
    """The object was deleted (or never readable) before it was read."""


class ObjectArchived(LookupError):
    """The object is there but cannot be read until it is restored (S3 Glacier Flexible Retrieval,
    Deep Archive, or an Intelligent-Tiering archive tier: InvalidObjectState). Retrying will not help."""


class UnreadableResult(ValueError):
    """A stored item that is not a gifcat result as this version reads it (another writer's item, a
    hand edit, an unknown status): named, so one such item does not stop a command over the table."""


class SourceUnavailable(RuntimeError):
    """Storage could not be reached or refused the read for now (throttling, a 5xx, the network).

    Not the upload's fault: the invocation fails so that it is retried (and lands in the dead-letter
    queue when the retries run out), rather than recording a result about the upload."""


SIDECAR_SUFFIX = ".json"  # an upload's sidecar is <key>.json, exactly: what ObjectSource.sidecar reads


class ObjectSource(Protocol):
    def head(self, ref: ObjectRef) -> tuple[ObjectRef, dict[str, str]]: ...
    def read(self, ref: ObjectRef, first: int | None = None) -> bytes: ...
    def sidecar(self, ref: ObjectRef, max_bytes: int) -> bytes | None: ...


class ResultStore(Protocol):
    def put(self, item: ResultItem, *, kind: WriteKind = "result") -> bool: ...
    def get(self, pk: str) -> ResultItem | None: ...
    def take_over(self, item: ResultItem, stored: ResultItem | None, *, force: bool) -> bool: ...
    def record(
        self, pk: str, answer: ResultAnswer, *, execution: str, only_pending: bool = False
    ) -> bool: ...

    def same_content(self, content_key: str, limit: int | None) -> Iterable[ResultItem]:
        """Results whose `content_key` is this one, at most `limit` (None: all), in no set order (eventually
        consistent: a result written a moment ago may be missing). SourceUnavailable when the store
        cannot be read."""
        ...


# "started": a new execution; "running": this name's execution is still running (a repeated event);
# "closed": this name's execution already ended.
StartOutcome = Literal["started", "running", "closed"]


class Escalator(Protocol):
    def start(self, name: str, payload: dict[str, Any]) -> StartOutcome: ...


# One state machine execution name per upload event (gifcat.adapters.stepfunctions.execution_name).
ExecutionNamer = Callable[[ObjectRef, GifMetadata], str]


class RecordEncoder(Protocol):
    """The parameters of the write that finishes an execution's own item, in the store's format.

    The state machine's Record state runs that write from the state a step returns, so a step builds
    it without a store (gifcat.adapters.dynamodb.record_request)."""

    def __call__(
        self, pk: str, answer: ResultAnswer, *, execution: str, only_pending: bool = False
    ) -> dict[str, Any]: ...


class PublishConflict(RuntimeError):
    """Another publisher took the version number first: nothing of this publication is current."""


class ArtefactStore(Protocol):
    """Published embedding artefacts, in order (gifcat.adapters.artefact_store on S3)."""

    def current(self) -> PublishedArtefact | None:
        """The newest published version (a small read), or None when nothing was ever published."""
        ...

    def fetch(self, version: str, into: Path) -> Path:
        """Download that version's artefact file into the folder `into`; its local path."""
        ...

    def publish(self, artefact: Path, manifest: ArtefactManifest) -> PublishedArtefact:
        """Store the file and its manifest as the next version and make it current. The store assigns
        `version` (the manifest's is replaced). Raises PublishConflict if another publisher won."""
        ...


class ResultSource(Protocol):
    """Every result item, read page by page (gifcat.adapters.dynamodb.ResultsTable: a paginated Scan)."""

    def items(self) -> Iterable[ResultItem]: ...


class RecentResults(Protocol):
    """The results made with one taxonomy version, the most recently written first, at most `limit`;
    and people's answers of it (gifcat.adapters.dynamodb.ResultsTable: queries of the table's indexes
    by taxonomy version). What `gifcat learn` reads: a Scan of every result, every run, outgrows the run
    as the table grows."""

    def newest(self, taxonomy_version: str, limit: int) -> Iterable[ResultItem]: ...

    def corrected(self, taxonomy_version: str) -> Iterable[ResultItem]:
        """Every person's answer of that taxonomy version, however old."""
        ...


class Trainer(Protocol):
    """Fits and judges embedding artefacts (gifcat.adapters.training.EmbeddingTrainer: scikit-learn and
    scipy, in the learn image only)."""

    @property
    def encoder(self) -> str:
        """The identity of the text encoder the artefacts' vectors are made with."""
        ...

    def gate(
        self, pairs: Sequence[GatePair], *, target: float, confidence: float, min_pairs: int
    ) -> Gate: ...

    def fit(self, examples: Sequence[LabelledRecord], *, seed: int, min_examples: int) -> Fitted | None:
        """A new artefact fitted on `examples` only; None when they are too few to fit."""
        ...

    def scorecard(self, fitted: Fitted, held_out: Sequence[LabelledRecord]) -> Scorecard: ...

    def unseen(self, fitted: Fitted, records: Sequence[LabelledRecord]) -> list[LabelledRecord]:
        """The records the artefact was not fitted on (their text is not in its memory)."""
        ...

    def bundled(self) -> Learned | None:
        """The memory and head that ship with the image (None: it has none)."""
        ...
