"""Application services: what each handler does, written against ports, not boto3.

- `Triage.handle_upload`: an S3 upload, end to end: check, read metadata, run tag and rule triage,
  record a decided result, or record `pending` and hand the item to the state machine.
- `RerunTriage.prepare`: the state machine's first step for a console rerun ({"bucket", "key", "force"})
  and a backfill child (with "stale_only").
- `StageStep.run`: one later stage (embedding, llm) on the state the previous step passed on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from gifcat.application.events import is_upload_key, sidecar_upload_key
from gifcat.application.ingest import RejectedUpload, metadata_from, sniff_gif
from gifcat.application.ports import (
    Escalator,
    ExecutionNamer,
    ObjectArchived,
    ObjectGone,
    ObjectSource,
    RecordEncoder,
    ResultStore,
    SourceUnavailable,
)
from gifcat.config import Prices, Settings
from gifcat.domain.cascade import TRIAGE, Cascade
from gifcat.domain.model import Classification, GifItem, GifMetadata, StageName, StageTrace, Status
from gifcat.domain.result import (
    HUMAN,
    ObjectRef,
    ResultItem,
    classification_fields,
    deleted_item,
    metadata_digest,
    result_item,
    reusable,
    reused_item,
    taken_over,
)

log = logging.getLogger(__name__)

# What of the metadata travels through the state machine, in escaped JSON characters (\uXXXX counts 6,
# an emoji 12): the later stages read no more than this (the LLM prompt cuts fields to 500 characters
# and 20 tags; MiniLM reads 256 tokens), and Step Functions refuses states over 256 KB. The result
# item keeps the metadata whole: triage wrote it, and Record only sets the answer's fields.
STATE_METADATA_BUDGET = {"title": 2048, "description": 4096, "tags": 6144}
STATE_TAG_CHARS = 512  # escaped characters per tag


def _escaped_len(text: str) -> int:
    return len(json.dumps(text))


def _cut_escaped(text: str, budget: int) -> str:
    """The longest prefix of `text` whose JSON string (escaped) fits in `budget` characters."""
    if _escaped_len(text) <= budget:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # binary search on the prefix length: escaping is monotonic in it
        mid = (lo + hi + 1) // 2
        if _escaped_len(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def state_metadata(metadata: GifMetadata) -> GifMetadata:
    """The metadata bounded for the state machine's state (see STATE_METADATA_BUDGET)."""
    tags: list[str] = []
    left = STATE_METADATA_BUDGET["tags"]
    for tag in metadata.tags:
        cut = _cut_escaped(tag, STATE_TAG_CHARS)  # a long tag is cut; the list stops at one that won't fit
        size = _escaped_len(cut) + 1  # 1: the separator
        if not cut or size > left:
            break
        tags.append(cut)
        left -= size
    return GifMetadata(
        title=_cut_escaped(metadata.title, STATE_METADATA_BUDGET["title"]),
        tags=tuple(tags),
        description=_cut_escaped(metadata.description, STATE_METADATA_BUDGET["description"]),
    )


class StepState(BaseModel):
    """What flows between the state machine's steps (and what the Record state writes).

    Kept small: `metadata` is bounded (state_metadata), and `record` (set once the item is decided)
    holds only the answer's fields, as UpdateItem parameters for the Record state.
    """

    object: ObjectRef
    force: bool = False
    metadata: GifMetadata = GifMetadata()
    classification: Classification
    execution: str | None = None
    record: dict[str, Any] | None = None  # UpdateItem parameters (no TableName) for the Record state
    # Set by the state machine's Catch on a stage ({"stage", "Error", "Cause"}); the next step records it.
    upstream_error: dict[str, Any] | None = None
    # A rerun that found the item changed under it (a newer upload): it ends without writing.
    superseded: bool = False
    # A backfill child that leaves the item as it is, and why (a person's answer, a fresh result).
    kept: str | None = None

    @property
    def decided(self) -> bool:
        return self.classification.status in (Status.CLASSIFIED, Status.FAILED, Status.SKIPPED)

    @property
    def decided_by(self) -> StageName | None:
        """The stage that classified the object in this step (the handlers' `Decided_<stage>` metric);
        None when nothing was decided, or the run ends without writing (superseded, kept)."""
        c = self.classification
        if c.status is not Status.CLASSIFIED or self.superseded or self.kept:
            return None
        return c.decided_by

    def with_record(self, encode: RecordEncoder, prices: Prices | None = None) -> StepState:
        """Attach the Record state's request once decided (undecided states go to the next stage)."""
        if not self.decided or not self.execution:
            return self.model_copy(update={"record": None})
        answer = classification_fields(self.classification, execution=self.execution, prices=prices)
        # Only while pending: a second run of this execution (Express starts are at-least-once) finds
        # the answer recorded and leaves it.
        request = encode(self.object.pk, answer, execution=self.execution, only_pending=True)
        return self.model_copy(update={"record": request})


class UploadOutcome(BaseModel):
    pk: str
    status: Status
    written: bool
    decided_by: StageName | None = None  # the stage that classified it, when its result was written
    execution: str | None = None
    started: bool = False
    # The result whose answer it took (the same bytes and metadata), when it took one and it was written.
    reused_from: str | None = None
    reuse_saved_usd: float | None = None  # ...and what deciding that result had cost
    reuse_lookup_failed: bool = False  # the lookup of a result to reuse could not read the table


class UploadTriage:
    """Checks an upload and runs the cheap stages on it: what the upload path and a rerun share."""

    def __init__(
        self, settings: Settings, cascade: Cascade, source: ObjectSource, upload_suffix: str = ".gif"
    ) -> None:
        self.settings = settings
        self.cascade = cascade
        self.source = source
        self.upload_suffix = upload_suffix  # the stack's UploadSuffix (see is_upload)

    def is_upload(self, ref: ObjectRef) -> bool:
        """Whether the object is an upload (the trigger filters by prefix only: see is_upload_key); a
        sidecar or another file is left alone, with no item, on the upload path and in reruns alike."""
        return is_upload_key(ref.key, self.upload_suffix)

    def classify(self, ref: ObjectRef) -> tuple[ObjectRef, GifMetadata, Classification]:
        """Check the upload and run triage; rejected uploads come back as failed/skipped results.

        Anything unexpected while reading the upload or triaging it (a parser bug on hostile metadata,
        say) is a `failed` result with the error, not a failed invocation: retries would fail alike
        and the upload would end in the dead-letter queue without a result. Storage that cannot be
        reached (SourceUnavailable) is the exception: that is worth retrying.
        """
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
            item = GifItem(id=ref.pk, metadata=metadata)
            return ref, metadata, self.cascade.run(item, only=TRIAGE)
        except ObjectGone as exc:
            return ref, metadata, self.rejected("skipped", f"object deleted before it was read: {exc}")
        except ObjectArchived as exc:
            return ref, metadata, self.rejected("failed", archived_reason(exc))
        except RejectedUpload as exc:
            return ref, metadata, self.rejected(exc.status, exc.reason)
        except SourceUnavailable:
            raise
        except Exception as exc:
            log.exception("unexpected error reading or triaging %s", ref.pk)
            reason = f"unexpected error reading the upload: {type(exc).__name__}: {exc}"
            return ref, metadata, self.rejected("failed", reason[:500])

    def rejected(self, status: str, reason: str) -> Classification:
        return self.cascade.start().model_copy(update={"status": Status(status), "reason": reason})



class Triage(UploadTriage):
    """An S3 upload, end to end: a decided result, or `pending` and the state machine's execution."""

    def __init__(
        self,
        settings: Settings,
        cascade: Cascade,
        source: ObjectSource,
        store: ResultStore,
        escalator: Escalator,
        execution_name: ExecutionNamer,
        upload_suffix: str = ".gif",
    ) -> None:
        super().__init__(settings, cascade, source, upload_suffix)
        self.store = store
        self.escalator = escalator
        self.execution_name = execution_name

    def handle_upload(self, ref: ObjectRef) -> UploadOutcome:
        ref, metadata, classification = self.classify(ref)
        prices = self.settings.prices
        if classification.status is not Status.UNDECIDED:
            item = result_item(ref, classification, metadata=metadata, prices=prices)
            written = self.store.put(item)
            decided_by = classification.decided_by if classification.status is Status.CLASSIFIED else None
            return UploadOutcome(
                pk=ref.pk, status=classification.status, written=written,
                decided_by=decided_by if written else None,
            )
        try:
            reused = self._reused(result_item(ref, classification, metadata=metadata, prices=prices))
        except SourceUnavailable:
            # Costs the upload nothing but the saving: it goes on to the state machine. Counted, so
            # that a stack whose lookups always fail (a missing index or permission) shows it.
            log.warning("looking for a result to reuse for %s failed; classifying it", ref.pk, exc_info=True)
            reused, lookup_failed = None, True
        else:
            lookup_failed = False
        if reused is not None:
            written = self.store.put(reused)
            return UploadOutcome(pk=ref.pk, status=reused.status, written=written,
                                 reused_from=reused.reused_from if written else None,
                                 reuse_saved_usd=reused.reused_cost_usd if written else None)
        name = self.execution_name(ref, metadata)
        pending = classification.model_copy(update={"status": Status.PENDING})
        item = result_item(ref, pending, metadata=metadata, execution=name, prices=prices)
        if not self.store.put(item, kind="pending"):
            # A newer upload's result, or this upload's finished one: this event is stale or repeated.
            return UploadOutcome(pk=ref.pk, status=pending.status, written=False, execution=name,
                                 reuse_lookup_failed=lookup_failed)
        state = StepState(
            object=ref, metadata=state_metadata(metadata), classification=classification, execution=name
        )
        started = self.escalator.start(name, state.model_dump(mode="json", exclude={"record"}))
        if started == "closed":
            # This upload's execution ended, yet the item was pending again: it ended without recording
            # (or recorded just now). Never leave `pending` with nothing running: fail it if still so.
            failed = classification.model_copy(
                update={
                    "status": Status.FAILED,
                    "reason": f"execution {name} ended without recording a result; rerun to retry",
                }
            )
            answer = classification_fields(failed, execution=name, prices=prices)
            written = self.store.record(ref.pk, answer, execution=name, only_pending=True)
            return UploadOutcome(pk=ref.pk, status=Status.FAILED, written=written, execution=name,
                                 reuse_lookup_failed=lookup_failed)
        return UploadOutcome(
            pk=ref.pk, status=pending.status, written=True, execution=name, started=started == "started",
            reuse_lookup_failed=lookup_failed,
        )

    def _reused(self, item: ResultItem) -> ResultItem | None:
        """`item` (undecided by triage) with the answer of a result of the same content, or None.
        Only for what triage leaves: what it decides costs less than the lookup. SourceUnavailable
        when the results cannot be read."""
        options = self.settings.reuse
        if not options.enabled or item.content_key is None:
            return None
        found = [s for s in self.store.same_content(item.content_key, options.look_at) if reusable(s, item)]
        if not found:
            return None
        # A person's answer first: the best there is for these bytes and words.
        return reused_item(item, next((s for s in found if s.decided_by == HUMAN), found[0]))

    def handle_removal(self, ref: ObjectRef, event_name: str) -> UploadOutcome:
        """An upload deleted (or expired by a lifecycle rule): its result becomes a tombstone
        (`deleted_item`), so that nothing goes on serving a category for a GIF that is gone. Not when
        the key has an object again: a newer upload (whose own event classifies it), or a versioned
        bucket's older version deleted while the current one stays. The write is ordered like an
        upload's: a newer upload's result is never replaced."""
        try:
            self.source.head(ref.model_copy(update={"version_id": None}))  # the key's object as it is now
        except ObjectGone:
            pass
        else:
            return UploadOutcome(pk=ref.pk, status=Status.DELETED, written=False)
        gone = "expired by a lifecycle rule" if event_name.startswith("LifecycleExpiration:") else "deleted"
        item = deleted_item(ref, f"object {gone} ({event_name})",
                            keep_days=self.settings.limits.deleted_result_days)
        return UploadOutcome(pk=ref.pk, status=Status.DELETED, written=self.store.put(item))

    def handle_sidecar(self, ref: ObjectRef) -> UploadOutcome | None:
        """A sidecar put after its upload: its upload is classified again through the state machine's
        rerun path, which writes only when the result was made from other metadata than the object has
        now (`metadata_changed_only`), never over a person's answer, and never over a newer upload.
        None when the key is no upload's sidecar, or its upload is not there (yet), or was put after
        the sidecar: an upload's own event reads the sidecar put before it."""
        key = sidecar_upload_key(ref.key, self.upload_suffix)
        if key is None:
            return None
        upload = ObjectRef(bucket=ref.bucket, key=key)
        try:
            upload, _ = self.source.head(upload)
        except (ObjectGone, ObjectArchived):
            return None
        if _put_after(upload, ref):
            return None
        name = self.execution_name(ref, GifMetadata())  # one per sidecar version: a repeated event, one name
        request = {"bucket": upload.bucket, "key": upload.key, "force": True, "metadata_changed_only": True}
        started = self.escalator.start(name, request)
        return UploadOutcome(
            pk=upload.pk, status=Status.PENDING, written=False, execution=name, started=started == "started"
        )


class RerunTriage(UploadTriage):
    """The state machine's triage step, for executions started without a triage result (reruns and
    backfill children)."""

    def __init__(
        self,
        settings: Settings,
        cascade: Cascade,
        source: ObjectSource,
        store: ResultStore,
        record_request: RecordEncoder,
        upload_suffix: str = ".gif",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, cascade, source, upload_suffix)
        self.store = store
        self.record_request = record_request
        self.sleep, self.clock = sleep, clock

    def prepare(
        self, ref: ObjectRef, *, force: bool, execution: str, stale_only: bool = False,
        metadata_changed_only: bool = False,
    ) -> StepState:
        """Take the item over for this execution (a pending item naming it, with the full metadata),
        so that Record, which finishes only its own execution's item, can write the answer. Leaves it
        alone (`kept`), writing nothing, when it holds a person's answer for the object as it is now,
        with `stale_only` when its result is fresh (see `_kept`), with `metadata_changed_only` when
        its result was made from the metadata the object has now or none comes (see `_own_result`),
        and when the request is not about an upload as it is now (see `_not_an_upload`).
        """
        why = self._not_an_upload(ref)
        if why:
            return StepState(object=ref, classification=self.cascade.start(), execution=execution, kept=why)
        stored = self.store.get(ref.pk)
        if metadata_changed_only:
            stored = self._own_result(ref, stored)
            if stored is None:
                waited = (f"no result for the object as it is now after "
                          f"{self.settings.limits.sidecar_wait_seconds:g} s: the upload's own event has "
                          "not been read yet, and reads its metadata")
                return StepState(object=ref, classification=self.cascade.start(), execution=execution,
                                 kept=waited)
        kept = self._kept(ref, stored, stale_only=stale_only)
        if kept:
            return StepState(object=ref, classification=self.cascade.start(), execution=execution, kept=kept)
        ref, metadata, classification = self.classify(ref)
        alike = stored is not None and _read_alike(stored, ref, metadata, classification)
        if metadata_changed_only and alike:
            kept = "its result was made from the metadata it has now"
            return StepState(object=ref, classification=self.cascade.start(), execution=execution, kept=kept)
        stored = self.store.get(ref.pk)  # again: what the take-over's condition must see
        pending = classification.model_copy(update={"status": Status.PENDING})
        item = result_item(ref, pending, metadata=metadata, execution=execution, prices=self.settings.prices)
        item = item.model_copy(update={"replaces": taken_over(stored, ref.etag)})
        owned = self.store.take_over(item, stored, force=force)
        state = StepState(
            object=ref,
            force=force,
            metadata=state_metadata(metadata),
            classification=classification,
            execution=execution,
            superseded=not owned,
        )
        return state.with_record(self.record_request, self.settings.prices)

    def _own_result(self, ref: ObjectRef, stored: ResultItem | None) -> ResultItem | None:
        """The result of the object as it is now (pending or final), waited for. A late sidecar's rerun
        may come while that upload's own event is between its read and its write, finding no result or
        an older upload's: that read may have missed the sidecar, and the upload's write would replace
        whatever the rerun took over, so neither keeping nor classifying at once is safe. Once the
        upload's result is there, `_read_alike` tells whether it was made from the metadata the object
        has now. None after `limits.sidecar_wait_seconds`: the upload's event has not been read (a cold
        start, a retry, the dead-letter queue), and whenever it is, it reads the sidecar. A GIF gone
        (or archived) has no result to wait for: `stored` as it is, which the read then settles."""
        try:
            current, _ = self.source.head(ref)
        except (ObjectGone, ObjectArchived):
            return stored
        deadline = self.clock() + self.settings.limits.sidecar_wait_seconds
        pause = 0.1
        while not _about(stored, current):
            left = deadline - self.clock()
            if left <= 0:
                return None
            self.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)
            stored = self.store.get(ref.pk)
        return stored

    def _not_an_upload(self, ref: ObjectRef) -> str | None:
        """Why the request names no upload as it is now, or None. A key without the upload suffix (a
        sidecar, another file) has no result, as on the upload path; and the item is about the key's
        current object, so a rerun naming another version would write that version's answer (or,
        for a version that does not exist, "deleted") over the current object's."""
        if not self.is_upload(ref):
            return f"not an upload: the key does not end with {self.upload_suffix}"
        if ref.version_id in (None, "null"):
            return None
        try:
            current, _ = self.source.head(ref.model_copy(update={"version_id": None}))
        except ObjectGone:
            return None  # nothing there now: classified as a rejected upload ("deleted before it was read")
        if current.version_id != ref.version_id:
            return (f"not the current version: {ref.version_id} is not the object's version now "
                    f"({current.version_id}); a result is about the key's current object")
        return None

    def _kept(self, ref: ObjectRef, stored: ResultItem | None, *, stale_only: bool) -> str | None:
        """Why the stored result stays as it is, or None to classify the object.

        A result is fresh when it is finished (classified or skipped), made with this taxonomy version,
        and about the object as it is now (same ETag): a missing, pending, failed or undecided result,
        one of another taxonomy, or one of an older upload of the key, is stale. A person's answer for
        the object as it is now always stays (the take-over's condition holds that too).
        """
        if stored is None:
            return None
        if stored.status is Status.DELETED:
            try:
                self.source.head(ref)
            except ObjectGone:
                return "deleted: the object is gone, and its result says so until it expires"
            return None  # there again: its own upload event classifies it too
        human = stored.decided_by == HUMAN
        if not (human or stale_only):
            return None
        try:
            current, _ = self.source.head(ref)
        except ObjectGone:
            return None  # classified as a rejected upload: "deleted before it was read"
        if (stored.etag or None) != current.etag:
            return None
        if human:
            return f"a person's answer ({stored.primary})"
        version = self.cascade.taxonomy_version
        finished = stored.status in (Status.CLASSIFIED, Status.SKIPPED)
        if finished and stored.taxonomy_version == version:
            return f"fresh: {stored.status.value} with taxonomy {version}"
        return None


class StageStep:
    """Runs one later stage of the cascade on a state machine state."""

    # What the last item's ask for a newer published artefact did (application.artefacts:
    # "loaded", "refused", "failed"); None when nothing new was found, or the step follows none.
    artefact_outcome: str | None = None

    def __init__(
        self,
        cascade: Cascade,
        stage: StageName,
        source: ObjectSource,
        settings: Settings,
        record_request: RecordEncoder,
    ) -> None:
        self.cascade = cascade
        self.stage = stage
        self.source = source
        self.settings = settings
        self.record_request = record_request

    def run(self, state: StepState) -> StepState:
        classification = state.classification
        if classification.status is not Status.UNDECIDED:
            # Decided, skipped or failed already (a hand-built state, a direct invoke: the state
            # machine's Choice states send only undecided ones here): nothing for this stage to add.
            return state.with_record(self.record_request, self.settings.prices)
        if state.upstream_error:
            # The previous step failed (its Catch passed the error on): record it and carry on.
            classification = classification.model_copy(
                update={"stages": [*classification.stages, failed_trace(state.upstream_error)]}
            )
        item = GifItem(id=state.object.pk, metadata=state.metadata)
        size = state.object.size
        # The image paths read the GIF: CLIP in the embed step, a text-less item's frames in the LLM step.
        if size and size <= self.settings.limits.max_gif_bytes and self._reads_gif(item):
            try:
                item = item.model_copy(update={"gif": self.source.read(state.object)})
            except (ObjectGone, ObjectArchived) as exc:
                # As triage records it: the reason, not a failed invocation with a stack trace.
                status, reason = (
                    (Status.SKIPPED, f"object deleted before it was read: {exc}")
                    if isinstance(exc, ObjectGone) else (Status.FAILED, archived_reason(exc))
                )
                ended = classification.model_copy(update={"status": status, "reason": reason})
                return state.model_copy(
                    update={"classification": ended, "upstream_error": None}
                ).with_record(self.record_request, self.settings.prices)
        classification = self.cascade.run(item, classification, only=(self.stage,))
        if self.stage is StageName.LLM and classification.status is Status.UNDECIDED:
            # The LLM is the last stage: an answer below its thresholds is still not a decision.
            classification = classification.model_copy(
                update={"status": Status.FAILED, "reason": "no stage reached a confident answer"}
            )
        return state.model_copy(
            update={"classification": classification, "upstream_error": None}
        ).with_record(self.record_request, self.settings.prices)

    def trace(self, before: StepState, after: StepState) -> StageTrace | None:
        """This stage's trace, when `run` ran it on `before` (the handlers count what ran: an item
        deleted before it was read, or a state decided already, did not reach the stage)."""
        added = after.classification.stages[len(before.classification.stages):]
        return next((t for t in added if t.stage is self.stage), None)

    def _reads_gif(self, item: GifItem) -> bool:
        return any(s.stage.wants_gif(item) for s in self.cascade.steps if s.stage.name is self.stage)


def _read_alike(
    stored: ResultItem, ref: ObjectRef, metadata: GifMetadata, classification: Classification
) -> bool:
    """Whether reading the object now gives what its result was made from: the same object and metadata,
    and, when the read itself failed (a sidecar that does not parse reads as no metadata), the same
    failure."""
    if stored.etag != ref.etag or stored.metadata_digest != metadata_digest(metadata):
        return False
    if classification.status in (Status.FAILED, Status.SKIPPED):
        return (stored.status, stored.reason) == (classification.status, classification.reason)
    return True


def _about(stored: ResultItem | None, current: ObjectRef) -> bool:
    """Whether a result is about the object as it is now: its ETag, and its Last-Modified where both
    are known (identical bytes uploaded again have the same ETag)."""
    if stored is None or stored.etag != current.etag:
        return False
    return stored.last_modified is None or current.last_modified is None or (
        stored.last_modified == current.last_modified
    )


def _put_after(upload: ObjectRef, sidecar: ObjectRef) -> bool:
    """Whether the upload was put after its sidecar's event: its Last-Modified (whole seconds, the
    start of its upload) is in a later second than the time S3 finished the sidecar's put, so the
    upload's own event read the sidecar. Unknown or within the same second: not known to be."""
    if upload.last_modified is None or sidecar.event_time is None:
        return False
    if upload.last_modified.tzinfo is None or sidecar.event_time.tzinfo is None:
        return False  # a time without its zone (a hand-made event) orders nothing
    return upload.last_modified > sidecar.event_time


def archived_reason(exc: ObjectArchived) -> str:
    # Failed, not skipped: `gifcat backfill --stale-only` classifies it again once it is restored.
    return f"{exc}; restore it, then run gifcat backfill --stale-only"


def failed_trace(error: dict[str, Any]) -> StageTrace:
    """A stage the state machine caught failing, as a trace: {"stage", "Error", "Cause"}."""
    return StageTrace(
        stage=StageName(error.get("stage", StageName.EMBEDDING.value)),
        decided=False,
        elapsed_ms=0.0,
        error=f"{error.get('Error', 'Error')}: {str(error.get('Cause', ''))[:500]}",
    )
