"""Human corrections on the embedded AWS: `gifcat correct` records `decided_by: human`, no machine write
replaces it for the same upload (duplicate events, running executions, forced console reruns), and a newer
upload is classified as usual. Bad requests fail with a message and write nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from gifcat.domain.result import ResultItem
from gifcat_tooling.cli import main
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from tests.integration.conftest import (
    console_rerun,
    pending_upload,
    put_late_sidecar,
    s3_event,
    wait_item,
    wait_run_ended,
)
from tests.support.fake_openai import FakeOpenAI, RecordedRequest, Reply, answer


@pytest.fixture(scope="module")
def bucket(aws: EmbeddedAws) -> str:
    return aws.outputs["UploadsBucketName"]


@pytest.fixture(autouse=True)
def fresh_script(llm_server: FakeOpenAI) -> None:
    llm_server.clear()


def correct(aws: EmbeddedAws, uri: str, *args: str) -> int:
    """`gifcat correct` in-process against the embedded AWS (its endpoint and the stack's table)."""
    return main(["correct", uri, *args, "--endpoint", aws.endpoint])


def test_correction_is_recorded_as_human(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key = "uploads/fix-me.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    machine = wait_item(aws, key)
    assert (machine.primary, machine.decided_by) == ("food", "tags")
    assert correct(aws, f"s3://{bucket}/{key}", "--category", "funny", "--labels", "funny,food") == 0
    out = capsys.readouterr().out  # the handlers' log lines go to stdout here too: the JSON printed last
    printed = json.loads(out[out.rindex('{\n  "pk"'):])
    item = wait_item(aws, key)
    assert printed["primary"] == item.primary == "funny"
    assert (item.status, item.decided_by, item.labels) == ("classified", "human", ["funny", "food"])
    assert item.confidence == 1
    assert item.taxonomy_version == machine.taxonomy_version
    # The machine's answer is kept beside it (what a learner compares), and so is the object's order.
    assert item.corrected_from is not None
    assert (item.corrected_from.primary, item.corrected_from.decided_by) == ("food", "tags")
    assert (item.object_seq, item.etag) == (machine.object_seq, machine.etag)
    assert item.execution is None and item.updated_at > machine.updated_at
    assert item.corrected_at == item.updated_at


def test_a_correction_is_given_to_the_results_of_the_same_bytes_and_metadata(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    body, meta = gif(frames=7), {"title": "Hmm, the same", "tags": ["#mood", "#same"]}
    upload(aws.s3, bucket, "uploads/same-1.gif", body, meta)
    first = wait_item(aws, "uploads/same-1.gif")
    assert first.status == "classified" and first.decided_by in ("embedding", "llm")
    copies = []
    for key in ("uploads/same-2.gif", "uploads/same-3.gif"):
        aws.s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": "uploads/same-1.gif"})
        copies.append(wait_item(aws, key))
        assert copies[-1].reused_from == first.pk
    two, three = (c.pk for c in copies)

    def printed() -> dict[str, Any]:
        out = capsys.readouterr().out
        return dict(json.loads(out[out.rindex('{\n  "pk"'):]))

    def answers() -> dict[str, tuple[str | None, str | None, str | None]]:
        items = {r.pk: r for r in aws.results()}
        return {pk: (items[pk].primary, items[pk].decided_by, items[pk].reused_from)
                for pk in (first.pk, two, three)}

    capsys.readouterr()
    # A person corrects a copy: the upload it copied and its other copy take the answer, naming it.
    assert correct(aws, two, "--category", "sports", "--by", "ana") == 0
    assert printed()["same_content"] == sorted([first.pk, three])
    assert answers() == {first.pk: ("sports", "human", two), two: ("sports", "human", None),
                         three: ("sports", "human", two)}
    taken = wait_item(aws, "uploads/same-1.gif")
    assert taken.reused_cost_usd is None  # it saved nothing: it was not a repost
    assert wait_item(aws, "uploads/same-3.gif").reused_cost_usd == copies[1].reused_cost_usd is not None
    assert taken.corrected_at is None and taken.evidence == [
        f"reused: the same bytes and metadata as {two}, decided by human", "human: corrected by ana"]
    # Another person's answer on this one only; it stays through the next correction of the other.
    assert correct(aws, three, "--category", "funny", "--this-only") == 0
    assert "same_content" not in printed()
    assert correct(aws, two, "--category", "cute") == 0
    assert printed()["same_content"] == [first.pk]
    assert answers() == {first.pk: ("cute", "human", two), two: ("cute", "human", None),
                         three: ("funny", "human", None)}


def human_item(aws: EmbeddedAws, key: str, category: str = "sad") -> ResultItem:
    assert correct(aws, f"s3://{aws.outputs['UploadsBucketName']}/{key}", "--category", category) == 0
    item = wait_item(aws, key)
    assert (item.decided_by, item.primary) == ("human", category)
    return item


def test_forced_console_rerun_keeps_the_human_answer(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI
) -> None:
    key = "uploads/rerun-human.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    wait_item(aws, key)
    before = human_item(aws, key)
    for force in (True, False):
        execution = console_rerun(aws, bucket, key, force=force)
        assert execution["status"] == "SUCCEEDED"
        after = wait_item(aws, key)
        assert (after.decided_by, after.primary, after.updated_at) == ("human", "sad", before.updated_at)


def test_a_late_sidecar_keeps_the_human_answer(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI
) -> None:
    key = "uploads/sidecar-human.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    wait_item(aws, key)
    before = human_item(aws, key)
    run = put_late_sidecar(aws, bucket, key, b'{"title": "Kiss", "tags": ["kiss", "love"]}')
    assert run["name"].startswith("sidecar-human-gif-json-")  # the rerun the sidecar started, named after it
    after = wait_item(aws, key)
    assert (after.decided_by, after.primary, after.updated_at) == ("human", "sad", before.updated_at)


def test_repeated_upload_event_keeps_the_human_answer(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/dup-human.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Kiss", "tags": ["kiss", "love"]})
    machine = wait_item(aws, key)
    before = human_item(aws, key, "funny")
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    assert machine.etag is not None and machine.sequencer is not None
    aws.runner.submit(fn, s3_event(bucket, key, etag=machine.etag, sequencer=machine.sequencer))
    after = wait_item(aws, key)
    assert (after.decided_by, after.updated_at) == ("human", before.updated_at)


def test_running_execution_does_not_overwrite_a_correction(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The LLM answers slowly: the person corrects the item while its execution is still running.
    key = "uploads/race-human.gif"
    pending = pending_upload(aws, bucket, key, gif(), llm_server, monkeypatch)
    assert correct(aws, f"s3://{bucket}/{key}", "--category", "love") == 0
    arn = wait_run_ended(aws, pending.execution)
    item = wait_item(aws, key)
    assert (item.decided_by, item.primary) == ("human", "love")
    # Nothing of the run it took over stays on the item: no execution, no claim, not in rerun's index.
    assert (item.execution, item.run, item.claimed_at, item.rerunnable) == (None, None, None, None)
    events = aws.client("stepfunctions").get_execution_history(executionArn=arn)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    # Its write was refused: at Record if the run claimed the item before the person answered, at Claim
    # if the answer came first (the correction drops the execution the claim needs). Both end unwritten.
    assert entered[-2:] in (["Record", "NewerResultKept"], ["Claim", "AlreadyClaimed"])


def test_a_newer_upload_is_classified_as_usual(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/new-version.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    wait_item(aws, key)
    human = human_item(aws, key, "funny")
    upload(aws.s3, bucket, key, gif(frames=2), {"title": "Dance", "tags": ["dance", "dancing"]})
    deadline = time.monotonic() + 60
    item = wait_item(aws, key)
    while item.decided_by == "human" and time.monotonic() < deadline:
        time.sleep(0.1)
        item = wait_item(aws, key)
    assert (item.decided_by, item.primary) == ("tags", "dance")
    assert item.object_seq > human.object_seq
    assert item.corrected_from is None and item.corrected_by is None  # the new upload's own result


def test_unknown_category_fails_and_writes_nothing(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key = "uploads/bad-category.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    before = wait_item(aws, key)
    assert correct(aws, f"s3://{bucket}/{key}", "--category", "pizza_party") == 2
    err = capsys.readouterr().err
    assert "unknown category 'pizza_party'" in err and "funny" in err  # names the categories there are
    assert correct(aws, f"s3://{bucket}/{key}", "--category", "food", "--labels", "food,yum") == 2
    assert "unknown label 'yum'" in capsys.readouterr().err
    assert wait_item(aws, key) == before


def test_missing_object_or_result_fails_and_writes_nothing(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    assert correct(aws, f"s3://{bucket}/uploads/nope.gif", "--category", "funny") == 2
    assert "does not exist" in capsys.readouterr().err
    aws.s3.put_object(Bucket=bucket, Key="elsewhere/untriaged.gif", Body=gif())  # outside the trigger
    assert correct(aws, f"s3://{bucket}/elsewhere/untriaged.gif", "--category", "funny") == 2
    assert "no result" in capsys.readouterr().err
    assert correct(aws, "not-a-uri", "--category", "funny") == 2
    assert "s3://BUCKET/KEY" in capsys.readouterr().err
    keys = {r.key for r in aws.results()}
    assert not keys & {"uploads/nope.gif", "elsewhere/untriaged.gif"}


def test_result_of_an_older_version_is_not_corrected(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = "uploads/old-version.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    before = wait_item(aws, key)
    # The next upload's triage has not written yet (here: it fails): the result describes the old bytes.
    triage = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    monkeypatch.setattr(triage, "invoke", lambda event: ({"errorType": "Boom", "errorMessage": "x"}, True))
    upload(aws.s3, bucket, key, gif(frames=5), {"title": "Pizza again", "tags": ["pizza"]})
    assert aws.runner.drain(30)
    assert correct(aws, f"s3://{bucket}/{key}", "--category", "funny") == 2
    assert "older version" in capsys.readouterr().err
    assert wait_item(aws, key) == before


def test_cli_subprocess_against_the_embedded_aws(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI
) -> None:
    llm_server.push(answer("surprised"))
    key = "uploads/cli-correct.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Kiss", "tags": ["kiss", "love"]})
    wait_item(aws, key)
    table = aws.outputs["ResultsTableName"]
    run = subprocess.run(
        [sys.executable, "-m", "gifcat_tooling.cli", "correct", f"s3://{bucket}/{key}", "--category", "cute",
         "--endpoint", aws.endpoint, "--table", table],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert (json.loads(run.stdout)["decided_by"], wait_item(aws, key).primary) == ("human", "cute")


def summary(aws: EmbeddedAws, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """`gifcat summary --json` in-process against the embedded AWS, its rows by decider."""
    assert main(["summary", "--endpoint", aws.endpoint, "--json", *args]) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.rindex('{\n  "table"'):])
    printed["rows"] = {row["decided_by"]: row for row in printed["deciders"]}
    return printed


def test_summary_counts_a_correction_against_the_stage_it_overruled(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key = "uploads/summary-me.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    assert wait_item(aws, key).decided_by == "tags"
    # one result written before the correction and left alone, which `--since` must leave out below
    # whichever other tests share the stack
    earlier = "uploads/summary-earlier.gif"
    upload(aws.s3, bucket, earlier, gif(), {"title": "Taco GIF", "tags": ["tacos", "food"]})
    assert wait_item(aws, earlier).decided_by == "tags"
    before = summary(aws, capsys)
    assert before["rows"]["tags"]["items"] >= 1
    corrected_at = datetime.now(UTC)
    assert correct(aws, f"s3://{bucket}/{key}", "--category", "funny") == 0
    capsys.readouterr()
    after = summary(aws, capsys)
    # Other tests' executions may still finish in between: only what a correction moves is compared.
    tags, human = (after["rows"][d]["items"] - before["rows"][d]["items"] for d in ("tags", "human"))
    assert (tags, human) == (-1, 1)
    checked, changed = (after["rows"]["tags"][f] - before["rows"]["tags"][f] for f in ("checked", "changed"))
    assert (checked, changed) == (1, 1)
    assert after["table"] == aws.outputs["ResultsTableName"]
    assert after["cost_usd"]["total_usd"] > 0
    # The item, readable: the person's answer and the stage it overruled.
    capsys.readouterr()
    assert main(["show", f"s3://{bucket}/{key}", "--endpoint", aws.endpoint]) == 0
    shown = capsys.readouterr().out
    assert f"s3://{bucket}/{key}: classified funny, decided by human at 1.00" in shown
    assert "the machine said food (tags)" in shown and "      food         0.9" in shown
    assert main(["show", f"s3://{bucket}/uploads/never-uploaded.gif", "--endpoint", aws.endpoint]) == 1
    assert "gifcat show: no result for" in capsys.readouterr().err
    # Since the correction: it is counted, and what was written before is not.
    recent = summary(aws, capsys, "--since", corrected_at.isoformat())
    assert recent["rows"]["human"]["items"] >= 1 and recent["items"] < after["items"]


def test_an_item_that_is_not_a_result_is_left_out_and_named(
    aws: EmbeddedAws, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Another writer's item, or one of a newer schema: the commands over the table go on without it
    # and name it; `show` of it says why in a line.
    ddb, table = aws.client("dynamodb"), aws.outputs["ResultsTableName"]
    pk = f"s3://{bucket}/uploads/foreign.gif"
    ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "status": {"S": "weird"}})
    try:
        capsys.readouterr()
        assert main(["summary", "--endpoint", aws.endpoint, "--json"]) == 0
        out = capsys.readouterr().out
        listed = json.loads(out[out.index('{\n  "table"'):])
        assert [u.split(": ")[0] for u in listed["unreadable"]] == [pk]
        assert "status: Input should be" in listed["unreadable"][0]
        assert main(["show", pk, "--endpoint", aws.endpoint]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"gifcat: results table item {pk}: not a gifcat result: status:")
        assert len(err.strip().splitlines()) == 1
    finally:
        ddb.delete_item(TableName=table, Key={"pk": {"S": pk}})


def test_correct_without_a_reachable_aws_is_one_line(bucket: str, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code = main(["correct", f"s3://{bucket}/uploads/x.gif", "--category", "funny", "--endpoint", closed,
                 "--table", "results"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("gifcat: AWS: S3 head:") and len(err.strip().splitlines()) == 1


def test_export_finds_the_local_stacks_table_from_its_endpoint(aws: EmbeddedAws, tmp_path: Any) -> None:
    out = tmp_path / "examples.jsonl"
    assert main(["export", "--endpoint", aws.endpoint, "--out", str(out)]) == 0
    assert out.is_file()


def earlier_stages(n: int) -> Callable[[RecordedRequest], Reply]:
    """An LLM answering the earlier stages' n-th suggestion (0: their first, which the learner's prior
    gate admits; 1: another, which it refuses)."""

    def reply(request: RecordedRequest) -> Reply:
        text = request.text
        # The user turn's block, the last (the instructions name the tags before it).
        shown = json.loads(text[text.rindex("<earlier_stages>") + 16 : text.rindex("</earlier_stages>")])
        return answer(shown[n]["category"], confidence=0.8, rationale=f"scripted: suggestion {n}")

    return reply


def review(aws: EmbeddedAws, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(["review", *args, "--endpoint", aws.endpoint]) == 0
    return capsys.readouterr().out


def test_the_review_queue_lists_what_the_learner_will_not_learn_and_a_correction_takes_it_out(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    refused, admitted, tagged = (f"uploads/review-{uuid.uuid4().hex[:6]}-{n}.gif" for n in range(3))
    meta = {"title": "Hmm", "tags": ["#mood"]}  # the cheap stages leave it to the LLM
    monkeypatch.setattr(llm_server, "responder", earlier_stages(1))
    upload(aws.s3, bucket, refused, gif(), meta)
    wait_item(aws, refused)
    monkeypatch.setattr(llm_server, "responder", earlier_stages(0))
    upload(aws.s3, bucket, admitted, gif(frames=4), meta)
    upload(aws.s3, bucket, tagged, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    items = {k: wait_item(aws, k) for k in (refused, admitted, tagged)}
    assert items[refused].decided_by == items[admitted].decided_by == "llm"

    def queue() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        out = review(aws, capsys, "--json", "--limit", "1000")
        printed = json.loads(out[out.rindex('{\n  "table"'):])
        return printed, {row["uri"]: row for row in printed["rows"]}

    printed, rows = queue()
    # Too few LLM answers have a person's answer too (under 20) to judge the LLM: the prior gate admits
    # those that agree with the embedding stage's first candidate, so the one that does not is taught
    # and the other checked.
    pairs = printed["gate"]["pairs"]
    assert printed["gate"]["rule"] == "agreement" and pairs < 20
    assert (rows[f"s3://{bucket}/{refused}"]["why"], rows[f"s3://{bucket}/{admitted}"]["why"]) == (
        "teach", "check")
    assert rows[f"s3://{bucket}/{refused}"]["category"] == items[refused].primary
    assert f"s3://{bucket}/{tagged}" not in rows  # certified triage answers are not queued
    text = review(aws, capsys, "--limit", "1000")
    assert f"gifcat correct s3://{bucket}/{refused} --category {items[refused].primary}" in text

    assert correct(aws, f"s3://{bucket}/{refused}", "--category", "funny") == 0
    printed, rows = queue()
    assert f"s3://{bucket}/{refused}" not in rows and f"s3://{bucket}/{admitted}" in rows
    assert printed["gate"]["pairs"] == pairs + 1  # the person's answer is the gate's evidence now
    # --since reads no result written before then, and people's answers of any age still choose the gate.
    out = review(aws, capsys, "--json", "--since", "2999-01-01")
    later = json.loads(out[out.rindex('{\n  "table"'):])
    assert later["rows"] == [] and later["gate"]["pairs"] == pairs + 1
