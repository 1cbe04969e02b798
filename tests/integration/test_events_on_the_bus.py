"""Result events on the embedded AWS: every write path's answer reaches a subscriber of the stack's bus
through the results table's stream and PublishFunction (the real handler, under its role), once per
answer; what the bus refuses is retried and then dead-lettered. Which change tells what:
tests/unit/test_result_events.py."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gifcat.adapters.eventbridge import EventBridgeResults
from gifcat.domain.model import Status
from gifcat.domain.result_events import TOLD, DetailType, result_event
from gifcat_tooling.cli import main
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import received, subscribe, upload
from gifcat_tooling.local.template import Stack, load_template
from tests.conftest import load_event
from tests.integration.conftest import console_rerun, put_late_sidecar, settled, wait_item
from tests.unit.test_result_events import item


@pytest.fixture
def subscriber(aws: EmbeddedAws) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """A queue subscribed to every gifcat event on the stack's bus, as a team's rule would be (the demo's
    subscription); the returned function waits for at least `n` events, and returns every one so far."""
    bus, name = aws.outputs["ResultEventBusName"], f"sub-{uuid.uuid4().hex[:8]}"
    url = subscribe(aws, name)
    got: list[dict[str, Any]] = []

    def events_so_far(n: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        got.extend(received(aws, url))  # every change told by then, so any that should not come is here
        while len(got) < n and time.monotonic() < deadline:
            time.sleep(0.1)
            got.extend(received(aws, url))
        return list(got)

    yield events_so_far
    events = aws.client("events")
    events.remove_targets(Rule=name, EventBusName=bus, Ids=["queue"])
    events.delete_rule(Name=name, EventBusName=bus)


def by_key(events: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [e for e in events if e["detail"]["key"] == key]


def test_each_answer_is_told_once_from_every_path_that_writes_it(
    aws: EmbeddedAws, subscriber: Callable[..., list[dict[str, Any]]], gif: Callable[..., bytes]
) -> None:
    bucket = aws.outputs["UploadsBucketName"]
    tags, handed_on, not_gif = (f"uploads/events-{uuid.uuid4().hex[:6]}-{n}.gif" for n in range(3))
    upload(aws.s3, bucket, tags, gif(), {"title": "pizza time", "tags": "pizza,food,🍕", "description": ""})
    upload(aws.s3, bucket, handed_on, gif(), {"title": "Monday", "tags": "",
                                              "description": "He stares at the printer as it jams again."})
    upload(aws.s3, bucket, not_gif, b"this is text", {"title": "x"})
    results = {k: wait_item(aws, k) for k in (tags, handed_on, not_gif)}
    events = subscriber(3)
    assert len(events) == 3, [e["detail"]["key"] for e in events]  # nothing for the pending step
    (told,) = by_key(events, tags)
    assert (told["source"], told["detail-type"]) == ("gifcat", "GIF classified")
    assert (told["detail"]["category"], told["detail"]["decided_by"]) == ("food", "tags")
    assert told["detail"]["uri"] == f"s3://{bucket}/{tags}"
    assert told["resources"] == [f"arn:aws:s3:::{bucket}/{tags}"]
    (told,) = by_key(events, handed_on)  # Record, in the state machine, wrote it
    assert results[handed_on].status is Status.CLASSIFIED
    assert (told["detail"]["category"], told["detail"]["decided_by"]) == (
        results[handed_on].primary, results[handed_on].decided_by)
    (told,) = by_key(events, not_gif)
    assert (told["detail-type"], told["detail"]["status"]) == ("GIF not classified", "skipped")
    assert told["detail"]["reason"] == results[not_gif].reason

    # A person's answer (gifcat correct) is told with the answer it replaced.
    assert main(["correct", f"s3://{bucket}/{tags}", "--category", "funny", "--endpoint", aws.endpoint]) == 0
    (corrected,) = by_key(subscriber(4)[3:], tags)
    assert (corrected["detail"]["category"], corrected["detail"]["decided_by"]) == ("funny", "human")
    assert corrected["detail"]["previous"]["category"] == "food"

    # The upload deleted: its result becomes a tombstone, told as a deletion.
    aws.s3.delete_object(Bucket=bucket, Key=tags)
    assert wait_item(aws, tags).status is Status.DELETED
    (gone,) = subscriber(5)[4:]
    assert (gone["detail-type"], gone["detail"]["key"]) == ("GIF deleted", tags)



def test_a_rerun_is_told_only_when_it_changes_the_answer_and_with_the_one_it_replaced(
    aws: EmbeddedAws, subscriber: Callable[..., list[dict[str, Any]]], gif: Callable[..., bytes]
) -> None:
    bucket = aws.outputs["UploadsBucketName"]
    key = f"uploads/events-rerun-{uuid.uuid4().hex[:6]}.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "pizza time", "tags": "pizza,food", "description": ""})
    assert wait_item(aws, key).primary == "food"
    assert len(subscriber(1)) == 1
    # A console rerun that comes to the same answer: the table is rewritten, a subscriber hears nothing.
    assert console_rerun(aws, bucket, key)["status"] == "SUCCEEDED"
    rerun = wait_item(aws, key)
    assert (rerun.primary, rerun.replaces) == ("food", None)  # Record's write drops what it took over
    settled(aws)
    assert len(subscriber(1)) == 1
    # A late sidecar's rerun reads other words: its answer is told with the one it replaced.
    put_late_sidecar(aws, bucket, key, b'{"title": "Kiss", "tags": ["kiss", "love"]}')
    after = wait_item(aws, key)
    assert after.primary != "food"
    (changed,) = [e["detail"] for e in subscriber(2)[1:]]
    assert (changed["category"], changed["decided_by"]) == (after.primary, after.decided_by)
    assert (changed["previous"]["category"], changed["previous"]["decided_by"]) == ("food", "tags")


def test_the_sample_stream_event_is_told(
    aws: EmbeddedAws, subscriber: Callable[..., list[dict[str, Any]]]
) -> None:
    # events/publish/stream.json, as `sam local invoke PublishFunction -e` hands it: Record's write of
    # an LLM answer over the pending item.
    reply = aws.client("lambda").invoke(FunctionName=aws.stack.physical_name("PublishFunction"),
                                        Payload=json.dumps(load_event("publish/stream.json")).encode())
    assert reply.get("FunctionError") is None, reply["Payload"].read()
    assert json.loads(reply["Payload"].read()) == {"batchItemFailures": []}
    (told,) = subscriber(1)
    assert (told["detail-type"], told["detail"]["key"], told["detail"]["category"]) == (
        "GIF classified", "uploads/printer jam.gif", "funny")
    assert told["time"] == "2026-12-05T11:20:08Z"


def test_the_bus_adapter_sends_in_chunks_and_names_what_the_bus_refused(aws: EmbeddedAws) -> None:
    events = [result_event(None, item(Status.CLASSIFIED, "funny", seconds=i)) for i in range(23)]
    sendable = [e for e in events if e is not None]
    bus = EventBridgeResults(aws.outputs["ResultEventBusName"], aws.client("events"))
    assert bus.send(sendable) == {}  # 23 events: three PutEvents calls
    refused = EventBridgeResults("no-such-bus", aws.client("events")).send(sendable)
    assert sorted(refused) == list(range(23)) and "no-such-bus" in refused[0]


def test_the_stream_wakes_the_function_only_for_what_it_tells(aws: EmbeddedAws) -> None:
    # The template's filter and the code agree on the statuses that tell something.
    (mapping,) = [m for m in aws.stream_mappings if m.fn.name == aws.stack.physical_name("PublishFunction")]
    for status in Status:
        record = {"dynamodb": {"NewImage": {"status": {"S": status.value}}}}
        assert mapping.keeps(record) == (status in TOLD), status
    assert {t.value for t in DetailType} == {"GIF classified", "GIF not classified", "GIF deleted"}
    props = aws.stack.function_properties("PublishFunction")
    assert props["Policies"] == [{"Statement": [{"Effect": "Allow", "Action": ["events:PutEvents"],
                                                 "Resource": aws.outputs["ResultEventBusArn"]}]}]


def test_a_subscriber_added_later_gets_what_it_missed_by_a_replay_of_the_archive(
    aws: EmbeddedAws, gif: Callable[..., bytes]
) -> None:
    bucket, events = aws.outputs["UploadsBucketName"], aws.client("events")
    since = datetime.now(UTC) - timedelta(seconds=2)
    key = f"uploads/events-{uuid.uuid4().hex[:6]}.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "pizza time", "tags": "pizza,food", "description": ""})
    wait_item(aws, key)
    settled(aws)  # told, and archived, before anyone listened
    late = f"late-{uuid.uuid4().hex[:8]}"
    url = subscribe(aws, late)
    rule = events.describe_rule(Name=late, EventBusName=aws.outputs["ResultEventBusName"])["Arn"]
    # What README gives: a replay of the archive to this one rule (the other subscribers hear nothing again).
    events.start_replay(
        ReplayName=late, EventSourceArn=aws.outputs["ResultEventArchiveArn"], EventStartTime=since,
        EventEndTime=datetime.now(UTC) + timedelta(seconds=2),
        Destination={"Arn": aws.outputs["ResultEventBusArn"], "FilterArns": [rule]},
    )
    deadline = time.monotonic() + 30
    while events.describe_replay(ReplayName=late)["State"] != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.1)
    replayed = [e for e in received(aws, url) if e["detail"]["key"] == key]
    assert [(e["detail-type"], e["detail"]["category"], e["replay-name"]) for e in replayed] == [
        ("GIF classified", "food", late)]


@pytest.mark.parametrize("days", ["14", "0", "off"])
def test_the_archive_keeps_the_events_as_long_as_the_stack_says(root: Path, days: str) -> None:
    stack = Stack(load_template(root / "template.yaml"), root, parameters={"ResultEventArchiveDays": days})
    if days == "off":
        assert stack.of_type("AWS::Events::Archive") == []
        return
    (archive,) = stack.of_type("AWS::Events::Archive")
    props = stack.resolve(stack.resources[archive]["Properties"])
    assert props["SourceArn"] == stack.arn("ResultEventBus") and props["RetentionDays"] == days  # 0: for ever
    assert props["EventPattern"] == {"source": ["gifcat"]}


def test_changes_the_bus_keeps_refusing_are_retried_then_dead_lettered(
    aws: EmbeddedAws, gif: Callable[..., bytes]
) -> None:
    bucket, events, sqs = aws.outputs["UploadsBucketName"], aws.client("events"), aws.client("sqs")
    bus = aws.outputs["ResultEventBusName"]
    events.delete_event_bus(Name=bus)  # every PutEvents now fails: ResourceNotFoundException
    try:
        key = f"uploads/events-{uuid.uuid4().hex[:6]}.gif"
        upload(aws.s3, bucket, key, gif(), {"title": "pizza time", "tags": "pizza,food", "description": ""})
        assert wait_item(aws, key).status is Status.CLASSIFIED  # the result itself is recorded
        url = aws.outputs["PublishDeadLetterQueueUrl"]
        deadline, messages = time.monotonic() + 60, []
        while not messages and time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        (message,) = messages
        failure = json.loads(message["Body"])
        assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert failure["requestContext"]["approximateInvokeCount"] == 11  # MaximumRetryAttempts 10
        assert failure["DDBStreamBatchInfo"]["batchSize"] == 1
    finally:
        events.create_event_bus(Name=bus)
