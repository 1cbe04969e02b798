"""Upload to result through the embedded AWS: S3 notification -> TriageFunction -> DynamoDB or the
state machine. The handlers are the real ones; the stack is deployed from template.yaml."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any, get_args

import pytest

from gifcat.adapters.dynamodb import ResultsTable
from gifcat.adapters.stepfunctions import execution_name
from gifcat.application.artefacts import RefreshOutcome
from gifcat.application.learn import SOURCES
from gifcat.application.ports import SourceUnavailable
from gifcat.domain.model import GifMetadata, StageName, Status
from gifcat.domain.result import ObjectRef, ResultItem
from gifcat.domain.result_events import DetailType
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from tests.integration.conftest import (
    after_run,
    dashboard,
    emitted_metrics,
    pending_upload,
    put_late_sidecar,
    runs,
    s3_event,
    wait_item,
    wait_run_ended,
)
from tests.support.fake_openai import FakeOpenAI, first_category, slow


@pytest.fixture(scope="module")
def bucket(aws: EmbeddedAws) -> str:
    return aws.outputs["UploadsBucketName"]


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
    # Prefix only: S3's suffix filter compares case by case, and "Cat.GIF" is an upload too.
    assert rules == {"prefix": "uploads/"}


def test_upload_decided_by_tags(aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]) -> None:
    key = "uploads/pizza time.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "cheese", "food"]})
    item = wait_item(aws, key)
    assert (item.status, item.primary, item.decided_by) == ("classified", "food", "tags")
    assert item.pk == f"s3://{bucket}/{key}"
    assert "tag 'pizza'" in item.evidence
    assert item.taxonomy_version and item.timings_ms["tags"] >= 0


def test_unicode_key_with_plus_and_sidecar(aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]) -> None:
    key = "uploads/happy birthday 🎂+1.gif"
    meta = {"title": "Joyeux anniversaire 🎉", "tags": ["birthday", "🎂", "party"]}
    upload(aws.s3, bucket, key, gif(), meta, via="sidecar")
    item = wait_item(aws, key)
    assert item.primary == "celebration"
    assert item.title == "Joyeux anniversaire 🎉"


def test_non_ascii_user_metadata(aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]) -> None:
    key = "uploads/wut.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "wütend 😡", "tags": ["wütend", "sauer", "grr"]})
    item = wait_item(aws, key)
    assert (item.primary, item.title) == ("angry", "wütend 😡")


def test_objects_outside_the_filter_do_not_trigger(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    aws.s3.put_object(Bucket=bucket, Key="elsewhere/cat.gif", Body=gif())
    aws.s3.put_object(Bucket=bucket, Key="uploads/cat.png", Body=gif())
    aws.s3.put_object(Bucket=bucket, Key="uploads/orphan.gif.json", Body=b'{"title": "a sidecar alone"}')
    assert aws.runner.drain(10)
    keys = {r.key for r in aws.results()}
    assert not keys & {"elsewhere/cat.gif", "uploads/cat.png", "uploads/orphan.gif.json"}


def test_a_sidecar_put_after_its_upload_is_read(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    # Uploaded first, the GIF has no metadata; the sidecar that follows reads it again, through the
    # classify machine's rerun path.
    key = "uploads/late sidecar.gif"
    aws.s3.put_object(Bucket=bucket, Key=key, Body=gif(), ContentType="image/gif")
    assert wait_item(aws, key).status == "skipped"
    sidecar = json.dumps({"title": "Pizza GIF", "tags": ["pizza", "cheese", "food"]}).encode()
    put_late_sidecar(aws, bucket, key, sidecar)
    item = wait_item(aws, key)
    assert (item.status, item.primary, item.decided_by) == ("classified", "food", "tags")
    assert item.title == "Pizza GIF"
    # The same metadata put again is read already: the rerun keeps the result and writes nothing.
    put_late_sidecar(aws, bucket, key, sidecar)
    assert wait_item(aws, key).updated_at == item.updated_at


def test_a_deleted_uploads_result_says_so_until_it_expires_and_a_new_upload_is_classified(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    key = "uploads/deleted later.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    assert wait_item(aws, key).primary == "food"
    capsys.readouterr()
    aws.s3.delete_object(Bucket=bucket, Key=key)
    gone = wait_item(aws, key)
    assert (gone.status, gone.reason, gone.primary, gone.decided_by) == (
        "deleted", "object deleted (ObjectRemoved:Delete)", None, None)
    assert gone.expires_at is not None and 29 * 86400 < gone.expires_at - time.time() <= 30 * 86400
    assert "Upload_deleted@" + aws.stack.name in emitted_metrics(capsys.readouterr().out)
    ttl = aws.client("dynamodb").describe_time_to_live(TableName=aws.outputs["ResultsTableName"])
    assert ttl["TimeToLiveDescription"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    # Uploaded again: classified as any upload, and the tombstone's expiry goes with it.
    upload(aws.s3, bucket, key, gif(), {"title": "Cat GIF", "tags": ["cat", "kitten"]})
    again = wait_item(aws, key)
    assert (again.status, again.primary, again.expires_at) == ("classified", "animals", None)


def test_an_upload_deleted_while_its_run_goes_on_stays_deleted(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The run's Record finishes only the item its execution owns: the tombstone names none.
    key = "uploads/deleted mid-run.gif"
    pending = pending_upload(aws, bucket, key, gif(), llm_server, monkeypatch)
    aws.s3.delete_object(Bucket=bucket, Key=key)
    assert wait_item(aws, key).status == "deleted"
    wait_run_ended(aws, pending.execution)
    item = wait_item(aws, key)
    assert (item.status, item.primary, item.execution) == ("deleted", None, None)


def test_a_sidecar_deleted_after_its_upload_is_read_again(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    # The result was made from the sidecar; with it gone, the GIF is classified from what is left
    # (here nothing: skipped), as a late sidecar's upload is.
    key = "uploads/sidecar removed.gif"
    aws.s3.put_object(Bucket=bucket, Key=key + ".json",
                      Body=json.dumps({"title": "Pizza GIF", "tags": ["pizza", "food"]}).encode())
    aws.s3.put_object(Bucket=bucket, Key=key, Body=gif(), ContentType="image/gif")
    assert wait_item(aws, key).primary == "food"
    run = after_run(aws, lambda: aws.s3.delete_object(Bucket=bucket, Key=key + ".json"))
    assert run["status"] in ("RUNNING", "SUCCEEDED")
    item = wait_item(aws, key)
    assert (item.status, item.title) == ("skipped", None)


def test_a_late_sidecar_that_does_not_parse_is_recorded(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    # Read, it is no metadata, as the GIF had: what the result says is the reason (README's table).
    key = "uploads/late broken sidecar.gif"
    aws.s3.put_object(Bucket=bucket, Key=key, Body=gif(), ContentType="image/gif")
    assert wait_item(aws, key).status == "skipped"
    put_late_sidecar(aws, bucket, key, b'{"title": "oops",}')
    item = wait_item(aws, key)
    assert item.status == "failed" and (item.reason or "").startswith("sidecar JSON does not parse")


def test_a_second_start_of_a_sidecar_rerun_ends_without_claiming(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    # Express starts are at-least-once. A second start that finds the item pending under its own name
    # (the first start took it over and has not claimed it yet) keeps: it must not claim and record
    # the empty state a keeping triage step returns.
    key = "uploads/twice started.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    wait_item(aws, key)
    first = put_late_sidecar(aws, bucket, key, b'{"title": "a kiss", "tags": ["kiss", "love"]}')
    done = wait_item(aws, key)
    assert (done.title, done.primary, done.execution) == ("a kiss", "love", first["name"])
    ddb, table = aws.client("dynamodb"), aws.outputs["ResultsTableName"]
    raw = ddb.get_item(TableName=table, Key={"pk": {"S": done.pk}})["Item"]
    raw["status"] = {"S": "pending"}  # as the first start's take-over left it, before its Claim
    raw.pop("run", None)
    raw.pop("claimed_at", None)
    ddb.put_item(TableName=table, Item=raw)
    sfn = aws.client("stepfunctions")
    request = {"bucket": bucket, "key": key, "force": True, "metadata_changed_only": True}
    arn = sfn.start_execution(stateMachineArn=aws.outputs["StateMachineArn"], name=first["name"],
                              input=json.dumps(request))["executionArn"]
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.1)
    history = sfn.get_execution_history(executionArn=arn)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert entered[-1] == "AlreadyClaimed" and "Claim" not in entered, entered
    after = wait_item(aws, key, finished=False)
    assert (after.status, after.title) == ("pending", "a kiss")  # left for the first start to record


def test_an_upper_case_suffix_is_an_upload(aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]) -> None:
    # Cameras and Windows tools write "IMG_0001.GIF": S3's suffix filter would have dropped these
    # without a trace.
    for key in ("uploads/Cat Nap.GIF", "uploads/cat nap.Gif"):
        upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "cheese", "food"]})
        item = wait_item(aws, key)
        assert (item.status, item.primary, item.decided_by) == ("classified", "food", "tags")


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
    assert item.status == status
    assert reason in item.reason


def test_object_deleted_before_it_is_read(aws: EmbeddedAws, bucket: str) -> None:
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    aws.runner.submit(fn, s3_event(bucket, "uploads/gone.gif", size=100))
    item = wait_item(aws, "uploads/gone.gif")
    assert item.status == "skipped"
    assert "deleted before it was read" in item.reason


def test_ambiguous_upload_starts_one_named_execution(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/mood.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Mood", "tags": ["#mood", "#fyp"]})
    pending = wait_item(aws, key, finished=False)
    etag = aws.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    assert pending.sequencer  # the embedded AWS's S3 events carry one, as AWS's do
    ref = ObjectRef(bucket=bucket, key=key, etag=etag, sequencer=pending.sequencer)
    expected = execution_name(ref, GifMetadata(title="Mood", tags=("#mood", "#fyp")))
    assert pending.execution == expected
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", expected)
    # The same event again, twice: one run goes past Claim, still one result. (Express starts are not
    # idempotent by name: an event repeated before the first run claims the item starts a run that
    # ends at Claim; one repeated after it starts nothing.)
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    for _ in range(2):
        aws.runner.submit(
            fn, s3_event(bucket, key, etag=etag, size=len(gif()), sequencer=pending.sequencer)
        )
    final = wait_settled(aws, key)
    named = [e for e in runs(aws) if e["name"] == expected]
    sfn = aws.client("stepfunctions")
    histories = [sfn.get_execution_history(executionArn=r["executionArn"])["events"] for r in named]
    ends = [
        [e["stateEnteredEventDetails"]["name"] for e in h if "stateEnteredEventDetails" in e][-1]
        for h in histories
    ]
    assert ends.count("Recorded") == 1 and set(ends) <= {"Recorded", "AlreadyClaimed"}, ends
    assert sum(r.key == key for r in aws.results()) == 1
    assert final.status == "classified" and final.run in {r["executionArn"] for r in named}


def test_a_repeated_event_while_a_run_holds_the_item_starts_nothing(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With Express, the pending item's conditional write is what deduplicates starts: the run has
    # claimed the item (it is embedding), so the repeated event's write fails and nothing starts.
    embed = aws.runner.functions[aws.stack.physical_name("EmbedFunction")]
    original, entered, release = embed.invoke, threading.Event(), threading.Event()

    def held(event: Any) -> tuple[Any, bool]:
        entered.set()
        release.wait(60)  # until the repeated event has been handled
        return original(event)

    monkeypatch.setattr(embed, "invoke", held)
    key = "uploads/held.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Mood", "tags": ["#mood", "#held"]})
    assert entered.wait(30)
    pending = wait_item(aws, key, finished=False)
    assert pending.status == "pending" and pending.run
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    etag = aws.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    aws.runner.submit(fn, s3_event(bucket, key, etag=etag, size=len(gif()), sequencer=pending.sequencer))
    assert aws.runner.drain(60)  # the repeated event's triage is done
    release.set()
    final = wait_settled(aws, key)
    assert final.status == "classified"
    assert [e["name"] for e in runs(aws)].count(pending.execution) == 1

def test_s3_events_carry_increasing_sequencers(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/seq.gif"
    seen = []
    for frames in (2, 3):
        upload(aws.s3, bucket, key, gif(frames=frames), {"title": "Pizza", "tags": ["pizza", "food"]})
        seen.append(wait_item(aws, key).sequencer)
    assert seen[0] < seen[1] and all(re.fullmatch(r"[0-9A-F]{16}", s) for s in seen)


def wait_settled(aws: EmbeddedAws, key: str, timeout_s: float = 120.0) -> ResultItem:
    """The key's item once no event is queued and no execution runs: nothing left to change it."""
    sfn = aws.client("stepfunctions")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert aws.runner.drain(timeout_s)
        running = sfn.list_executions(stateMachineArn=aws.outputs["StateMachineArn"], statusFilter="RUNNING")
        if not running["executions"]:
            return wait_item(aws, key)
        time.sleep(0.1)
    raise AssertionError(f"executions still running for {key}")


def test_reupload_of_identical_bytes_is_classified_again(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI
) -> None:
    # Issue 11, item 1: the second upload of the same bytes named the same execution, which existed,
    # so nothing started and the item stayed pending for ever.
    key = "uploads/again.gif"
    body, meta = gif(), {"title": "Mood", "tags": ["#mood", "#fyp"]}
    upload(aws.s3, bucket, key, body, meta)
    first = wait_settled(aws, key)
    assert first.status == "classified" and first.execution
    # At once, most likely within the same Last-Modified second: the S3 event's sequencer tells the
    # uploads apart, not the clock (the ten quick uploads below rely on it too).
    before = len(runs(aws))
    upload(aws.s3, bucket, key, body, meta)
    second = wait_settled(aws, key)
    assert len(runs(aws)) == before
    assert (second.status, second.etag, second.primary) == ("classified", first.etag, first.primary)
    assert second.sequencer and first.sequencer and second.sequencer > first.sequencer
    # The same bytes and metadata again: the first upload's result is reused, and no run starts.
    assert (second.reused_from, second.execution) == (first.pk, None)
    assert second.updated_at > first.updated_at
    # Only the metadata changes: a new upload too, and the result describes the new metadata.
    upload(aws.s3, bucket, key, body, {"title": "Mood again", "tags": ["#mood"]})
    third = wait_settled(aws, key)
    assert (third.status, third.title, third.tags) == ("classified", "Mood again", ["#mood"])
    assert third.execution != first.execution and third.reused_from is None
    assert {first.execution, third.execution} <= {e["name"] for e in runs(aws)}


def test_a_copy_of_a_classified_upload_takes_its_result_without_a_run(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A GIF posted again under another key, or renamed (copied, then deleted): the same bytes and
    metadata take the first result at the S3 Lambda, with no run, embedding or LLM call."""
    monkeypatch.setattr(llm_server, "responder", first_category)
    body, meta = gif(frames=4), {"title": "Hmm again", "tags": ["#mood", "#copied"]}
    upload(aws.s3, bucket, "uploads/original.gif", body, meta)
    original = wait_settled(aws, "uploads/original.gif")
    assert original.status == "classified" and original.decided_by in ("embedding", "llm")
    before = len(runs(aws))
    capsys.readouterr()
    aws.s3.copy_object(Bucket=bucket, Key="uploads/copy.gif",
                       CopySource={"Bucket": bucket, "Key": "uploads/original.gif"})
    copy = wait_item(aws, "uploads/copy.gif")
    assert (copy.status, copy.primary, copy.labels, copy.decided_by) == (
        "classified", original.primary, original.labels, original.decided_by)
    assert copy.reused_from == original.pk and copy.execution is None
    assert copy.evidence[0].startswith(f"reused: the same bytes and metadata as {original.pk}")
    assert copy.cost and copy.cost["llm_usd"] == 0 and copy.cost["stepfunctions_usd"] == 0
    assert copy.reused_cost_usd == original.cost_usd and copy.cost_usd < original.cost_usd
    assert len(runs(aws)) == before
    emitted = emitted_metrics(capsys.readouterr().out)
    assert {"Upload_reused@" + aws.stack.name, "ReuseSavedUsd@" + aws.stack.name} <= emitted
    # Other metadata is another upload: classified by the cascade.
    upload(aws.s3, bucket, "uploads/other words.gif", body, {**meta, "title": "Hmm, other words"})
    other = wait_settled(aws, "uploads/other words.gif")
    assert other.reused_from is None and other.execution and len(runs(aws)) == before + 1


def test_a_copy_made_while_its_original_is_pending_is_classified_by_its_own_run(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = pending_upload(aws, bucket, "uploads/pending original.gif", gif(frames=6), llm_server,
                              monkeypatch)
    aws.s3.copy_object(Bucket=bucket, Key="uploads/early copy.gif",
                       CopySource={"Bucket": bucket, "Key": "uploads/pending original.gif"})
    copy = wait_settled(aws, "uploads/early copy.gif")
    first = wait_settled(aws, "uploads/pending original.gif")
    # Nothing finished to take: the copy ran the cascade itself, and both have a result.
    assert (first.status, copy.status) == ("classified", "classified")
    assert copy.reused_from is None and copy.execution and copy.execution != original.execution


def test_a_lookup_of_a_result_to_reuse_that_fails_is_counted_and_the_upload_runs(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refused(self: ResultsTable, content_key: str, limit: int) -> list[ResultItem]:
        raise SourceUnavailable("the results table's index by-content: AccessDeniedException")

    monkeypatch.setattr(ResultsTable, "same_content", refused)
    capsys.readouterr()
    body, meta = gif(frames=5), {"title": "Hmm, refused", "tags": ["#mood", "#refused"]}
    upload(aws.s3, bucket, "uploads/refused.gif", body, meta)
    first = wait_settled(aws, "uploads/refused.gif")
    aws.s3.copy_object(Bucket=bucket, Key="uploads/refused copy.gif",
                       CopySource={"Bucket": bucket, "Key": "uploads/refused.gif"})
    copy = wait_settled(aws, "uploads/refused copy.gif")
    # Classified by the cascade, as a new upload is; nothing is lost, and the dashboard counts it.
    assert first.status == copy.status == "classified" and copy.reused_from is None and copy.execution
    emitted = emitted_metrics(capsys.readouterr().out)
    assert "Reuse_lookup_failed@" + aws.stack.name in emitted
    assert "Upload_reused@" + aws.stack.name not in emitted


def test_unexpected_error_reading_metadata_is_recorded_not_dead_lettered(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 11, item 2: any exception while reading metadata (here the one a deeply nested sidecar
    # raises from the JSON parser) must end as a recorded failure, not in the dead-letter queue.
    def explode(user_metadata: dict[str, str], sidecar: bytes | None) -> None:
        raise RecursionError("maximum recursion depth exceeded while decoding a JSON array")

    monkeypatch.setattr("gifcat.application.service.metadata_from", explode)
    key = "uploads/explodes.gif"
    failures = len(aws.runner.async_failures)
    upload(aws.s3, bucket, key, gif(), {"title": "Boom"})
    item = wait_item(aws, key)
    assert item.status == "failed"
    assert item.reason.startswith("unexpected error reading the upload: RecursionError")
    assert len(aws.runner.async_failures) == failures


@pytest.mark.parametrize("last_is", ["tags", "llm"])
def test_ten_quick_uploads_of_one_key_keep_the_last(
    aws: EmbeddedAws,
    bucket: str,
    gif: Callable[..., bytes],
    llm_server: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    last_is: str,
) -> None:
    # Issue 11, item 5: within one second the newest object did not reliably win; a slow LLM let an
    # older upload's execution overwrite a newer upload's result.
    monkeypatch.setattr(llm_server, "responder", lambda request: slow(0.4, first_category(request)))
    for attempt in range(3):
        key = f"uploads/quick-{last_is}-{attempt}.gif"
        etags = []
        for i in range(10):
            decided_by_tags = (i % 2 == 1) == (last_is == "tags")
            meta = (
                {"title": f"Pizza {i}", "tags": ["pizza", "food", f"v{i}"]}
                if decided_by_tags
                else {"title": f"Mood {i}", "tags": ["#mood", f"#v{i}"]}
            )
            put = aws.s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=gif(frames=2, size=(20 + i, 20)),
                Metadata={"title": meta["title"], "tags": json.dumps(meta["tags"])},
            )
            etags.append(put["ETag"].strip('"'))
        final = wait_settled(aws, key)
        assert (final.etag, final.title) == (etags[-1], "Pizza 9" if last_is == "tags" else "Mood 9")
        assert final.status == "classified"
        assert final.decided_by == "tags" if last_is == "tags" else final.decided_by != "tags"


def test_duplicate_event_after_a_result_changes_nothing(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/dup.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Kiss GIF", "tags": ["kiss", "love", "mwah"]})
    first = wait_item(aws, key)
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    aws.runner.submit(fn, s3_event(bucket, key))
    again = wait_item(aws, key)
    assert again.updated_at == first.updated_at


def test_late_event_never_replaces_a_newer_result(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    key = "uploads/overwritten.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza", "tags": ["pizza", "food"]})
    assert wait_item(aws, key).primary == "food"
    old_event = s3_event(bucket, key)
    upload(
        aws.s3, bucket, key, gif(frames=2), {"title": "Dance", "tags": ["dance", "dancing", "choreography"]}
    )
    newer = wait_item(aws, key)
    for _ in range(50):  # the second put's result may take a moment
        newer = wait_item(aws, key)
        if newer.primary == "dance":
            break
    assert newer.primary == "dance"
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    aws.runner.submit(fn, old_event)  # the first upload's event, delivered late
    assert wait_item(aws, key).primary == "dance"


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


def test_the_dashboard_draws_what_the_handlers_emit(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    pizza = {"title": "Pizza GIF", "tags": ["pizza", "food"]}
    upload(aws.s3, bucket, "uploads/metrics-pizza.gif", gif(), pizza)
    upload(aws.s3, bucket, "uploads/metrics-mood.gif", gif(), {"title": "Mood", "tags": ["#mood", "#fyp"]})
    assert wait_item(aws, "uploads/metrics-pizza.gif").decided_by == "tags"
    assert wait_settled(aws, "uploads/metrics-mood.gif").decided_by in ("embedding", "llm")
    sfn = aws.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=aws.outputs["RerunStateMachineArn"],
        input=json.dumps({"bucket": bucket, "key": "uploads/metrics-pizza.gif", "force": True}),
    )["executionArn"]
    deadline = time.monotonic() + 60
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    by_service = emitted_metrics(capsys.readouterr().out)
    # Each stack's metrics carry its name as their `service`: two stacks in one account stay apart.
    assert {e.split("@")[1] for e in by_service} == {aws.stack.name}
    emitted = {e.split("@")[0] for e in by_service}
    expected = {"Upload_classified", "Upload_pending", "Decided_tags", "Reached_embedding", "Rerun_triaged"}
    assert expected <= emitted
    body = dashboard(aws)
    gifcat = [m for w in body["widgets"] for m in w["properties"]["metrics"] if m[0] == "gifcat"]
    assert {tuple(m[2:4]) for m in gifcat} == {("service", aws.stack.name)}
    drawn = {m[1] for m in gifcat}
    assert emitted <= drawn, f"emitted and not on the dashboard: {emitted - drawn}"
    # What this flow does not emit is of the same families (no misspelt name draws an empty line).
    # (gifcat learn's are tests/integration/test_learn_function.py's; the artefact outcomes are
    # tests/integration/test_learn_published.py's.)
    families = {f"Decided_{s}" for s in StageName} | {f"Upload_{s}" for s in Status} | {"Rerun_kept"}
    families.add("Upload_ignored")  # a sidecar's or another key's event (tests: not an upload)
    families.add("Upload_sidecar_reread")  # a sidecar put after its upload (tests: late sidecar)
    families.add("Llm_failed")  # an LLM call that failed (tests: test_llm_failure_is_recorded_...)
    families.add("Stuck_failed")  # a timed-out run's result (tests/integration/test_sweep_function.py)
    families |= {"Upload_reused", "ReuseSavedUsd"}  # an upload seen before (tests: a copy of a classified...)
    families.add("Reuse_lookup_failed")  # (tests: a lookup of a result to reuse that fails is counted)
    families |= {"Learn_published", "Learn_kept"} | {f"LearnExamples_{s}" for s in SOURCES}
    families |= {f"Artefact_{outcome}" for outcome in get_args(RefreshOutcome)}
    # Result events, as the publish function counts them (tests/integration/test_events_on_the_bus.py)
    families |= {f"Event_{t.value.replace(' ', '_')}" for t in DetailType}
    families |= {"Event_failed", "Event_unreadable"}
    assert drawn - emitted <= families, drawn - emitted - families
    # A metric-math line reads only metrics its widget defines (an unknown id draws nothing).
    for widget in body["widgets"]:
        options = [m[-1] for m in widget["properties"]["metrics"] if isinstance(m[-1], dict)]
        ids = {o["id"] for o in options if "id" in o}
        for m in widget["properties"]["metrics"]:
            if isinstance(m[0], dict) and "expression" in m[0]:
                assert set(re.findall(r"\b([a-z]\w*)\b", m[0]["expression"])) <= ids, m[0]["expression"]
    # The failure widget names the stack's own resources, resolved.
    failures = next(w for w in body["widgets"] if w["properties"]["title"].startswith("Failures"))
    for machine in ("StateMachineArn", "BackfillStateMachineArn"):
        assert ["AWS/States", "ExecutionsFailed", "StateMachineArn", aws.outputs[machine]] in (
            failures["properties"]["metrics"]
        )


def test_dead_lettered_uploads_and_failed_runs_raise_alarms(aws: EmbeddedAws) -> None:
    # Nothing is lost silently: what the retries could not save waits in the dead-letter queue (see
    # test_failing_invocations_retry_then_reach_the_dead_letter_queue), and each alarm watches one place.
    alarms = {a["AlarmName"]: a for a in aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    queue = aws.stack.physical_name("TriageDeadLetterQueue")
    dead = alarms[f"{aws.stack.name}-uploads-dead-lettered"]
    assert (dead["Namespace"], dead["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": queue}]
    assert aws.outputs["TriageDeadLetterQueueUrl"].endswith(f"/{queue}")
    run_alarm = alarms[f"{aws.stack.name}-classify-runs-failed"]
    # A run that failed recorded `failed`; one that timed out left its item pending: both count.
    (ended,) = [m for m in run_alarm["Metrics"] if m["ReturnData"]]
    watched = {m["Id"]: m["MetricStat"] for m in run_alarm["Metrics"] if not m["ReturnData"]}
    assert set(re.findall(r"\b([a-z]\w*)\b", ended["Expression"])) == set(watched)
    names = sorted(s["Metric"]["MetricName"] for s in watched.values())
    assert names == ["ExecutionsFailed", "ExecutionsTimedOut"]
    machine = [{"Name": "StateMachineArn", "Value": aws.outputs["StateMachineArn"]}]
    for stat in watched.values():
        assert stat["Metric"]["Namespace"] == "AWS/States" and stat["Stat"] == "Sum"
        assert stat["Metric"]["Dimensions"] == machine
    backfill = alarms[f"{aws.stack.name}-backfill-failed"]
    assert (backfill["Namespace"], backfill["MetricName"]) == ("AWS/States", "ExecutionsFailed")
    assert backfill["Dimensions"] == [
        {"Name": "StateMachineArn", "Value": aws.outputs["BackfillStateMachineArn"]}
    ]
    # The embed step's failures end no run (the LLM goes on without it): its errors have an alarm.
    embed = alarms[f"{aws.stack.name}-embed-failed"]
    assert (embed["Namespace"], embed["MetricName"]) == ("AWS/Lambda", "Errors")
    function = aws.stack.physical_name("EmbedFunction")
    assert embed["Dimensions"] == [{"Name": "FunctionName", "Value": function}]
    for alarm in (dead, run_alarm, backfill, embed):  # any one of them is worth a look
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
        assert alarm["AlarmActions"] == []  # no AlarmTopicArn given
    # The LLM's spend, whatever moves it, against the budget the stack was given (1.5 USD an hour).
    spend = alarms[f"{aws.stack.name}-llm-spend"]
    assert (spend["Namespace"], spend["MetricName"], spend["Statistic"]) == ("gifcat", "LlmCostUsd", "Sum")
    assert spend["Dimensions"] == [{"Name": "service", "Value": aws.stack.name}]
    assert (spend["Period"], spend["Threshold"], spend["ComparisonOperator"]) == (
        3600, 1.5, "GreaterThanThreshold"
    )


def test_a_removal_or_a_test_event_changes_nothing(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    # Only ObjectCreated events are uploads: a removal notified to the function (a hand-made
    # notification, a direct invoke) re-triaged the object, over a person's answer too.
    key = "uploads/removal.gif"
    upload(aws.s3, bucket, key, gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    before = wait_item(aws, key)
    fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
    removal = s3_event(bucket, key)
    removal["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    aws.runner.submit(fn, removal)
    aws.runner.submit(fn, {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-12-05T00:00:00Z",
                           "Bucket": bucket, "RequestId": "r", "HostId": "h"})
    assert aws.runner.drain(30)
    assert wait_item(aws, key).updated_at == before.updated_at
    sqs = aws.client("sqs")
    dead = sqs.receive_message(QueueUrl=aws.outputs["TriageDeadLetterQueueUrl"], MaxNumberOfMessages=10)
    bodies = [json.loads(m["Body"]) for m in dead.get("Messages", [])]
    assert not [b for b in bodies if b.get("requestPayload", {}).get("Event") == "s3:TestEvent"]
    for message in dead.get("Messages", []):  # what other tests left, for them to read again
        sqs.change_message_visibility(QueueUrl=aws.outputs["TriageDeadLetterQueueUrl"],
                                      ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
