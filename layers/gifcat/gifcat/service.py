"""Application services: what each handler does, written against ports, not boto3.

- `Triage.handle_upload`: an S3 upload, end to end: check, read metadata, run tag and rule triage,
  record a decided result, or record `pending` and hand the item to the state machine.
- `Triage.prepare`: the state machine's first step for a console rerun ({"bucket", "key", "force"}).
- `StageStep.run`: one later stage (embedding, llm) on the state the previous step passed on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from gifcat.cascade import TRIAGE, Cascade
from gifcat.config import Prices, Settings
from gifcat.ingest import RejectedUpload, metadata_from, sniff_gif
from gifcat.model import Classification, GifItem, GifMetadata, StageName, StageTrace, Status
from gifcat.ports import Escalator, ObjectGone, ObjectSource, ResultStore
from gifcat.result import ObjectRef, put_request, result_item


class StepState(BaseModel):
    """What flows between the state machine's steps (and what the Record state writes)."""

    object: ObjectRef
    force: bool = False
    metadata: GifMetadata = GifMetadata()
    classification: Classification
    execution: str | None = None
    record: dict[str, Any] | None = None  # PutItem parameters (no TableName) for the Record state
    # Set by the state machine's Catch on a stage ({"stage", "Error", "Cause"}); the next step records it.
    upstream_error: dict[str, Any] | None = None

    @property
    def decided(self) -> bool:
        return self.classification.status in (Status.CLASSIFIED, Status.FAILED, Status.SKIPPED)

    def with_record(self, prices: Prices | None = None) -> StepState:
        item = result_item(
            self.object, self.classification, metadata=self.metadata, execution=self.execution, prices=prices
        )
        return self.model_copy(update={"record": put_request(item, force=self.force)})


class UploadOutcome(BaseModel):
    pk: str
    status: Status
    written: bool
    execution: str | None = None
    started: bool = False


class Triage:
    def __init__(
        self,
        settings: Settings,
        cascade: Cascade,
        source: ObjectSource,
        store: ResultStore | None = None,
        escalator: Escalator | None = None,
        execution_name: Callable[[ObjectRef], str] | None = None,
    ) -> None:
        self.settings = settings
        self.cascade = cascade
        self.source = source
        self.store = store
        self.escalator = escalator
        self.execution_name = execution_name

    def _classify(self, ref: ObjectRef) -> tuple[ObjectRef, GifMetadata, Classification]:
        """Check the upload and run triage; rejected uploads come back as failed/skipped results."""
        limits = self.settings.limits
        metadata = GifMetadata()
        try:
            ref, user_metadata = self.source.head(ref)
            if not ref.size:
                raise RejectedUpload("skipped", "empty object (0 bytes)")
            if ref.size > limits.max_gif_bytes:
                raise RejectedUpload(
                    "skipped", f"object is {ref.size} bytes, over the {limits.max_gif_bytes} limit"
                )
            sniff_gif(self.source.read(ref, first=limits.sniff_bytes))
            try:
                sidecar = self.source.sidecar(ref, limits.max_metadata_bytes)
            except ValueError as exc:
                raise RejectedUpload("failed", str(exc)) from exc
            metadata = metadata_from(user_metadata, sidecar)
        except ObjectGone as exc:
            return ref, metadata, self._rejected("skipped", f"object deleted before it was read: {exc}")
        except RejectedUpload as exc:
            return ref, metadata, self._rejected(exc.status, exc.reason)
        item = GifItem(id=ref.pk, metadata=metadata)
        return ref, metadata, self.cascade.run(item, only=TRIAGE)

    def _rejected(self, status: str, reason: str) -> Classification:
        return self.cascade.start().model_copy(update={"status": Status(status), "reason": reason})

    def handle_upload(self, ref: ObjectRef) -> UploadOutcome:
        if self.store is None or self.escalator is None or self.execution_name is None:
            raise RuntimeError("handle_upload needs a result store, an escalator and an execution namer")
        ref, metadata, classification = self._classify(ref)
        if classification.status is not Status.UNDECIDED:
            item = result_item(ref, classification, metadata=metadata, prices=self.settings.prices)
            return UploadOutcome(pk=ref.pk, status=classification.status, written=self.store.put(item))
        name = self.execution_name(ref)
        pending = classification.model_copy(update={"status": Status.PENDING})
        written = self.store.put(
            result_item(ref, pending, metadata=metadata, execution=name, prices=self.settings.prices)
        )
        if not written:  # a finished result for this version exists: this event is a duplicate
            return UploadOutcome(pk=ref.pk, status=pending.status, written=False, execution=name)
        state = StepState(object=ref, metadata=metadata, classification=classification, execution=name)
        _, started = self.escalator.start(name, state.model_dump(mode="json", exclude={"record"}))
        return UploadOutcome(pk=ref.pk, status=pending.status, written=True, execution=name, started=started)

    def prepare(self, ref: ObjectRef, *, force: bool, execution: str | None) -> StepState:
        """The state machine's triage step, for executions started without a triage result."""
        ref, metadata, classification = self._classify(ref)
        state = StepState(
            object=ref, force=force, metadata=metadata, classification=classification, execution=execution
        )
        return state.with_record(self.settings.prices)


class StageStep:
    """Runs one later stage of the cascade on a state machine state."""

    def __init__(
        self, cascade: Cascade, stage: StageName, source: ObjectSource | None, settings: Settings
    ) -> None:
        self.cascade = cascade
        self.stage = stage
        self.source = source
        self.settings = settings

    def run(self, state: StepState) -> StepState:
        classification = state.classification
        if state.upstream_error:
            # The previous step failed (its Catch passed the error on): record it and carry on.
            classification = classification.model_copy(
                update={"stages": [*classification.stages, failed_trace(state.upstream_error)]}
            )
        gif = None
        if self.stage is StageName.EMBEDDING and self.source is not None and state.object.size:
            gif = (
                self.source.read(state.object)
                if state.object.size <= self.settings.limits.max_gif_bytes
                else None
            )
        item = GifItem(id=state.object.pk, metadata=state.metadata, gif=gif)
        classification = self.cascade.run(item, classification, only=(self.stage,))
        if self.stage is StageName.LLM and classification.status is Status.UNDECIDED:
            # The LLM is the last stage: an answer below its thresholds is still not a decision.
            classification = classification.model_copy(
                update={"status": Status.FAILED, "reason": "no stage reached a confident answer"}
            )
        return state.model_copy(
            update={"classification": classification, "upstream_error": None}
        ).with_record(self.settings.prices)


def failed_trace(error: dict[str, Any]) -> StageTrace:
    """A stage the state machine caught failing, as a trace: {"stage", "Error", "Cause"}."""
    return StageTrace(
        stage=StageName(error.get("stage", StageName.EMBEDDING.value)),
        decided=False,
        elapsed_ms=0.0,
        error=f"{error.get('Error', 'Error')}: {str(error.get('Cause', ''))[:500]}",
    )
