"""The scheduled LearnFunction on the embedded AWS: the real handler (functions/learn/app.py) invoked
with the sample schedule event, what it reports, the metrics it emits for the dashboard, and the alarm
that watches it. The learning itself is in tests/integration/test_learn_published.py and
tests/unit/test_learn.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gifcat.application.learn import SOURCES
from gifcat_tooling.local.aws import EmbeddedAws
from tests.conftest import load_event
from tests.integration.conftest import dashboard, emitted_metrics


def invoke_learn(aws: EmbeddedAws, event: dict[str, Any]) -> dict[str, Any]:
    reply = aws.client("lambda").invoke(
        FunctionName=aws.stack.physical_name("LearnFunction"), Payload=json.dumps(event).encode()
    )
    return {"error": reply.get("FunctionError"), "payload": json.loads(reply["Payload"].read())}


def test_a_scheduled_run_with_too_little_to_learn_keeps_the_artefact_and_says_so(
    aws: EmbeddedAws, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    reply = invoke_learn(aws, load_event("learn/schedule.json"))
    assert reply["error"] is None, reply["payload"]
    report = reply["payload"]
    assert report["outcome"] == "kept" and not report["dry_run"]
    assert report["reason"].startswith("too few examples: 0 in 0 categories")
    bucket = aws.outputs["ArtefactsBucketName"]
    assert aws.s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # nothing published

    # What the run did is on the stack's dashboard, under the stack's name.
    by_service = emitted_metrics(capsys.readouterr().out)
    emitted = {e.split("@")[0] for e in by_service}
    assert emitted == {"Learn_kept"} | {f"LearnExamples_{s}" for s in SOURCES}
    assert {e.split("@")[1] for e in by_service} == {aws.stack.name}
    drawn = {m[1] for w in dashboard(aws)["widgets"] for m in w["properties"]["metrics"] if m[0] == "gifcat"}
    assert emitted | {"Learn_published"} <= drawn


def test_a_failed_run_is_a_function_error_that_the_learn_alarm_watches(aws: EmbeddedAws) -> None:
    function = aws.stack.physical_name("LearnFunction")
    alarm = next(
        a for a in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]
        if a["AlarmName"] == f"{aws.stack.name}-learn-failed"
    )
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": function}]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")

    # The run cannot read the results (the table is gone: this module's last test). It fails as a Lambda
    # error, which is what the alarm counts, with DynamoDB's error in its reply and log.
    table = aws.outputs["ResultsTableName"]
    aws.client("dynamodb").delete_table(TableName=table)
    reply = invoke_learn(aws, load_event("learn/schedule.json"))
    assert reply["error"] is not None  # moto says "Handled" where Lambda says "Unhandled"
    assert reply["payload"]["errorType"] == "ResourceNotFoundException"
    assert "Query operation" in reply["payload"]["errorMessage"]
