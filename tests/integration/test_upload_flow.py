"""Upload to result through the embedded AWS: S3 notification -> TriageFunction -> DynamoDB or the
state machine. The handlers are the real ones; the stack is deployed from template.yaml."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from gifcat.adapters.stepfunctions import execution_name
from gifcat.local.aws import EmbeddedAws
from gifcat.local.demo import upload
from gifcat.result import ObjectRef
from tests.integration.conftest import s3_event, wait_item


@pytest.fixture(scope="module")
def bucket(aws: EmbeddedAws) -> str:
    return aws.outputs["UploadsBucketName"]


def executions(aws: EmbeddedAws) -> list[dict]:
    sfn = aws.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=aws.outputs["StateMachineArn"])["executions"]


def test_stack_is_the_template(aws: EmbeddedAws, bucket: str) -> None:
    ddb = aws.client("dynamodb")
    table = aws.outputs["ResultsTableName"]
    assert ddb.describe_table(TableName=table)["Table"]["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"}
    ]
    pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    config = aws.s3.get_bucket_notification_configuration(Bucket=bucket)["LambdaFunctionConfigurations"]
    rules = {r["Name"].lower(): r["Value"] for r in config[0]["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "uploads/", "suffix": ".gif"}


def test_upload_decided_by_tags(aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]) -> None:
    key = "uploads/pizza time.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "cheese", "food"]})
    item = wait_item(aws, key)
    assert (item["status"], item["primary"], item["decided_by"]) == ("classified", "food", "tags")
    assert item["pk"] == f"s3://{bucket}/{key}"
    assert "tag 'pizza'" in item["evidence"]
    assert item["taxonomy_version"] and item["timings_ms"]["tags"] >= 0


def test_unicode_key_with_plus_and_sidecar(aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]) -> None:
    key = "uploads/happy birthday 🎂+1.gif"
    meta = {"title": "Joyeux anniversaire 🎉", "tags": ["birthday", "🎂", "party"]}
    upload(aws.s3, bucket, key, gif(), meta, via="sidecar")
    item = wait_item(aws, key)
    assert item["primary"] == "celebration"
    assert item["title"] == "Joyeux anniversaire 🎉"


def test_non_ascii_user_metadata(aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]) -> None:
    key = "uploads/wut.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "wütend 😡", "tags": ["wütend", "sauer", "grr"]})
    item = wait_item(aws, key)
    assert (item["primary"], item["title"]) == ("angry", "wütend 😡")


def test_objects_outside_the_filter_do_not_trigger(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    aws.s3.put_object(Bucket=bucket, Key="elsewhere/cat.gif", Body=gif())
    aws.s3.put_object(Bucket=bucket, Key="uploads/cat.png", Body=gif())
    assert aws.runner.drain(10)
    keys = {r["key"] for r in aws.results()}
    assert not keys & {"elsewhere/cat.gif", "uploads/cat.png"}


@pytest.mark.parametrize(
    ("key", "body", "sidecar", "status", "reason"),
    [
        ("uploads/not a gif.gif", b"\x89PNG\r\n\x1a\n not really", None, "skipped", "not a GIF"),
        ("uploads/empty.gif", b"", None, "skipped", "empty object"),
        (
            "uploads/huge.gif",
            b"GIF89a\x10\x00\x10\x00" + b"\0" * 30000,
            None,
            "skipped",
            "over the 20000 limit",
        ),
        ("uploads/zero screen.gif", b"GIF89a\x00\x00\x00\x00" + b"\0" * 20, None, "failed", "corrupt GIF"),
        ("uploads/bad sidecar.gif", None, b"{oops", "failed", "sidecar JSON does not parse"),
    ],
)
def test_bad_input_is_recorded(
    aws: EmbeddedAws,
    bucket: str,
    gif: Callable[..., bytes],
    key: str,
    body: bytes | None,
    sidecar: bytes | None,
    status: str,
    reason: str,
) -> None:
    if sidecar is not None:
        upload(aws.s3, bucket, key, gif(), None, via="sidecar", sidecar_body=sidecar)
    else:
        aws.s3.put_object(Bucket=bucket, Key=key, Body=body)
    item = wait_item(aws, key)
    assert item["status"] == status
    assert reason in item["reason"]


def test_object_deleted_before_it_is_read(aws: EmbeddedAws, bucket: str) -> None:
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    aws.runner.submit(fn, s3_event(bucket, "uploads/gone.gif", size=100))
    item = wait_item(aws, "uploads/gone.gif")
    assert item["status"] == "skipped"
    assert "deleted before it was read" in item["reason"]


def test_ambiguous_upload_starts_one_named_execution(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/mood.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Mood", "tags": ["#mood", "#fyp"]})
    pending = wait_item(aws, key, finished=False)
    etag = aws.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    expected = execution_name(ObjectRef(bucket=bucket, key=key, etag=etag))
    assert pending["execution"] == expected
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", expected)
    # The same event again, twice: no second execution, still one result.
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    for _ in range(2):
        aws.runner.submit(fn, s3_event(bucket, key, etag=etag, size=len(gif())))
    final = wait_item(aws, key)
    assert [e["name"] for e in executions(aws)].count(expected) == 1
    assert sum(r["key"] == key for r in aws.results()) == 1
    assert final["status"] in ("classified", "failed")


def test_duplicate_event_after_a_result_changes_nothing(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/dup.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Kiss GIF", "tags": ["kiss", "love", "mwah"]})
    first = wait_item(aws, key)
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    aws.runner.submit(fn, s3_event(bucket, key))
    again = wait_item(aws, key)
    assert again["updated_at"] == first["updated_at"]


def test_late_event_never_replaces_a_newer_result(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/overwritten.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza", "tags": ["pizza", "food"]})
    assert wait_item(aws, key)["primary"] == "food"
    old_event = s3_event(bucket, key)
    upload(
        aws.s3, bucket, key, gif(frames=2), {"title": "Dance", "tags": ["dance", "dancing", "choreography"]}
    )
    newer = wait_item(aws, key)
    for _ in range(50):  # the second put's result may take a moment
        newer = wait_item(aws, key)
        if newer["primary"] == "dance":
            break
    assert newer["primary"] == "dance"
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    aws.runner.submit(fn, old_event)  # the first upload's event, delivered late
    assert wait_item(aws, key)["primary"] == "dance"


def test_failing_invocations_retry_then_reach_the_dead_letter_queue(aws: EmbeddedAws) -> None:
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    before = fn.max_retries
    aws.runner.submit(fn, {"Records": [{"not": "an S3 record"}]})
    assert aws.runner.drain(30)
    sqs = aws.client("sqs")
    messages = sqs.receive_message(QueueUrl=aws.outputs["TriageDeadLetterQueueUrl"], MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    assert any(
        b["requestContext"]["condition"] == "RetriesExhausted"
        and b["requestContext"]["approximateInvokeCount"] == before + 1
        and b["responsePayload"]["errorType"] == "ValidationError"
        for b in bodies
    )
