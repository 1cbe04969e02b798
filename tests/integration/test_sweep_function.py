"""The scheduled SweepFunction on the embedded AWS: the real handler (functions/sweep/app.py) invoked with
the sample schedule event marks failed the results a timed-out run left pending, under its role; the
alarm and the dashboard watch it; `gifcat rerun` finds what it marked. The sweep's choices are in
tests/unit/test_sweep.py."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from gifcat.adapters.dynamodb import ResultsTable
from gifcat.domain.model import Classification, Status
from gifcat.domain.result import ObjectRef, now, result_item
from gifcat_tooling.cli import main
from gifcat_tooling.local.aws import EmbeddedAws
from tests.conftest import load_event
from tests.integration.conftest import dashboard, emitted_metrics


def invoke_sweep(aws: EmbeddedAws, event: dict[str, Any]) -> dict[str, Any]:
    reply = aws.client("lambda").invoke(
        FunctionName=aws.stack.physical_name("SweepFunction"), Payload=json.dumps(event).encode()
    )
    assert reply.get("FunctionError") is None, reply["Payload"].read()
    payload: dict[str, Any] = json.loads(reply["Payload"].read())
    return payload


def test_a_timed_out_runs_pending_item_is_marked_failed_and_rerun_finds_it(
    aws: EmbeddedAws, capsys: pytest.CaptureFixture[str]
) -> None:
    table = ResultsTable(aws.outputs["ResultsTableName"], aws.client("dynamodb"))
    bucket = aws.outputs["UploadsBucketName"]
    at = now()

    def write(key: str, status: Status, minutes_ago: float, reason: str | None = None) -> str:
        item = result_item(ObjectRef(bucket=bucket, key=key, sequencer="0A"),
                           Classification(status=status, reason=reason), execution=f"upload-{key[-5:-4]}",
                           at=at - timedelta(minutes=minutes_ago))
        assert table.put(item, kind="pending" if status is Status.PENDING else "result")
        return item.pk

    stuck = write("uploads/sweep-1.gif", Status.PENDING, 20)  # its run timed out 15 minutes ago
    running = write("uploads/sweep-2.gif", Status.PENDING, 1)  # its run may still record
    failed = write("uploads/sweep-3.gif", Status.FAILED, 30, reason="llm: LlmCallError: 429")
    write("uploads/sweep-4.gif", Status.CLASSIFIED, 30)

    dry = invoke_sweep(aws, {"dry_run": True})
    assert (dry["found"], dry["failed"], dry["dry_run"]) == (1, [], True)
    assert table.get(stuck).status is Status.PENDING  # type: ignore[union-attr]

    capsys.readouterr()
    report = invoke_sweep(aws, load_event("sweep/schedule.json"))
    assert (report["found"], report["failed"], report["finished"], report["left"]) == (1, [stuck], 0, 0)
    swept = table.get(stuck)
    assert swept is not None and swept.status is Status.FAILED and swept.rerunnable == "failed"
    assert swept.reason.startswith("stuck: no run recorded a result within 600 s")  # type: ignore[union-attr]
    assert "execution upload-1" in swept.reason  # type: ignore[operator]
    assert table.get(running).status is Status.PENDING  # type: ignore[union-attr]
    assert table.get(failed).reason == "llm: LlmCallError: 429"  # type: ignore[union-attr]
    assert invoke_sweep(aws, load_event("sweep/schedule.json"))["found"] == 0  # nothing twice

    # The count is a metric under the stack's name, which the alarm watches and the dashboard draws.
    assert "Stuck_failed@" + aws.stack.name in emitted_metrics(capsys.readouterr().out)
    (alarm,) = aws.client("cloudwatch").describe_alarms(AlarmNames=[f"{aws.stack.name}-stuck-runs"])[
        "MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == ("gifcat", "Stuck_failed", 0)
    drawn = {m[1] for w in dashboard(aws)["widgets"] for m in w["properties"]["metrics"] if m[0] == "gifcat"}
    assert "Stuck_failed" in drawn

    # What the sweep marked is what `gifcat rerun failed --reason stuck` runs again, and only that.
    capsys.readouterr()
    assert main(["rerun", "failed", "--endpoint", aws.endpoint, "--reason", "stuck", "--dry-run",
                 "--json"]) == 0
    out = capsys.readouterr().out
    rerun = json.loads(out[out.index('{\n  "which"'):])
    assert (rerun["matched"], rerun["reasons"]) == (1, {"stuck": 1})
