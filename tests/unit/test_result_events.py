"""Which change to a result tells what (gifcat.domain.result_events), and how the publisher hands the
events to a bus and names back what the bus refused (gifcat.application.publish). On the embedded AWS,
through the table's stream and the real bus: tests/integration/test_events_on_the_bus.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gifcat.application.publish import ResultChange, ResultPublisher
from gifcat.domain.model import Classification, Status
from gifcat.domain.result import ObjectRef, ResultItem, deleted_item, result_item, taken_over
from gifcat.domain.result_events import DetailType, ResultEvent, ToldAnswer, result_event

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
REF = ObjectRef(bucket="b", key="uploads/cat.gif", etag="e1", sequencer="0A")


def item(status: Status, primary: str | None = None, *, ref: ObjectRef = REF, seconds: int = 0,
         decided_by: str | None = None, reason: str | None = None) -> ResultItem:
    classification = Classification(
        status=status, primary=primary, labels=[primary] if primary else [], decided_by=decided_by,
        confidence=0.9 if primary else 0.0, reason=reason,
    )
    return result_item(ref, classification, at=AT + timedelta(seconds=seconds))


def test_an_answer_is_told_once_known_and_the_steps_on_the_way_are_not() -> None:
    pending = item(Status.PENDING)
    assert result_event(None, pending) is None  # triage handed it on: nothing known yet
    event = result_event(pending, item(Status.CLASSIFIED, "funny", decided_by="llm", seconds=5))
    assert event is not None and event.detail_type is DetailType.CLASSIFIED
    d = event.detail
    assert (d.uri, d.key, d.category, d.labels, d.decided_by, d.previous) == (
        "s3://b/uploads/cat.gif", "uploads/cat.gif", "funny", ["funny"], "llm", None)
    assert event.time == AT + timedelta(seconds=5)
    # Decided at the S3 Lambda (tags), with no pending item before it: told as it is written.
    assert result_event(None, item(Status.CLASSIFIED, "food", decided_by="tags")) is not None


def test_what_is_not_classified_and_what_is_deleted_are_told_with_their_kind() -> None:
    for status in (Status.FAILED, Status.SKIPPED, Status.UNDECIDED):
        event = result_event(item(Status.PENDING), item(status, reason="not a GIF"))
        assert event is not None and event.detail_type is DetailType.NOT_CLASSIFIED
        assert (event.detail.status, event.detail.reason) == (status, "not a GIF")
    deleted = result_event(item(Status.CLASSIFIED, "funny"), item(Status.DELETED, reason="deleted"))
    assert deleted is not None and deleted.detail_type is DetailType.DELETED
    # The tombstone expiring (the item removed) tells nothing more.
    assert result_event(item(Status.DELETED, reason="deleted"), None) is None


def test_a_rewrite_that_keeps_the_answer_tells_nothing_and_a_change_tells_what_it_replaced() -> None:
    told = item(Status.CLASSIFIED, "funny", decided_by="llm")
    rewritten = told.model_copy(update={"timings_ms": {"llm": 1.0}, "updated_at": AT + timedelta(seconds=9)})
    assert result_event(told, rewritten) is None
    corrected = told.model_copy(update={"primary": "cute", "labels": ["cute"], "decided_by": "human",
                                        "corrected_by": "ana", "updated_at": AT + timedelta(minutes=3)})
    event = result_event(told, corrected)
    assert event is not None and event.detail.corrected_by == "ana"
    assert event.detail.previous == ToldAnswer(status=Status.CLASSIFIED, category="funny", labels=["funny"],
                                               decided_by="llm")
    # A person confirming the machine's answer changes who decided: told too.
    confirmed = told.model_copy(update={"decided_by": "human", "updated_at": AT + timedelta(minutes=4)})
    assert result_event(told, confirmed) is not None


def test_a_new_upload_of_the_key_is_told_even_with_the_same_answer() -> None:
    first = item(Status.CLASSIFIED, "funny", decided_by="tags")
    again = item(Status.CLASSIFIED, "funny", decided_by="tags", seconds=60,
                 ref=REF.model_copy(update={"etag": "e2", "sequencer": "0B"}))
    event = result_event(first, again)
    assert event is not None and event.detail.previous is None and event.detail.etag == "e2"


def test_the_event_id_is_the_same_for_a_redelivery_and_new_for_each_write() -> None:
    pending, done = item(Status.PENDING), item(Status.CLASSIFIED, "funny", seconds=5)
    first, repeat = result_event(pending, done), result_event(pending, done)
    assert first is not None and repeat is not None and first.detail.event_id == repeat.detail.event_id
    # Corrected to cute and back to funny: the third answer is not a repeat of the first.
    cute = done.model_copy(update={"primary": "cute", "labels": ["cute"],
                                   "updated_at": AT + timedelta(seconds=60)})
    back = done.model_copy(update={"updated_at": AT + timedelta(seconds=120)})
    third = result_event(cute, back)
    assert third is not None and third.detail.event_id != first.detail.event_id



def test_a_rerun_is_told_with_the_answer_it_took_over_and_not_at_all_when_it_comes_to_the_same() -> None:
    told = item(Status.CLASSIFIED, "funny", decided_by="llm")
    # The take-over (a console rerun, a backfill child, the sweep's start) makes the item pending,
    # holding the answer it took over; that write tells nothing.
    claim = item(Status.PENDING, seconds=30).model_copy(update={"replaces": taken_over(told, REF.etag)})
    assert claim.replaces is not None and result_event(told, claim) is None
    assert result_event(claim, item(Status.CLASSIFIED, "funny", decided_by="llm", seconds=40)) is None
    changed = result_event(claim, item(Status.CLASSIFIED, "cute", decided_by="embedding", seconds=40))
    assert changed is not None and changed.detail.category == "cute"
    assert changed.detail.previous == ToldAnswer(status=Status.CLASSIFIED, category="funny", labels=["funny"],
                                                 decided_by="llm")
    failed = result_event(claim, item(Status.FAILED, reason="llm: timed out", seconds=40))
    assert failed is not None and failed.detail.previous is not None
    assert failed.detail.previous.category == "funny"
    # A rerun of that pending rerun (the sweep's) keeps what the first took over.
    assert taken_over(claim, REF.etag) == claim.replaces
    # A new upload of the key (another ETag), a tombstone or no item: nothing taken over.
    assert taken_over(told, "e2") is None and taken_over(None, REF.etag) is None
    assert taken_over(item(Status.DELETED, reason="deleted"), REF.etag) is None


def test_a_deletion_tells_the_answer_the_key_held_and_nothing_for_a_key_that_never_had_one() -> None:
    told = item(Status.CLASSIFIED, "funny", decided_by="tags")
    gone = deleted_item(REF.model_copy(update={"sequencer": "0B"}), "deleted", keep_days=7, at=AT)
    event = result_event(told, gone)
    assert event is not None and event.detail_type is DetailType.DELETED
    assert event.detail.previous is not None and event.detail.previous.category == "funny"
    assert result_event(None, gone) is None  # deleted before any result: nothing was ever told
    # A key whose newest upload was still pending: told (a subscriber may hold the older upload's answer).
    pending = item(Status.PENDING, ref=REF.model_copy(update={"etag": "e2", "sequencer": "0A1"}))
    event = result_event(pending, gone)
    assert event is not None and event.detail.previous is None


class Bus:
    """Accepts everything but the events at the indexes it is told to refuse."""

    def __init__(self, refuse: Sequence[int] = ()) -> None:
        self.refuse = set(refuse)
        self.sent: list[ResultEvent] = []

    def send(self, events: Sequence[ResultEvent]) -> dict[int, str]:
        self.sent += events
        return {i: "ThrottlingException: slow down" for i in sorted(self.refuse) if i < len(events)}


def plain(result: ResultItem) -> dict[str, Any]:
    """An image as the stream's parser hands it on: stored values, numbers as Decimal."""
    def decimals(value: Any) -> Any:
        if isinstance(value, float):
            return Decimal(repr(value))
        if isinstance(value, dict):
            return {k: decimals(v) for k, v in value.items()}
        if isinstance(value, list):
            return [decimals(v) for v in value]
        return value

    stored: dict[str, Any] = decimals(result.stored())
    return stored


def test_the_publisher_sends_what_tells_and_names_back_what_the_bus_refused() -> None:
    pending = item(Status.PENDING)
    changes = [
        ResultChange("100", None, plain(pending)),  # silent
        ResultChange("101", plain(pending), plain(item(Status.CLASSIFIED, "funny", seconds=1))),
        ResultChange("102", None, plain(item(Status.SKIPPED, reason="empty object", ref=REF.model_copy(
            update={"key": "uploads/empty.gif"})))),
        ResultChange("103", None, {"pk": "s3://b/x", "status": "shiny"}),  # not a gifcat result
        ResultChange("104", None, plain(item(Status.CLASSIFIED, "cute", ref=REF.model_copy(
            update={"key": "uploads/dog.gif"})))),
    ]
    bus = Bus(refuse=[1])  # the second event sent: change 102's
    report = ResultPublisher(bus).publish(changes)
    assert [e.detail.key for e in bus.sent] == ["uploads/cat.gif", "uploads/empty.gif", "uploads/dog.gif"]
    assert [(f.id, f.reason) for f in report.failed] == [("102", "ThrottlingException: slow down")]
    assert report.published == {"GIF classified": 2}
    assert report.silent == 1
    assert [u.id for u in report.unreadable] == ["103"] and "status" in report.unreadable[0].reason


def test_a_batch_that_tells_nothing_makes_no_call() -> None:
    bus = Bus()
    report = ResultPublisher(bus).publish([ResultChange("1", None, plain(item(Status.PENDING)))])
    assert bus.sent == [] and report.silent == 1 and report.failed == []
