"""How `gifcat redrive` reads the dead-letter queue's messages (gifcat_tooling.redrive): Lambda's
on-failure records, and what it refuses to send anywhere. The command on the embedded AWS is
tests/integration/test_redrive.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from gifcat_tooling.redrive import RedriveReport, read_message, render

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
