"""The triage service against in-memory ports: what it writes and starts for each kind of upload."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gifcat.cascade import Cascade
from gifcat.config import Settings
from gifcat.model import StageName, Status
from gifcat.ports import ObjectGone
from gifcat.result import ObjectRef
from gifcat.service import StageStep, StepState, Triage
from gifcat.stages.factory import triage_stages
from gifcat.taxonomy import Taxonomy


class Objects:
    def __init__(
        self, body: bytes | None, metadata: dict[str, str] | None = None, sidecar: bytes | None = None
    ):
        self.body, self.metadata, self.sidecar_body = body, metadata or {}, sidecar
        self.reads: list[int | None] = []

    def head(self, ref: ObjectRef) -> tuple[ObjectRef, dict[str, str]]:
        if self.body is None:
            raise ObjectGone(ref.key)
        changed = {"size": len(self.body), "etag": "e1", "last_modified": datetime(2026, 1, 1, tzinfo=UTC)}
        return ref.model_copy(update=changed), self.metadata

    def read(self, ref: ObjectRef, first: int | None = None) -> bytes:
        self.reads.append(first)
        assert self.body is not None
        return self.body[:first] if first else self.body

    def sidecar(self, ref: ObjectRef, max_bytes: int) -> bytes | None:
        return self.sidecar_body


class Store:
    def __init__(self, accept: bool = True) -> None:
        self.items: list[dict[str, Any]] = []
        self.accept = accept

    def put(self, item: dict[str, Any], *, force: bool = False) -> bool:
        self.items.append(item)
        return self.accept


class Starter:
    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
        self.started.append((name, payload))
        return f"arn:{name}", True


REF = ObjectRef(bucket="b", key="uploads/x.gif")


@pytest.fixture
def make(settings: Settings, taxonomy: Taxonomy) -> Callable[..., tuple[Triage, Store, Starter]]:
    def build(objects: Objects, store: Store | None = None) -> tuple[Triage, Store, Starter]:
        cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy.version)
        store, starter = store or Store(), Starter()
        return (
            Triage(settings, cascade, objects, store, starter, lambda ref: f"name-{ref.etag}"),
            store,
            starter,
        )

    return build


def test_decided_upload_writes_once_and_starts_nothing(make: Callable, gif: Callable[..., bytes]) -> None:
    objects = Objects(gif(), {"tags": "pizza,food"})
    triage, store, starter = make(objects)
    outcome = triage.handle_upload(REF)
    assert (outcome.status, outcome.written) == (Status.CLASSIFIED, True)
    assert [i["primary"] for i in store.items] == ["food"] and starter.started == []
    assert objects.reads == [triage.settings.limits.sniff_bytes]  # only the first bytes were read


def test_undecided_upload_is_pending_and_handed_on(make: Callable, gif: Callable[..., bytes]) -> None:
    triage, store, starter = make(Objects(gif(), {"title": "Mood"}))
    outcome = triage.handle_upload(REF)
    assert outcome.status is Status.PENDING and outcome.execution == "name-e1"
    assert store.items[0]["status"] == "pending" and store.items[0]["execution"] == "name-e1"
    ((name, payload),) = starter.started
    assert name == "name-e1"
    state = StepState.model_validate(payload)
    assert state.classification.status is Status.UNDECIDED and state.metadata.title == "Mood"


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
    assert reason in store.items[0]["reason"] and starter.started == []


def test_stage_step_records_an_upstream_failure(settings: Settings, taxonomy: Taxonomy) -> None:
    cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy.version)
    state = StepState(
        object=REF.model_copy(update={"size": 10}),
        classification=cascade.start(),
        upstream_error={"stage": "embedding", "Error": "MemoryError", "Cause": "out of memory"},
    )
    out = StageStep(cascade, StageName.TAGS, None, settings).run(state)
    assert out.upstream_error is None
    assert out.classification.stages[0].error == "MemoryError: out of memory"
    assert out.record is not None and out.record["Item"]["pk"] == {"S": "s3://b/uploads/x.gif"}
