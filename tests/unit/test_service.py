"""The triage service against in-memory ports: what it writes and starts for each kind of upload."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from gifcat.adapters.dynamodb import record_request
from gifcat.application.events import TriageStepEvent
from gifcat.application.ingest import metadata_from
from gifcat.application.ports import ObjectArchived, ObjectGone, SourceUnavailable, StartOutcome
from gifcat.application.service import (
    STATE_METADATA_BUDGET,
    RerunTriage,
    StageStep,
    StepState,
    Triage,
    state_metadata,
)
from gifcat.config import Settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.model import Classification, GifItem, GifMetadata, StageName, StageOutput, Status
from gifcat.domain.result import (
    ObjectRef,
    ResultAnswer,
    ResultItem,
    WriteKind,
    content_key,
    deleted_item,
    result_item,
    reused_item,
)
from gifcat.domain.stages import Stage
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import Taxonomy


class Objects:
    def __init__(
        self, body: bytes | None, metadata: dict[str, str] | None = None, sidecar: bytes | None = None
    ):
        self.body, self.metadata, self.sidecar_body = body, metadata or {}, sidecar
        self.reads: list[int | None] = []
        self.read_error: Exception | None = None  # what reading the object raises (head still works)

    def head(self, ref: ObjectRef) -> tuple[ObjectRef, dict[str, str]]:
        if self.body is None:
            raise ObjectGone(ref.key)
        changed = {"size": len(self.body), "etag": "e1", "last_modified": datetime(2026, 1, 1, tzinfo=UTC)}
        return ref.model_copy(update=changed), self.metadata

    def read(self, ref: ObjectRef, first: int | None = None) -> bytes:
        self.reads.append(first)
        if isinstance(self.read_error, Exception):
            raise self.read_error
        assert self.body is not None
        return self.body[:first] if first else self.body

    def sidecar(self, ref: ObjectRef, max_bytes: int) -> bytes | None:
        return self.sidecar_body


class Store:
    def __init__(self, accept: bool = True, stored: ResultItem | None = None) -> None:
        self.items: list[ResultItem] = []
        self.records: list[tuple[str, ResultAnswer, str, bool]] = []
        self.takeovers: list[tuple[ResultItem, ResultItem | None, bool]] = []
        self.accept = accept
        self.stored = stored
        self.by_content: list[ResultItem] = []  # what the index by content holds, newest first
        self.lookups: list[tuple[str, int]] = []
        self.lookup_error: Exception | None = None

    def put(self, item: ResultItem, *, kind: WriteKind = "result") -> bool:
        self.items.append(item)
        return self.accept

    def get(self, pk: str) -> ResultItem | None:
        return self.stored

    def take_over(self, item: ResultItem, stored: ResultItem | None, *, force: bool) -> bool:
        self.takeovers.append((item, stored, force))
        return self.accept

    def record(self, pk: str, answer: ResultAnswer, *, execution: str, only_pending: bool = False) -> bool:
        self.records.append((pk, answer, execution, only_pending))
        return True

    def same_content(self, content_key: str, limit: int) -> list[ResultItem]:
        self.lookups.append((content_key, limit))
        if self.lookup_error is not None:
            raise self.lookup_error
        return [i for i in self.by_content if i.content_key == content_key][:limit]


class Starter:
    def __init__(self, outcome: StartOutcome = "started") -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.outcome = outcome

    def start(self, name: str, payload: dict[str, Any]) -> StartOutcome:
        self.started.append((name, payload))
        return self.outcome


REF = ObjectRef(bucket="b", key="uploads/x.gif")


@pytest.fixture
def make(settings: Settings, taxonomy: Taxonomy) -> Callable[..., tuple[Triage, Store, Starter]]:
    def build(
        objects: Objects, store: Store | None = None, starter: Starter | None = None
    ) -> tuple[Triage, Store, Starter]:
        cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy)
        store, starter = store or Store(), starter or Starter()
        return (
            Triage(settings, cascade, objects, store, starter, lambda ref, meta: f"name-{ref.etag}"),
            store,
            starter,
        )

    return build


def test_decided_upload_writes_once_and_starts_nothing(make: Callable, gif: Callable[..., bytes]) -> None:
    objects = Objects(gif(), {"tags": "pizza,food"})
    triage, store, starter = make(objects)
    outcome = triage.handle_upload(REF)
    assert (outcome.status, outcome.written, outcome.decided_by) == (Status.CLASSIFIED, True, StageName.TAGS)
    assert [i.primary for i in store.items] == ["food"] and starter.started == []
    assert store.items[0].content_key is None  # triage decides it again, for less than a lookup
    assert objects.reads == [triage.settings.limits.sniff_bytes]  # only the first bytes were read


def test_the_item_says_what_reading_the_metadata_cut(make: Callable, gif: Callable[..., bytes]) -> None:
    tags = ",".join(["pizza", "food", *(f"t{i}" for i in range(120))])
    triage, store, _ = make(Objects(gif(), {"tags": tags}))
    triage.handle_upload(REF)
    (item,) = store.items
    assert item.metadata_cut == ["tags: the first 100 of 122 kept"] and len(item.tags or []) == 100
    assert "metadata_cut" in item.stored()


def test_undecided_upload_is_pending_and_handed_on(make: Callable, gif: Callable[..., bytes]) -> None:
    triage, store, starter = make(Objects(gif(), {"title": "Mood"}))
    outcome = triage.handle_upload(REF)
    assert outcome.status is Status.PENDING and outcome.execution == "name-e1"
    assert outcome.decided_by is None  # nothing decided yet: no Decided_<stage> metric
    assert store.items[0].status == "pending" and store.items[0].execution == "name-e1"
    ((name, payload),) = starter.started
    assert name == "name-e1"
    state = StepState.model_validate(payload)
    assert state.classification.status is Status.UNDECIDED and state.metadata.title == "Mood"


def test_a_decision_that_was_not_written_is_not_counted(make: Callable, gif: Callable[..., bytes]) -> None:
    # A repeated or stale event decides again but writes nothing: the metric counts each object once.
    triage, _, _ = make(Objects(gif(), {"tags": "pizza,food"}), Store(accept=False))
    outcome = triage.handle_upload(REF)
    assert (outcome.status, outcome.written, outcome.decided_by) == (Status.CLASSIFIED, False, None)


def test_duplicate_of_a_finished_upload_starts_nothing(make: Callable, gif: Callable[..., bytes]) -> None:
    triage, _, starter = make(Objects(gif(), {"title": "Mood"}), Store(accept=False))
    assert triage.handle_upload(REF).written is False
    assert starter.started == []


@pytest.mark.parametrize(
    ("objects", "status", "reason"),
    [
        (Objects(None), "skipped", "deleted before it was read"),
        (Objects(b""), "skipped", "empty object"),
        (Objects(b"hello, not a gif"), "skipped", "not a GIF"),
    ],
)
def test_rejected_uploads_are_recorded(make: Callable, objects: Objects, status: str, reason: str) -> None:
    triage, store, starter = make(objects)
    assert triage.handle_upload(REF).status.value == status
    assert reason in (store.items[0].reason or "") and starter.started == []


def test_an_archived_upload_is_a_failed_result_that_says_how_to_retry(
    make: Callable, gif: Callable[..., bytes]
) -> None:
    objects = Objects(gif())
    objects.read_error = ObjectArchived("s3://b/k.gif is in an archive storage class")
    triage, store, starter = make(objects)
    assert triage.handle_upload(REF).status is Status.FAILED  # not a retry: retrying cannot help
    assert store.items[0].reason == (
        "s3://b/k.gif is in an archive storage class; restore it, then run gifcat backfill --stale-only"
    )
    assert starter.started == []


@pytest.mark.parametrize(
    ("error", "status", "reason"),
    [
        (ObjectGone("s3://b/k.gif no longer exists"), Status.SKIPPED, "object deleted before it was read"),
        (ObjectArchived("s3://b/k.gif is archived"), Status.FAILED, "restore it, then run gifcat backfill"),
    ],
)
def test_a_later_step_that_cannot_read_the_gif_records_why(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes], error: Exception, status: Status,
    reason: str,
) -> None:
    # Deleted (or archived) between triage and the image path: recorded as triage would record it,
    # not a failed invocation whose stack trace becomes the item's reason.
    objects = Objects(gif())
    objects.read_error = error
    cascade = Cascade.from_settings(settings, [Looking()], taxonomy)
    state = StepState(
        object=REF.model_copy(update={"size": 10}), classification=cascade.start(), execution="exec-1"
    )
    out = StageStep(cascade, StageName.LLM, objects, settings, record_request).run(state)
    assert out.classification.status is status and reason in (out.classification.reason or "")
    assert out.record is not None  # the state machine records it


def test_stage_step_records_an_upstream_failure(settings: Settings, taxonomy: Taxonomy) -> None:
    cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy)
    state = StepState(
        object=REF.model_copy(update={"size": 10}),
        classification=cascade.start(),
        upstream_error={"stage": "embedding", "Error": "MemoryError", "Cause": "out of memory"},
        execution="exec-1",
    )
    out = StageStep(cascade, StageName.TAGS, Objects(None), settings, record_request).run(state)
    assert out.upstream_error is None
    assert out.classification.stages[0].error == "MemoryError: out of memory"
    assert out.record is None  # still undecided: the next stage runs, there is nothing to record yet


def test_unexpected_error_reading_metadata_is_a_failed_result(
    make: Callable, gif: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(user_metadata: dict[str, str], sidecar: bytes | None) -> None:
        raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")

    monkeypatch.setattr("gifcat.application.service.metadata_from", explode)
    triage, store, starter = make(Objects(gif(), {"title": "Mood"}))
    outcome = triage.handle_upload(REF)
    assert (outcome.status, outcome.written) == (Status.FAILED, True)
    (item,) = store.items
    assert item.status == "failed" and starter.started == []
    assert item.reason is not None
    assert item.reason.startswith("unexpected error reading the upload: RecursionError: maximum recursion")


def test_storage_outage_is_not_a_result_but_a_retry(make: Callable, gif: Callable[..., bytes]) -> None:
    class Down(Objects):
        def sidecar(self, ref: ObjectRef, max_bytes: int) -> bytes | None:
            raise SourceUnavailable("S3 get sidecar: SlowDown: reduce your request rate")

    triage, store, _ = make(Down(gif(), {"title": "Mood"}))
    with pytest.raises(SourceUnavailable):
        triage.handle_upload(REF)
    assert store.items == []  # the invocation fails and is retried, nothing half-written


def test_a_closed_execution_never_leaves_the_item_pending(make: Callable, gif: Callable[..., bytes]) -> None:
    # The item was pending again for this upload event, but its execution had already ended.
    triage, store, _ = make(Objects(gif(), {"title": "Mood"}), starter=Starter("closed"))
    outcome = triage.handle_upload(REF)
    assert outcome.status is Status.FAILED
    ((pk, fields, execution, only_pending),) = store.records
    assert (pk, execution, only_pending) == (REF.pk, "name-e1", True)
    assert fields.status == "failed" and "ended without recording" in (fields.reason or "")


def test_state_carries_bounded_metadata_and_the_item_all_of_it(
    make: Callable, gif: Callable[..., bytes]
) -> None:
    tags = ["🎉" * 2000] * 30  # 60,000 emoji: 720 KB once JSON-escaped
    triage, store, starter = make(Objects(gif(), {}, sidecar=json.dumps({"tags": tags}).encode()))
    triage.handle_upload(REF)
    assert store.items[0].status == "pending" and len(store.items[0].tags or []) == len(tags)
    ((_, payload),) = starter.started
    assert len(json.dumps(payload)) < 16 * 1024  # escaped, as Step Functions' local interpreter counts
    state = StepState.model_validate(payload)
    assert state.metadata.tags and all(t == "🎉" * len(t) for t in state.metadata.tags)


def test_state_metadata_keeps_small_metadata_whole() -> None:
    meta = GifMetadata(title="Pizza GIF", tags=("pizza", "🍕", "cheese"), description="A slice.")
    assert state_metadata(meta) == meta
    big = GifMetadata(title="é" * 5000, tags=tuple(f"tag{i}" for i in range(5000)), description="x" * 9000)
    cut = state_metadata(big)
    assert len(json.dumps(cut.title)) <= STATE_METADATA_BUDGET["title"]
    assert len(json.dumps(cut.description)) <= STATE_METADATA_BUDGET["description"]
    assert sum(len(json.dumps(t)) + 1 for t in cut.tags) <= STATE_METADATA_BUDGET["tags"]
    assert cut.tags == big.tags[: len(cut.tags)]  # the first tags, in order


def rerun(settings: Settings, taxonomy: Taxonomy, objects: Objects, store: Store) -> RerunTriage:
    cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy)
    return RerunTriage(settings, cascade, objects, store, record_request)


def test_rerun_takes_the_item_over_and_records_on_it(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    classified = Classification(status=Status.CLASSIFIED, primary="food", decided_by=StageName.TAGS)
    stored = result_item(REF.model_copy(update={"sequencer": "00AB"}), classified)
    store = Store(stored=stored)
    state = rerun(settings, taxonomy, Objects(gif(), {"tags": "pizza,food"}), store).prepare(
        REF, force=True, execution="console-1"
    )
    ((item, seen, force),) = store.takeovers
    assert (seen, force) == (stored, True)
    assert item.execution == "console-1" and item.status == "pending"
    assert not state.superseded and state.record is not None
    assert state.record["ConditionExpression"].startswith("#execution = :execution AND ")
    # Its own item, while pending: a second run of this execution leaves a recorded answer alone.
    assert state.record["ConditionExpression"].endswith(" AND #status = :pending")
    assert state.record["ExpressionAttributeValues"][":execution"] == {"S": "console-1"}


def test_a_rerun_of_a_key_without_the_upload_suffix_writes_nothing(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    # A console rerun or a backfill child of a sidecar or another file: no item, as on the upload path.
    store = Store()
    triage = rerun(settings, taxonomy, Objects(gif(), {"tags": "pizza,food"}), store)
    for key in ("uploads/notes.txt", "uploads/cat.gif.json"):
        state = triage.prepare(REF.model_copy(update={"key": key}), force=True, execution="run/3")
        assert state.kept == "not an upload: the key does not end with .gif"
    assert store.takeovers == []
    loud = REF.model_copy(update={"key": "uploads/LOUD.GIF"})
    state = triage.prepare(loud, force=True, execution="run/4")
    assert not state.kept and state.classification.decided_by is StageName.TAGS
    assert len(store.takeovers) == 1


class Versioned(Objects):
    """A versioned bucket whose key's current version is v2."""

    def head(self, ref: ObjectRef) -> tuple[ObjectRef, dict[str, str]]:
        if ref.version_id not in (None, "v1", "v2"):
            raise ObjectGone(f"no version {ref.version_id}")
        got, meta = super().head(ref)
        return got.model_copy(update={"version_id": ref.version_id or "v2"}), meta


@pytest.mark.parametrize("version", ["v1", "bogus"])
def test_a_rerun_of_another_version_writes_nothing_over_the_current_objects_result(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes], version: str
) -> None:
    # It wrote the older version's answer over the key's item, or "deleted" for a version that never was.
    store = Store()
    triage = rerun(settings, taxonomy, Versioned(gif(), {"tags": "pizza,food"}), store)
    state = triage.prepare(REF.model_copy(update={"version_id": version}), force=True, execution="c-1")
    assert state.kept == (f"not the current version: {version} is not the object's version now (v2); "
                          "a result is about the key's current object")
    assert store.takeovers == []
    current = triage.prepare(REF.model_copy(update={"version_id": "v2"}), force=True, execution="c-2")
    assert not current.kept and len(store.takeovers) == 1


def test_rerun_superseded_by_a_newer_upload(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    triage = rerun(settings, taxonomy, Objects(gif(), {"tags": "pizza,food"}), Store(accept=False))
    state = triage.prepare(REF, force=True, execution="console-2")
    assert state.classification.decided_by is StageName.TAGS  # decided, but the item is not its own:
    assert state.superseded and state.decided_by is None  # it writes nothing, so it counts nothing


def stored_item(taxonomy: Taxonomy, **fields: Any) -> ResultItem:
    """A result item as the table holds it for the object Objects serves (ETag e1)."""
    classified = Classification(
        status=Status.CLASSIFIED, primary="food", decided_by=StageName.TAGS, taxonomy_version=taxonomy.version
    )
    item = result_item(REF.model_copy(update={"etag": "e1"}), classified)
    return ResultItem.model_validate(item.model_dump() | fields)  # validated: "human" is a decider


@pytest.mark.parametrize(
    ("fields", "stale_only", "kept"),
    [
        ({}, True, "fresh: classified"),
        ({"status": "skipped", "decided_by": None}, True, "fresh: skipped"),
        ({}, False, None),  # without stale_only everything is classified again...
        ({"decided_by": "human"}, False, "a person's answer (food)"),  # ...but a person's answer
        ({"decided_by": "human", "taxonomy_version": "old"}, True, "a person's answer (food)"),
        ({"status": "failed"}, True, None),
        ({"status": "pending"}, True, None),
        ({"taxonomy_version": "2020-01-01.1"}, True, None),
        ({"etag": "e0"}, True, None),  # the result of an older upload of the key
        ({"etag": "e0", "decided_by": "human"}, False, None),  # a newer upload is classified as usual
    ],
)
def test_backfill_child_keeps_only_fresh_results_and_human_answers(
    settings: Settings, gif: Callable[..., bytes], taxonomy: Taxonomy, fields: dict[str, Any],
    stale_only: bool, kept: str | None,
) -> None:
    store = Store(stored=stored_item(taxonomy, **fields))
    triage = rerun(settings, taxonomy, Objects(gif(), {"tags": "pizza,food"}), store)
    state = triage.prepare(REF, force=True, execution="run/1", stale_only=stale_only)
    if kept is None:
        assert state.kept is None and len(store.takeovers) == 1
    else:
        assert state.kept is not None and state.kept.startswith(kept) and not store.takeovers
        assert state.record is None and state.decided_by is None  # nothing to write, nothing counted


def test_backfill_child_classifies_an_object_without_a_result(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    triage = rerun(settings, taxonomy, Objects(gif(), {"tags": "pizza,food"}), Store(stored=None))
    state = triage.prepare(REF, force=True, execution="run/2", stale_only=True)
    assert state.kept is None and state.classification.primary == "food" and state.record is not None
    assert state.decided_by is StageName.TAGS


class Arriving(Store):
    """A table where the upload's own result lands after `after` reads (never, with None); `before`
    is what it holds until then (an older upload's result, or nothing)."""

    def __init__(self, stored: ResultItem, after: int | None, before: ResultItem | None = None) -> None:
        super().__init__(stored=stored)
        self.after, self.before, self.reads = after, before, 0

    def get(self, pk: str) -> ResultItem | None:
        self.reads += 1
        return self.stored if self.after is not None and self.reads > self.after else self.before


class Clock:
    """time.monotonic and time.sleep, without waiting."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def sidecar_rerun(
    settings: Settings, taxonomy: Taxonomy, gif: bytes, read_before: GifMetadata, after: int | None,
    before: ResultItem | None = None,
) -> tuple[StepState, Arriving, Clock]:
    """A late sidecar's rerun (its tags: pizza, food) that finds `before` at first; the upload's own
    result, made from `read_before`, lands after `after` more reads of the table."""
    classified = Classification(status=Status.CLASSIFIED, primary="funny", decided_by=StageName.LLM,
                                taxonomy_version=taxonomy.version)
    store = Arriving(result_item(REF.model_copy(update={"etag": "e1"}), classified, metadata=read_before),
                     after, before)
    clock = Clock()
    cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy)
    triage = RerunTriage(settings, cascade, Objects(gif, {"tags": "pizza,food"}), store, record_request,
                         sleep=clock.sleep, clock=lambda: clock.now)
    state = triage.prepare(REF, force=True, execution="sidecar-1", metadata_changed_only=True)
    return state, store, clock


def test_a_late_sidecars_rerun_waits_for_the_uploads_own_result(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    # The upload's own event read the object just before the sidecar was put, and had not written yet
    # when the sidecar's rerun looked: keeping then lost the sidecar. The rerun waits for that result
    # and classifies when it was made from other metadata...
    state, store, clock = sidecar_rerun(settings, taxonomy, gif(), GifMetadata(), after=3)
    assert state.kept is None and state.classification.primary == "food"
    assert len(store.takeovers) == 1 and 0 < clock.slept < settings.limits.sidecar_wait_seconds
    # ...and keeps when it was made from the metadata the object has now.
    same = metadata_from({"tags": "pizza,food"}, None)
    state, store, _ = sidecar_rerun(settings, taxonomy, gif(), same, after=3)
    assert state.kept == "its result was made from the metadata it has now" and not store.takeovers


def test_a_late_sidecars_rerun_keeps_when_the_uploads_event_is_not_read_in_time(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    # No result at all: the upload's event is still queued (or retried, or dead-lettered), and reads the
    # sidecar whenever it is read. The rerun writes nothing, after waiting as long as the settings say.
    state, store, clock = sidecar_rerun(settings, taxonomy, gif(), GifMetadata(), after=None)
    assert state.kept == ("no result for the object as it is now after 10 s: the upload's own event "
                          "has not been read yet, and reads its metadata")
    assert not store.takeovers and state.record is None
    assert clock.slept == pytest.approx(settings.limits.sidecar_wait_seconds)
    assert store.reads > 5  # it looked again while it waited


@pytest.mark.parametrize("landed", [True, False])
def test_a_late_sidecars_rerun_waits_past_an_older_uploads_result(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes], landed: bool
) -> None:
    # The key held an older upload's result (ETag e0) when the new GIF and its sidecar came. Taking that
    # item over at once lost the sidecar when the new GIF's own event had read before it: that event's
    # write outranks a rerun's (a later upload), and replaced the rerun's item with a result made
    # without the sidecar. The rerun waits for the new upload's own result, as for none at all.
    older = result_item(REF.model_copy(update={"etag": "e0"}), Classification(status=Status.SKIPPED),
                        metadata=GifMetadata())
    state, store, clock = sidecar_rerun(settings, taxonomy, gif(), GifMetadata(), after=4 if landed else None,
                                        before=older)
    assert store.reads >= 5
    if landed:  # the new upload's result, made without the sidecar: classified again, with it
        assert state.kept is None and state.classification.primary == "food" and len(store.takeovers) == 1
        assert store.takeovers[0][1] is store.stored  # over the new upload's item, not the older one's
    else:
        assert state.kept is not None and state.kept.startswith("no result for the object as it is now")
        assert not store.takeovers and clock.slept == pytest.approx(settings.limits.sidecar_wait_seconds)


SIDECAR = ObjectRef(bucket="b", key="uploads/x.gif.json")


@pytest.mark.parametrize(
    ("event_time", "starts"),
    [
        (datetime(2025, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC), False),  # the upload came a second later
        (datetime(2026, 1, 1, 0, 0, 0, 200_000, tzinfo=UTC), True),  # the same second: either came first
        (datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC), True),  # the sidecar came after the upload
        (datetime(2025, 12, 31, 23, 59, 59, 500_000), True),  # a time without its zone orders nothing
        (None, True),
    ],
)
def test_a_sidecar_starts_a_rerun_unless_its_upload_was_put_after_it(
    make: Callable, gif: Callable[..., bytes], event_time: datetime | None, starts: bool
) -> None:
    # Objects' upload was last modified at 2026-01-01T00:00:00Z (S3 gives whole seconds). An upload put
    # after its sidecar read it on its own event: a rerun would cost a run and find nothing new.
    triage, store, starter = make(Objects(gif()))
    outcome = triage.handle_sidecar(SIDECAR.model_copy(update={"event_time": event_time}))
    assert (outcome is not None) is starts and bool(starter.started) is starts
    if starts:
        ((_, request),) = starter.started
        assert request == {"bucket": "b", "key": "uploads/x.gif", "force": True,
                           "metadata_changed_only": True}
    assert store.items == []


def test_rerun_event_without_its_execution_is_refused_when_parsed() -> None:
    # The rerun's item must name its execution: an event without one fails at the handler's parser,
    # not later inside the service.
    with pytest.raises(ValidationError, match="execution"):
        TriageStepEvent.model_validate({"request": {"bucket": "b", "key": "uploads/x.gif"}})
    event = TriageStepEvent.model_validate(
        {"request": {"bucket": "b", "key": "k"}, "execution": "arn:aws:states:r:1:execution:sm:console-3"}
    )
    assert event.execution_name == "console-3"


class Looking(Stage):
    """An LLM stage that reads the GIF of text-less items only, and skips them when told to."""

    name = StageName.LLM

    def __init__(self, skip: bool = False) -> None:
        self.skip = skip
        self.seen: list[bytes | None] = []

    def wants_gif(self, item: GifItem) -> bool:
        return item.metadata.is_empty

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        self.seen.append(item.gif)
        if self.skip:
            return StageOutput(stage=self.name, skipped="no text and no image model")
        return StageOutput(stage=self.name, error="scripted")


@pytest.mark.parametrize(("metadata", "reads"), [(GifMetadata(), True), (GifMetadata(title="Pizza"), False)])
def test_stage_step_reads_the_gif_only_when_its_stage_wants_it(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes], metadata: GifMetadata, reads: bool
) -> None:
    body, stage = gif(), Looking()
    objects = Objects(body)
    cascade = Cascade.from_settings(settings, [stage], taxonomy)
    state = StepState(
        object=REF.model_copy(update={"size": len(body)}),
        metadata=metadata,
        classification=cascade.start(),
        execution="exec-1",
    )
    StageStep(cascade, StageName.LLM, objects, settings, record_request).run(state)
    assert stage.seen == [body if reads else None]
    assert objects.reads == ([None] if reads else [])


def test_a_skipped_item_is_recorded_and_a_stale_only_backfill_keeps_it(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    cascade = Cascade.from_settings(settings, [Looking(skip=True)], taxonomy)
    ref = REF.model_copy(update={"size": 10, "etag": "e1"})
    state = StepState(object=ref, classification=cascade.start(), execution="exec-1")
    out = StageStep(cascade, StageName.LLM, Objects(gif()), settings, record_request).run(state)
    assert (out.classification.status, out.classification.reason) == (
        Status.SKIPPED,
        "no text and no image model",
    )
    assert out.record is not None  # the state machine records it
    stored = result_item(ref, out.classification, execution="exec-1")
    assert stored.status is Status.SKIPPED and stored.taxonomy_version == taxonomy.version
    # A backfill with stale_only leaves it: classifying it again would skip it again.
    store = Store(stored=stored)
    again = rerun(settings, taxonomy, Objects(gif()), store).prepare(
        REF, force=True, execution="run/3", stale_only=True
    )
    assert again.kept is not None and again.kept.startswith("fresh: skipped") and not store.takeovers


def test_a_state_decided_already_is_not_read_again_and_reached_no_stage(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    # The state machine sends only undecided states to the later steps; a direct invoke may send any.
    # The handlers count Reached_/Decided_ only for a trace this step added (StageStep.trace).
    stage = Looking(skip=True)
    cascade = Cascade.from_settings(settings, [stage], taxonomy)
    objects = Objects(gif())
    step = StageStep(cascade, StageName.LLM, objects, settings, record_request)
    undecided = StepState(object=REF.model_copy(update={"size": 10}), metadata=GifMetadata(),
                          classification=cascade.start(), execution="exec-1")
    ran = step.run(undecided)
    assert step.trace(undecided, ran) is not None and len(objects.reads) == 1
    again = step.run(ran)
    assert again.classification == ran.classification
    assert len(objects.reads) == 1  # the GIF is not read again for a decision already made
    assert step.trace(ran, again) is None
    assert again.record is not None  # what it holds is still recorded
    # An item deleted before the step read it did not reach the stage either.
    objects.read_error = ObjectGone("gone")
    assert step.trace(undecided, step.run(undecided)) is None


@pytest.mark.parametrize(("event_name", "gone"), [
    ("ObjectRemoved:Delete", "deleted"), ("ObjectRemoved:DeleteMarkerCreated", "deleted"),
    ("LifecycleExpiration:Delete", "expired by a lifecycle rule"),
])
def test_a_deleted_uploads_result_becomes_its_tombstone(make: Callable, event_name: str, gone: str) -> None:
    triage, store, starter = make(Objects(None))  # the key has no object now
    deletion = REF.model_copy(update={"sequencer": "00C0", "version_id": "v2"})
    outcome = triage.handle_removal(deletion, event_name)
    assert (outcome.status, outcome.written) == (Status.DELETED, True) and starter.started == []
    (item,) = store.items
    assert (item.status, item.reason) == (Status.DELETED, f"object {gone} ({event_name})")
    assert item.object_seq == deletion.object_seq  # ordered after every upload before the deletion
    assert (item.primary, item.labels, item.decided_by) == (None, [], None)
    days = triage.settings.limits.deleted_result_days
    assert abs(item.expires_at - (item.updated_at.timestamp() + days * 86400)) < 1  # type: ignore[operator]


def test_a_removal_while_the_key_has_an_object_writes_nothing(
    make: Callable, gif: Callable[..., bytes]
) -> None:
    # A newer upload landed after the deletion (its own event classifies it), or a versioned bucket
    # lost an older version: the key's object is there, and so is its result.
    triage, store, _ = make(Objects(gif()))
    outcome = triage.handle_removal(REF.model_copy(update={"version_id": "old"}), "ObjectRemoved:Delete")
    assert (outcome.status, outcome.written) == (Status.DELETED, False) and store.items == []


def test_a_rerun_of_a_deleted_object_keeps_its_tombstone(
    settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    tombstone = deleted_item(REF.model_copy(update={"sequencer": "00C0"}), "object deleted", keep_days=30)
    store = Store(stored=tombstone)
    state = rerun(settings, taxonomy, Objects(None), store).prepare(REF, force=True, execution="console-1")
    assert state.kept is not None and state.kept.startswith("deleted: the object is gone")
    assert store.takeovers == [] and store.items == []
    # Uploaded again: classified, whatever its own event does too.
    state = rerun(settings, taxonomy, Objects(gif(), {"tags": "pizza,food"}), store).prepare(
        REF, force=True, execution="console-2")
    assert state.kept is None and len(store.takeovers) == 1


def _decided_elsewhere(
    pending: ResultItem, pk: str = "s3://b/uploads/first.gif", **update: Any
) -> ResultItem:
    """A finished result of another upload with `pending`'s bytes and metadata: what the index finds."""
    key = pk.removeprefix("s3://b/")
    return pending.model_copy(update={
        "pk": pk, "key": key, "status": Status.CLASSIFIED, "primary": "funny", "labels": ["funny"],
        "scores": {"funny": 0.9, "cute": 0.2}, "decided_by": StageName.LLM, "confidence": 0.9,
        "evidence": ["llm: a cat falls off a sofa"], "models": {"llm": "gpt-4o-mini"},
        "prompt_version": "classify-v2", "execution": "name-old", **update,
    })


def _pending_of(make: Callable, objects: Objects) -> ResultItem:
    """The pending item triage writes for `objects` when nothing is reused (tags and rules leave it)."""
    triage, store, _ = make(objects)
    triage.handle_upload(REF)
    (pending,) = store.items
    assert pending.status == "pending" and pending.content_key
    return pending


def test_an_upload_of_the_same_bytes_and_metadata_takes_that_result_and_starts_nothing(
    make: Callable, gif: Callable[..., bytes]
) -> None:
    objects = Objects(gif(), {"title": "Mood"})
    source = _decided_elsewhere(_pending_of(make, objects))
    store = Store()
    store.by_content = [source]
    triage, store, starter = make(objects, store)
    outcome = triage.handle_upload(REF)
    assert starter.started == []
    (item,) = store.items
    assert (outcome.status, outcome.written, outcome.reused_from) == (Status.CLASSIFIED, True, source.pk)
    assert outcome.reuse_saved_usd == source.cost_usd  # the dashboard's ReuseSavedUsd
    assert outcome.decided_by is None  # no stage of this upload decided it: no Decided_<stage> metric
    assert (item.pk, item.status, item.primary, item.labels, item.decided_by) == (
        REF.pk, "classified", "funny", ["funny"], "llm")
    assert (item.reused_from, item.confidence, item.models, item.prompt_version) == (
        source.pk, 0.9, {"llm": "gpt-4o-mini"}, "classify-v2")
    assert item.reused_cost_usd == source.cost_usd > 0  # what deciding it cost: what taking it saved
    assert item.evidence[0].startswith(f"reused: the same bytes and metadata as {source.pk}, decided by llm")
    # What this upload cost is its own: triage's stages, no run, no LLM call.
    assert {t.stage for t in item.stages} <= {StageName.TAGS, StageName.RULES}
    assert item.cost and item.cost["llm_usd"] == 0 and item.cost["stepfunctions_usd"] == 0
    assert item.execution is None and "rerunnable" not in item.stored()
    assert store.lookups == [(item.content_key, triage.settings.reuse.look_at)]


@pytest.mark.parametrize("update", [
    {"status": Status.FAILED, "primary": None, "reason": "llm: timed out"},
    {"status": Status.PENDING, "primary": None},
    {"taxonomy_version": "an-older-taxonomy"},
    {"metadata_digest": "0000000000000000"},
    {"etag": "another"},
    {"size": 1},
], ids=["failed", "pending", "older-taxonomy", "other-metadata", "other-bytes", "other-size"])
def test_a_result_that_is_not_finished_or_not_of_the_same_content_is_not_reused(
    make: Callable, gif: Callable[..., bytes], update: dict[str, Any]
) -> None:
    objects = Objects(gif(), {"title": "Mood"})
    source = _decided_elsewhere(_pending_of(make, objects), **update)
    store = Store()
    store.by_content = [source]
    triage, store, starter = make(objects, store)
    outcome = triage.handle_upload(REF)
    assert outcome.status is Status.PENDING and outcome.reused_from is None
    assert not outcome.reuse_lookup_failed
    assert [i.status for i in store.items] == ["pending"] and len(starter.started) == 1


def test_a_persons_answer_is_taken_first_and_a_reused_one_names_the_result_that_was_decided(
    make: Callable, gif: Callable[..., bytes]
) -> None:
    objects = Objects(gif(), {"title": "Mood"})
    pending = _pending_of(make, objects)
    failed = _decided_elsewhere(pending, "s3://b/uploads/failed.gif", status=Status.FAILED, primary=None)
    llm = _decided_elsewhere(pending, "s3://b/uploads/other.gif")
    copy = _decided_elsewhere(pending, "s3://b/uploads/copy.gif", reused_from="s3://b/uploads/first.gif",
                              decided_by="human", primary="cute", labels=["cute"])
    store = Store()
    store.by_content = [failed, llm, copy]
    triage, store, _ = make(objects, store)
    assert triage.handle_upload(REF).reused_from == "s3://b/uploads/first.gif"
    (item,) = store.items
    assert (item.primary, item.decided_by, item.reused_from) == ("cute", "human", "s3://b/uploads/first.gif")
    # Taken again from this copy: still one line that says so, then the decision's own evidence.
    again = reused_item(item.model_copy(update={"pk": "s3://b/uploads/third.gif"}), item)
    assert again.reused_cost_usd == item.reused_cost_usd  # the decision's cost, not the copy's
    assert again.evidence == [
        "reused: the same bytes and metadata as s3://b/uploads/first.gif, decided by human",
        "llm: a cat falls off a sofa",
    ]
    # Without a person's answer, the first classified one (it is reused as decided: its own pk).
    store = Store()
    store.by_content = [failed, llm]
    triage, store, _ = make(objects, store)
    assert triage.handle_upload(REF).reused_from == "s3://b/uploads/other.gif"


def test_nothing_is_reused_when_reuse_is_off_or_the_lookup_fails_or_triage_decides(
    make: Callable, settings: Settings, taxonomy: Taxonomy, gif: Callable[..., bytes]
) -> None:
    objects = Objects(gif(), {"title": "Mood"})
    source = _decided_elsewhere(_pending_of(make, objects))
    # Off: no lookup at all.
    off = settings.model_copy(update={"reuse": settings.reuse.model_copy(update={"enabled": False})})
    cascade = Cascade.from_settings(off, triage_stages(off, taxonomy), taxonomy)
    store, starter = Store(), Starter()
    store.by_content = [source]
    Triage(off, cascade, objects, store, starter, lambda ref, meta: "name").handle_upload(REF)
    assert store.lookups == [] and [i.status for i in store.items] == ["pending"]
    # The index cannot be read: the upload goes on as new, it is not lost nor retried.
    store = Store()
    store.by_content, store.lookup_error = [source], SourceUnavailable("throttled")
    triage, store, starter = make(objects, store)
    outcome = triage.handle_upload(REF)
    assert outcome.status is Status.PENDING and outcome.reuse_lookup_failed and len(starter.started) == 1
    # Tags decide: triage does not look (its answer costs less than the lookup).
    store = Store()
    triage, store, _ = make(Objects(gif(), {"tags": "pizza,food"}), store)
    assert triage.handle_upload(REF).decided_by is StageName.TAGS and store.lookups == []


def test_the_content_key_is_the_bytes_the_metadata_and_the_taxonomy_version() -> None:
    ref = ObjectRef(bucket="b", key="uploads/a.gif", etag="e1", size=10)
    meta = GifMetadata(title="Mood", tags=("#mood",))
    key = content_key(ref, meta, "t1")
    elsewhere = ref.model_copy(update={"key": "uploads/b.gif", "bucket": "c"})
    assert key and content_key(elsewhere, meta, "t1") == key
    others = [
        content_key(ref.model_copy(update={"etag": "e2"}), meta, "t1"),
        content_key(ref.model_copy(update={"size": 11}), meta, "t1"),
        content_key(ref, GifMetadata(title="Mood", tags=("#mood", "#fyp")), "t1"),
        content_key(ref, meta, "t2"),
    ]
    assert key not in others and len(set(others)) == 4
    assert content_key(ref.model_copy(update={"etag": None}), meta, "t1") is None
    assert content_key(ref, meta, None) is None
