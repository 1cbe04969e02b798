"""`gifcat redrive` on the embedded AWS: an upload the triage function failed on (its results table was
gone) waits in the dead-letter queue; once the cause is fixed, the real CLI sends it back to the function,
which classifies it. A poison event goes back and fails again, and a message that is no Lambda record
stays. This module's stack is its own: it loses its results table on purpose."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gifcat_tooling.cli import main
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from tests.integration.conftest import embedded_stack, wait_item
from tests.support.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def aws(root: Path, llm_server: FakeOpenAI) -> Iterator[EmbeddedAws]:
    with embedded_stack(root, llm_server) as embedded:
        yield embedded


def queued(aws: EmbeddedAws) -> list[dict]:
    """The dead-letter queue's messages, read and made visible again."""
    sqs, url = aws.client("sqs"), aws.outputs["TriageDeadLetterQueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for m in got:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    return got


def redrive(aws: EmbeddedAws, capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    capsys.readouterr()
    assert main(["redrive", "--endpoint", aws.endpoint, "--json", *args]) == 0
    out = capsys.readouterr().out
    # The handlers run in this process and log to the same stdout: the report is the indented object.
    report, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "queue"'):])
    return dict(report)


def test_dead_lettered_uploads_go_back_to_triage_once_the_cause_is_fixed(
    aws: EmbeddedAws, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    ddb, table = aws.client("dynamodb"), aws.outputs["ResultsTableName"]
    described = ddb.describe_table(TableName=table)["Table"]
    ddb.delete_table(TableName=table)  # the cause: triage can write no result, and fails
    bucket, key = aws.outputs["UploadsBucketName"], "uploads/while-broken.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    aws.runner.submit(fn, {"Records": [{"not": "an S3 record"}]})  # a poison event: it always fails
    assert aws.runner.drain(60)
    sqs, url = aws.client("sqs"), aws.outputs["TriageDeadLetterQueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="a note somebody left")  # no Lambda record
    assert len(queued(aws)) == 3

    dry = redrive(aws, capsys, "--dry-run")
    assert sorted(tuple(d["keys"]) for d in dry["redriven"]) == [(), (f"s3://{bucket}/{key}",)]
    assert all(d["function"].endswith(f":function:{fn.name}") for d in dry["redriven"])
    (left,) = dry["left"]
    assert left["problem"].startswith("the body is not JSON")
    assert len(queued(aws)) == 3  # a dry run changes nothing

    indexes = [{k: i[k] for k in ("IndexName", "KeySchema", "Projection")}
               for i in described.get("GlobalSecondaryIndexes", [])]
    ddb.create_table(  # the cause fixed
        TableName=table, KeySchema=described["KeySchema"],
        AttributeDefinitions=described["AttributeDefinitions"], BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=indexes,
    )
    done = redrive(aws, capsys)
    assert sorted(tuple(d["keys"]) for d in done["redriven"]) == [(), (f"s3://{bucket}/{key}",)]
    assert [d["problem"] for d in done["left"]] == [left["problem"]]
    assert aws.runner.drain(60)
    item = wait_item(aws, key)
    assert (item.status, item.decided_by, item.primary) == ("classified", "tags", "food")
    # The poison event failed again: it is back as a new message, beside the note.
    bodies = [m["Body"] for m in queued(aws)]
    assert len(bodies) == 2 and "a note somebody left" in bodies
    (again,) = [json.loads(b) for b in bodies if b != "a note somebody left"]
    assert again["requestPayload"] == {"Records": [{"not": "an S3 record"}]}
