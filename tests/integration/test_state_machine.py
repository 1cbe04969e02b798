"""The whole state machine in moto's interpreter against the embedded AWS: every path an item can take
after triage, console reruns, and duplicate starts. The LLM is a scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gifcat.adapters.dynamodb import ResultsTable
from gifcat.adapters.embeddings.factory import build_embedding_stage
from gifcat.adapters.stepfunctions import Escalations
from gifcat.config import load_settings
from gifcat.domain.model import Classification, Status
from gifcat.domain.records import read_records
from gifcat.domain.taxonomy import load_taxonomy
from gifcat_tooling.cli import main
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from tests.conftest import load_event
from tests.integration.conftest import emitted_metrics, finished, wait_item
from tests.support.fake_openai import FakeOpenAI, answer, completion, slow


@pytest.fixture(scope="module")
def bucket(aws: EmbeddedAws) -> str:
    return aws.outputs["UploadsBucketName"]


@pytest.fixture(autouse=True)
def fresh_script(llm_server: FakeOpenAI) -> None:
    llm_server.clear()  # nothing scripted by one test leaks into the next


def run_execution(
    aws: EmbeddedAws, payload: dict[str, Any], machine: str = "RerunStateMachineArn"
) -> dict[str, Any]:
    """Start as the console does: a generated name and the given input (on the rerun machine unless
    told otherwise)."""
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=aws.outputs[machine], input=json.dumps(payload), name=str(uuid.uuid4())
    )["executionArn"]
    return finished(aws, arn)


def runs_named(aws: EmbeddedAws, name: str) -> list[dict[str, Any]]:
    """The Express machine's runs with this name (listed locally only: AWS keeps them in the logs)."""
    sfn = aws.client("stepfunctions")
    listed = sfn.list_executions(stateMachineArn=aws.outputs["StateMachineArn"], maxResults=1000)
    return [e for e in listed["executions"] if e["name"] == name]


def state_names(aws: EmbeddedAws, arn: str) -> list[str]:
    events = aws.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def rerun_input(bucket: str, key: str, force: bool = True) -> dict[str, Any]:
    payload = load_event("statemachine/rerun.json")  # the console sample, pointed at this bucket
    return {**payload, "bucket": bucket, "key": key, "force": force}


def test_console_rerun_decided_at_triage(aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]) -> None:
    key = "uploads/sm-pizza.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food", "yum"]})
    first = wait_item(aws, key)
    execution = run_execution(aws, rerun_input(bucket, key))
    assert execution["status"] == "SUCCEEDED"
    assert ":execution:" in execution["executionArn"]  # the Standard machine, with its history
    assert state_names(aws, execution["executionArn"]) == [
        "HasTriageResult",
        "AsRerun",
        "Triage",
        "AfterTriage",
        "Claim",
        "IsDecided",
        "Record",
        "Recorded",
    ]
    item = wait_item(aws, key)
    assert (item.primary, item.decided_by) == ("food", "tags")
    assert item.execution == execution["name"]
    assert item.updated_at > first.updated_at  # the forced rerun replaced the result


@pytest.mark.parametrize("machine", ["RerunStateMachineArn", "StateMachineArn"])
def test_rerun_without_force_leaves_a_finished_result(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], machine: str
) -> None:
    key = f"uploads/keep-{machine}.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food", "yum"]})
    first = wait_item(aws, key)
    execution = run_execution(aws, rerun_input(bucket, key, force=False), machine)
    assert execution["status"] == "SUCCEEDED"
    assert state_names(aws, execution["executionArn"])[-1] == "NewerResultKept"
    assert wait_item(aws, key) == first


def test_decided_at_embedding(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI
) -> None:
    key = "uploads/migration.gif"
    calls = len(llm_server.chat_requests)
    meta = {
        "title": "Migration",
        "tags": ["#planetearth", "#bbc"],
        "description": "Thousands of wildebeest pour across the river while crocodiles wait below.",
    }
    upload(aws.s3, bucket, key, gif(), meta, via="sidecar")
    item = wait_item(aws, key)
    assert (item.status, item.decided_by, item.primary) == ("classified", "embedding", "animals")
    assert [s.stage for s in item.stages] == ["tags", "rules", "embedding"]
    assert item.models["embedding"].startswith("minilm-l6-v2")
    assert len(llm_server.chat_requests) == calls  # the LLM was not asked


def test_escalated_to_the_llm(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI
) -> None:
    # The answer may only name the embedding stage's top candidates (stages.llm.choose_from_top).
    llm_server.push(answer("surprised", ["surprised", "funny"], confidence=0.7, rationale="a double take"))
    key = "uploads/hmm.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Hmm", "tags": ["#reaction"]})
    item = wait_item(aws, key)
    assert (item.status, item.decided_by, item.primary) == ("classified", "llm", "surprised")
    assert item.labels == ["surprised", "funny"]
    llm_trace = item.stages[-1]
    assert llm_trace.usage["prompt_tokens"] > 0
    assert item.prompt_version == load_settings().stages["llm"].model_extra["prompt"] == "classify-v2"
    assert item.models["llm"] == "fake-gpt-1"
    assert "llm: a double take" in item.evidence
    # The prompt carried what the embedding stage found, inside its data block.
    prompt = "".join(m["content"] for m in llm_server.chat_requests[-1].messages)
    earlier = prompt.split("<earlier_stages>")[-1].split("</earlier_stages>")[0]
    embedding_trace = next(s for s in item.stages if s.stage == "embedding")
    assert embedding_trace.candidates[0].category in earlier


def test_llm_failure_is_recorded_then_a_rerun_fixes_it(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    llm_server.push(completion("this is not json"), completion('{"primary": "pizza-party"}'))
    key = "uploads/llm fails.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Hmm", "tags": ["#mood"]})
    item = wait_item(aws, key)
    assert item.status == "failed"
    assert "llm" in item.reason
    assert item.primary is None
    # The run itself succeeds (it recorded what happened), so only this metric, and its alarm, say so.
    (run,) = runs_named(aws, item.execution or "")
    assert run["status"] == "SUCCEEDED"
    assert f"Llm_failed@{aws.stack.name}" in emitted_metrics(capsys.readouterr().out)
    alarms = aws.client("cloudwatch").describe_alarms(AlarmNames=[f"{aws.stack.name}-llm-failed"])
    (alarm,) = alarms["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"], alarm["Threshold"]) == ("gifcat", "Llm_failed", 0)
    llm_server.push(answer("funny"))
    execution = run_execution(aws, rerun_input(bucket, key))
    assert execution["status"] == "SUCCEEDED"
    fixed = wait_item(aws, key)
    assert (fixed.status, fixed.primary) == ("classified", "funny")


def test_failed_results_are_run_again_from_the_table_and_nothing_else_is(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # After an LLM outage: rerun what failed, found in the results table (not by listing the bucket).
    def rerun(*args: str) -> dict[str, Any]:
        capsys.readouterr()
        assert main(["rerun", "failed", "--endpoint", aws.endpoint, "--prefix", "uploads/outage ",
                     "--reason", "llm", "--json", *args]) == 0
        out = capsys.readouterr().out  # with the log lines of the runs it started, in their threads
        report, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "which"'):])
        return dict(report)

    broken = [completion("this is not json"), completion('{"primary": "pizza-party"}')]
    llm_server.push(*broken, *broken)
    keys = ["uploads/outage 1.gif", "uploads/outage 2.gif"]
    for key in keys:
        upload(aws.s3, bucket, key, gif(), {"title": "Hmm", "tags": ["#mood"]})
        assert wait_item(aws, key).status == "failed"
    pizza_meta = {"title": "Pizza GIF", "tags": ["pizza", "food"]}
    upload(aws.s3, bucket, "uploads/outage pizza.gif", gif(), pizza_meta)
    pizza = wait_item(aws, "uploads/outage pizza.gif")

    dry = rerun("--dry-run")
    assert (dry["matched"], dry["started"]) == (2, 0)
    assert rerun("--dry-run", "--scan")["matched"] == 2  # the whole table: the same two
    llm_server.push(answer("funny"), answer("funny"))
    done = rerun()
    assert done["started"] == 2 and sorted(done["pks"]) == [f"s3://{bucket}/{k}" for k in keys]
    for key in keys:
        deadline = time.monotonic() + 60
        while (item := wait_item(aws, key)).status == "failed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (item.status, item.primary, item.decided_by) == ("classified", "funny", "llm")
    assert wait_item(aws, "uploads/outage pizza.gif").updated_at == pizza.updated_at  # not failed: untouched
    assert rerun()["matched"] == 0


def test_embedding_failure_is_caught_and_the_llm_still_decides(
    aws: EmbeddedAws,
    bucket: str,
    gif: Callable[..., bytes],
    llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embed = aws.runner.functions[aws.stack.physical_name("EmbedFunction")]

    def broken(event: Any) -> tuple[Any, bool]:
        return {"errorType": "MemoryError", "errorMessage": "out of memory"}, True

    monkeypatch.setattr(embed, "invoke", broken)
    llm_server.push(answer("sad"))
    key = "uploads/embed breaks.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Nobody Came", "tags": ["#mood"]})
    item = wait_item(aws, key)
    assert (item.decided_by, item.primary) == ("llm", "sad")
    embed_trace = next(s for s in item.stages if s.stage == "embedding")
    assert (embed_trace.error or "").startswith("MemoryError")


@pytest.mark.parametrize("function", ["EmbedFunction", "EscalateFunction"])
def test_a_state_decided_already_is_neither_asked_again_nor_counted_again(
    aws: EmbeddedAws, llm_server: FakeOpenAI, capsys: pytest.CaptureFixture[str], function: str
) -> None:
    # The state machine's Choice states send only undecided states on; a direct invoke (the console,
    # sam local invoke with an edited sample) may send a decided one. It used to be run again and its
    # decision counted twice (Reached_* and Decided_*), and a state without traces raised IndexError.
    state = load_event("escalate/state.json")
    state["classification"] |= {"status": "classified", "primary": "sad", "labels": ["sad"],
                                "confidence": 0.9}
    asked = len(llm_server.chat_requests)
    capsys.readouterr()
    for classification in (state["classification"], {**state["classification"], "stages": []}):
        payload, errored = aws.runner.functions[aws.stack.physical_name(function)].invoke(
            {**state, "classification": classification}
        )
        assert not errored, payload
        assert Classification.model_validate(payload["classification"]) == Classification.model_validate(
            classification
        )
        assert payload["record"] is not None  # what it holds is still recorded
    assert len(llm_server.chat_requests) == asked
    counted = emitted_metrics(capsys.readouterr().out)
    assert not {m for m in counted if m.startswith(("Reached_", "Decided_", "LlmCostUsd"))}, counted


def test_a_failing_step_records_a_failed_result_and_the_execution_fails(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    escalate = aws.runner.functions[aws.stack.physical_name("EscalateFunction")]
    monkeypatch.setattr(
        escalate, "invoke", lambda event: ({"errorType": "Timeout", "errorMessage": "slow"}, True)
    )
    key = "uploads/escalate breaks.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Hmm", "tags": ["#fyp"]})
    item = wait_item(aws, key)
    assert item.status == "failed"
    assert item.reason.startswith("Timeout")
    assert item.execution is not None
    (run,) = runs_named(aws, item.execution)
    assert run["status"] == "FAILED"
    # RecordFailure also puts it in the index that `gifcat rerun failed` queries.
    table = ResultsTable(aws.outputs["ResultsTableName"], aws.client("dynamodb"))
    assert item.pk in [i.pk for i in table.rerunnable(Status.FAILED)]


def test_rerun_of_a_missing_object_records_skipped(
    aws: EmbeddedAws, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="moto")
    execution = run_execution(aws, rerun_input(bucket, "uploads/never uploaded.gif"))
    assert execution["status"] == "SUCCEEDED"
    # A rerun has no triage result: HasTriageResult's IsPresent is false, which is no error to log.
    assert not [r for r in caplog.records if "NoSuchJsonPathError" in r.getMessage()]
    item = wait_item(aws, "uploads/never uploaded.gif")
    assert item.status == "skipped" and "deleted before it was read" in item.reason


def test_a_rerun_of_a_sidecar_or_an_old_version_writes_nothing(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    # The upload path gives a sidecar no result, and an item is about its key's current object: a
    # console rerun naming either once wrote a "not a GIF" item, or the old version's answer.
    key = "uploads/rerun-sidecar.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]}, via="sidecar")
    before = wait_item(aws, key)
    assert run_execution(aws, rerun_input(bucket, f"{key}.json"))["status"] == "SUCCEEDED"
    assert f"{key}.json" not in {r.key for r in aws.results()}
    other_version = {**rerun_input(bucket, key), "version_id": "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"}
    execution = run_execution(aws, other_version)
    assert execution["status"] == "SUCCEEDED"
    after = wait_item(aws, key)
    assert (after.updated_at, after.primary, after.status) == (before.updated_at, "food", "classified")


def test_a_rerun_whose_input_is_refused_fails_with_the_reason(aws: EmbeddedAws, bucket: str) -> None:
    # No item is the run's, so none records it: the run's own cause says why (it said "the result item
    # records the reason", which was not so).
    execution = run_execution(aws, {**rerun_input(bucket, "uploads/x.gif"), "force": "maybe"})
    assert (execution["status"], execution["error"]) == ("FAILED", "ClassificationFailed")
    assert execution["cause"].startswith("ValidationError: ") and "force" in execution["cause"]
    assert "uploads/x.gif" not in {r.key for r in aws.results()}


def test_a_rerun_started_twice_by_name_runs_once(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Standard rerun machine: Step Functions itself starts a name once.
    key = "uploads/dup-start.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Kiss", "tags": ["kiss", "love"]})
    wait_item(aws, key)
    # The execution's first step waits for the test: the duplicate start meets it running, every time.
    step = aws.runner.functions[aws.stack.physical_name("TriageStepFunction")]
    release, invoke = threading.Event(), step.invoke

    def held(event: Any) -> tuple[Any, bool]:
        release.wait(60)
        return invoke(event)

    monkeypatch.setattr(step, "invoke", held)
    escalations = Escalations(aws.outputs["RerunStateMachineArn"], aws.client("stepfunctions"))
    payload = rerun_input(bucket, key)
    try:
        assert escalations.start("dup-start-1", payload) == "started"
        # Same name, other input: not started again.
        assert escalations.start("dup-start-1", {**payload, "force": False}) == "running"
    finally:
        release.set()
    listed = aws.client("stepfunctions").list_executions(stateMachineArn=aws.outputs["RerunStateMachineArn"])
    assert [e["name"] for e in listed["executions"]].count("dup-start-1") == 1
    assert finished(aws, escalations.execution_arn("dup-start-1"))["status"] == "SUCCEEDED"
    assert escalations.start("dup-start-1", payload) == "closed"


def pending_state(aws: EmbeddedAws, bucket: str, key: str, body: bytes, name: str) -> dict[str, Any]:
    """A pending item named for execution `name` and the state its triage would start the machine with,
    for an object outside the upload prefix (so that no triage of its own runs)."""
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.application.service import StepState
    from gifcat.domain.model import Status
    from gifcat.domain.result import result_item

    aws.s3.put_object(Bucket=bucket, Key=key, Body=body)
    state = StepState.model_validate(load_event("embed/state.json"))
    ref = state.object.model_copy(update={"bucket": bucket, "key": key, "size": len(body)})
    pending = state.classification.model_copy(update={"status": Status.PENDING})
    table = ResultsTable(aws.outputs["ResultsTableName"], aws.client("dynamodb"))
    assert table.put(result_item(ref, pending, metadata=state.metadata, execution=name), kind="pending")
    return state.model_copy(update={"object": ref, "execution": name}).model_dump(mode="json")


def test_duplicate_runs_of_one_express_execution_give_one_result(
    aws: EmbeddedAws,
    bucket: str,
    gif: Callable[..., bytes],
    llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Express starts are at-least-once and not idempotent by name: three runs of one execution, started
    # together before any has claimed the item, must embed once, ask the LLM at most once and record once.
    embed = aws.runner.functions[aws.stack.physical_name("EmbedFunction")]
    embedded: list[str] = []
    original = embed.invoke

    def counting(event: Any) -> tuple[Any, bool]:
        embedded.append(event["execution"])
        return original(event)

    monkeypatch.setattr(embed, "invoke", counting)
    name = "dup-express-1"
    state = pending_state(aws, bucket, "manual/dup express.gif", gif(), name)
    sfn, machine = aws.client("stepfunctions"), aws.outputs["StateMachineArn"]
    arns = [
        sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(state))["executionArn"]
        for _ in range(3)
    ]
    assert len(set(arns)) == 3  # three runs, as AWS would start them
    runs = [finished(aws, arn) for arn in arns]
    assert all(r["status"] == "SUCCEEDED" for r in runs)
    ends = sorted(state_names(aws, arn)[-1] for arn in arns)
    assert ends == ["AlreadyClaimed", "AlreadyClaimed", "Recorded"], ends
    assert embedded == [name]
    item = wait_item(aws, "manual/dup express.gif")
    assert item.status == "classified" and item.execution == name
    assert item.run in arns  # the run that claimed it
    # A late duplicate, once the answer is recorded, changes nothing.
    late = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(state))
    assert state_names(aws, finished(aws, late["executionArn"])["executionArn"])[-1] == "AlreadyClaimed"
    assert wait_item(aws, "manual/dup express.gif") == item and embedded == [name]


def state_sizes(aws: EmbeddedAws, arn: str) -> dict[str, int]:
    """The largest input or output of each step, in bytes of the JSON moto's interpreter measures
    (ASCII-escaped: an emoji counts 12 bytes, three times its UTF-8 size, so this errs high)."""
    sizes: dict[str, int] = {}
    events = aws.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    step = "execution"
    for event in events:
        for name, details in event.items():
            if not name.endswith("EventDetails") or not isinstance(details, dict):
                continue
            step = details.get("name", step)
            for field in ("input", "output"):
                if isinstance(details.get(field), str):
                    sizes[step] = max(sizes.get(step, 0), len(details[field].encode("utf-8")))
    return sizes


def test_a_64_kb_emoji_sidecar_keeps_every_state_small(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI
) -> None:
    # Issue 11, item 6: the state carried the metadata twice, and escaping tripled the emoji: 193 KB
    # going in, over Step Functions' 256 KB after Embed (States.DataLimitExceeded, which on AWS no
    # Catch can catch: the item stayed pending).
    emoji = "🎉😂🐶🍕⚽💔😡🎂"
    tags = [(emoji * 63)[:500] for _ in range(31)]  # 31 tags of 500 emoji: 62,000 bytes of UTF-8
    sidecar = json.dumps({"title": "Hmm", "tags": tags}, ensure_ascii=False).encode()
    assert 60_000 < len(sidecar) <= load_settings().limits.max_metadata_bytes
    key = "uploads/emoji sidecar.gif"
    upload(aws.s3, bucket, key, gif(), None, via="sidecar", sidecar_body=sidecar)
    item = wait_item(aws, key)
    assert item.status == "classified", item.reason
    assert item.tags == tags  # the item keeps the metadata whole; the state needed only a part
    assert item.execution is not None
    (run,) = runs_named(aws, item.execution)
    sizes = state_sizes(aws, run["executionArn"])
    assert {"Embed", "Record"} <= set(sizes), sizes  # it went through the state machine
    assert max(sizes.values()) < 64 * 1024, sizes  # a quarter of the limit, escaped


def test_a_step_past_its_timeout_fails_into_the_catch(
    aws: EmbeddedAws,
    bucket: str,
    gif: Callable[..., bytes],
    llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 11, item 7b: the local runner reported a function's Timeout but never enforced it, so a
    # slow endpoint kept an item pending. Lambda stops the call and Step Functions sees
    # Sandbox.Timedout, which the Catch turns into a recorded failure.
    escalate = aws.runner.functions[aws.stack.physical_name("EscalateFunction")]
    monkeypatch.setattr(escalate, "timeout_s", 1)  # the template says 120 s: too long to wait for here
    llm_server.push(slow(60.0))  # longer than the client's 20 s timeout, let alone the function's
    key = "uploads/llm hangs.gif"
    started = time.monotonic()
    upload(aws.s3, bucket, key, gif(), {"title": "Hmm", "tags": ["#reaction"]})
    item = wait_item(aws, key)
    assert item.status == "failed"
    assert (
        item.reason.startswith("Sandbox.Timedout: ") and "timed out after 1.00 seconds" in item.reason
    )
    assert time.monotonic() - started < 20.0  # cut at the function's timeout, not at the client's
    monkeypatch.undo()
    key = "uploads/llm answers.gif"  # the function serves the next item as usual
    upload(aws.s3, bucket, key, gif(), {"title": "Hmm", "tags": ["#reaction"]})
    assert wait_item(aws, key).status == "classified"


def test_results_export_as_labelled_examples(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI, tmp_path: Path
) -> None:
    llm_server.push(answer("angry", ["angry", "funny"], rationale="reply-all rage"))
    key = "uploads/export-me.gif"
    upload(
        aws.s3,
        bucket,
        key,
        gif(),
        {"title": "Reply All", "tags": ["#work"], "description": "The floor groans."},
        via="sidecar",
    )
    assert wait_item(aws, key).decided_by == "llm"
    out = tmp_path / "labelled.jsonl"
    env = {**os.environ, "AWS_ENDPOINT_URL": aws.endpoint}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "gifcat_tooling.cli",
            "export",
            "--table",
            aws.outputs["ResultsTableName"],
            "--out",
            str(out),
            "--decided-by",
            "llm",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    records = read_records(out)
    mine = next(r for r in records if r.id == f"s3://{bucket}/{key}")
    assert (mine.primary, mine.labels, mine.description) == ("angry", ["angry", "funny"], "The floor groans.")
    assert all(r.difficulty == "exported:llm" for r in records)
    # The embedding stage takes them as its kNN memory.
    stage = build_embedding_stage(load_settings(), load_taxonomy(), labelled=str(out))
    assert stage.labelled is not None and len(stage.labelled.ids) == len(records)
