"""`gifcat redrive` (gifcat_tooling.operations.redrive): how it reads the dead-letter queue's messages
(Lambda's on-failure records, and what it refuses to send anywhere) and how it goes through the queue.
The command on the embedded AWS is tests/integration/test_redrive.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gifcat_tooling.operations.redrive import RedriveReport, read_message, redrive, render

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:gifcat-TriageFunction"


def message(body: Any, *, raw: str | None = None) -> dict[str, Any]:
    return {"MessageId": "m-1", "ReceiptHandle": "r-1", "Attributes": {"SentTimestamp": "1764921600000"},
            "Body": raw if raw is not None else json.dumps(body)}


def record(**overrides: Any) -> dict[str, Any]:
    s3 = {"bucket": {"name": "uploads"}, "object": {"key": "uploads/caf%C3%A9+cat.gif"}}
    event = {"Records": [{"s3": s3}]}
    return {
        "requestContext": {"functionArn": f"{ARN}:$LATEST", "condition": "RetriesExhausted"},
        "requestPayload": event,
        "responsePayload": {"errorType": "ClientError", "errorMessage": "Throttling"},
        **overrides,
    }


def test_an_on_failure_record_names_the_function_its_event_and_why_it_failed() -> None:
    letter = read_message(message(record()))
    assert letter.problem is None
    assert letter.function == ARN  # the qualifier dropped: the fix is in the code deployed now
    assert letter.event == record()["requestPayload"]
    assert letter.keys == ["s3://uploads/uploads/café cat.gif"]  # decoded as S3 encodes event keys
    assert letter.error == "ClientError: Throttling"
    assert letter.sent_ms == 1764921600000


@pytest.mark.parametrize(
    ("msg", "problem"),
    [
        (message(None, raw="hello"), "the body is not JSON"),
        (message(["a", "list"]), "the body is not a Lambda on-failure record"),
        (message(record(requestContext={"condition": "RetriesExhausted"})), "not a Lambda on-failure record"),
        (message(record(requestPayload="not an event")), "not a Lambda on-failure record"),
        (message(record(requestContext={"functionArn": "arn:aws:sqs:eu-west-1:1:q"})),
         "not a Lambda on-failure record"),
    ],
)
def test_what_is_not_an_on_failure_record_is_never_sent_anywhere(msg: dict[str, Any], problem: str) -> None:
    letter = read_message(msg)
    assert letter.problem is not None and letter.problem.startswith(problem)
    assert letter.function is None and letter.event is None


def test_the_text_says_what_went_back_and_what_stayed() -> None:
    sent = read_message(message(record()))
    stayed = read_message(message(None, raw="hello"))
    text = render(RedriveReport(queue="q", dry_run=False, redriven=[sent], left=[stayed], newer=1))
    assert text.splitlines() == [
        "q: redrove 1, left 1, 1 newer than this run (for the next)",
        "  s3://uploads/uploads/café cat.gif  (it failed with ClientError: Throttling)",
        "  left message m-1: the body is not JSON (Expecting value)",
    ]
    dry = render(RedriveReport(queue="q", dry_run=True, redriven=[sent]))
    assert dry.startswith("q: would redrive 1, left 0\n")


def test_the_readme_lists_the_json_keys_the_command_prints() -> None:
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = readme[readme.index("`--json` prints `{\"queue\""):]
    listed = listed[:listed.index("}`")]
    assert re.findall(r'"(\w+)"', listed) == list(RedriveReport(queue="q", dry_run=True).as_dict())


class FakeQueue:
    """SQS as redrive uses it: messages handed out in batches, hidden once received (never again here,
    as in a run shorter than the visibility timeout) unless made visible again."""

    def __init__(self, messages: list[dict[str, Any]], *, redeliver: bool = False) -> None:
        self.messages = {m["MessageId"]: m for m in messages}
        self.hidden: set[str] = set()
        self.redeliver = redeliver  # a run past the visibility timeout: what it kept comes back
        self.deleted: list[str] = []
        self.shown: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        ready = [m for i, m in self.messages.items() if self.redeliver or i not in self.hidden]
        batch = ready[: kwargs["MaxNumberOfMessages"]]
        self.hidden.update(m["MessageId"] for m in batch)
        return {"Messages": batch} if batch else {}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        (mid,) = [i for i, m in self.messages.items() if m["ReceiptHandle"] == ReceiptHandle]
        del self.messages[mid]
        self.deleted.append(mid)

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> None:
        for entry in Entries:
            (mid,) = [i for i, m in self.messages.items() if m["ReceiptHandle"] == entry["ReceiptHandle"]]
            self.hidden.discard(mid)
            self.shown.append(mid)


class FakeLambda:
    def __init__(self) -> None:
        self.invoked: list[tuple[str, str, Any]] = []

    def invoke(self, FunctionName: str, InvocationType: str, Payload: str) -> None:
        self.invoked.append((FunctionName, InvocationType, json.loads(Payload)))


def queue_of(n: int, *, sent_ms: int = 1_000, note: bool = True) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        m = message(record())
        out.append({**m, "MessageId": f"m-{i}", "ReceiptHandle": f"r-{i}",
                    "Attributes": {"SentTimestamp": str(sent_ms)}})
    if note:
        out.append({"MessageId": "note", "ReceiptHandle": "r-note", "Attributes": {"SentTimestamp": "1"},
                    "Body": "hello"})
    return out


def test_each_record_goes_back_once_as_an_event_and_the_rest_is_made_visible_again() -> None:
    sqs, fn = FakeQueue(queue_of(23)), FakeLambda()
    report = redrive(sqs, fn, "q")
    assert len(report.redriven) == 23 and sorted(sqs.deleted) == sorted(f"m-{i}" for i in range(23))
    assert {(name, kind) for name, kind, _ in fn.invoked} == {(ARN, "Event")} and len(fn.invoked) == 23
    assert [d.message_id for d in report.left] == ["note"] and sqs.shown == ["note"]


def test_a_dry_run_invokes_and_deletes_nothing() -> None:
    sqs, fn = FakeQueue(queue_of(12)), FakeLambda()
    report = redrive(sqs, fn, "q", dry_run=True)
    assert len(report.redriven) == 12 and fn.invoked == [] and sqs.deleted == []
    assert len(sqs.shown) == 13  # every message visible again, the note included


def test_messages_newer_than_the_run_wait_for_the_next() -> None:
    sqs, fn = FakeQueue(queue_of(3, sent_ms=100_001, note=False)), FakeLambda()
    report = redrive(sqs, fn, "q", clock=lambda: 100.0)  # the run starts at 100,000 ms
    assert (report.newer, report.redriven, fn.invoked) == (3, [], [])
    assert len(sqs.shown) == 3


def test_a_run_that_sees_its_kept_messages_again_ends() -> None:
    sqs, fn = FakeQueue(queue_of(0), redeliver=True), FakeLambda()  # only the note, over and over
    report = redrive(sqs, fn, "q")
    assert [d.message_id for d in report.left] == ["note"]  # counted once; the run ended


class GoneFunction(FakeLambda):
    """The function one record names was deleted: its invoke fails, the others' do not."""

    def invoke(self, FunctionName: str, InvocationType: str, Payload: str) -> None:
        if len(self.invoked) == 1:
            self.invoked.append(("failed", InvocationType, None))
            raise RuntimeError("ResourceNotFoundException: Function not found")
        super().invoke(FunctionName, InvocationType, Payload)


def test_a_message_whose_invoke_fails_is_left_with_why_and_the_run_goes_on() -> None:
    sqs, fn = FakeQueue(queue_of(3, note=False)), GoneFunction()
    report = redrive(sqs, fn, "q")
    assert [d.message_id for d in report.redriven] == ["m-0", "m-2"] and sqs.deleted == ["m-0", "m-2"]
    (left,) = report.left
    assert left.message_id == "m-1" and left.problem == (
        "the invoke failed: RuntimeError: ResourceNotFoundException: Function not found"
    )
    assert sqs.shown == ["m-1"]  # visible again at once, not after the 300 s visibility timeout


class FailingQueue(FakeQueue):
    """SQS stops answering after the first batch."""

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        if self.hidden:
            raise ConnectionError("SQS is unreachable")
        return super().receive_message(**kwargs)


def test_a_run_stopped_by_an_error_gives_back_what_it_held() -> None:
    sqs, fn = FailingQueue(queue_of(2)), FakeLambda()
    with pytest.raises(ConnectionError):
        redrive(sqs, fn, "q", dry_run=True)
    # Before, the error left them hidden for the visibility timeout: the next run saw an empty queue.
    assert sorted(sqs.shown) == ["m-0", "m-1", "note"]
