"""The backfill state machine on the embedded AWS, with the upload trigger off: a Distributed Map over an
S3 listing classifies every object under a prefix (moto 5.2.5's interpreter runs it), `--stale-only`
re-classifies only what is stale, a person's answer is kept, and a failing child is recorded."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gifcat.domain.result import ResultItem
from gifcat_tooling.cli import main
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from gifcat_tooling.local.moto_itemreader import list_all
from gifcat_tooling.local.template import ACCOUNT
from tests.integration.conftest import embedded_stack
from tests.support.fake_openai import FakeOpenAI, first_category

PREFIX = "backfill/"


@pytest.fixture(scope="module")
def aws(root: Path, llm_server: FakeOpenAI) -> Iterator[EmbeddedAws]:
    llm_server.responder = first_category  # every LLM-bound object gets an answer
    with embedded_stack(root, llm_server, upload_trigger=False) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def bucket(aws: EmbeddedAws) -> str:
    return aws.outputs["UploadsBucketName"]


def backfill(aws: EmbeddedAws, bucket: str, prefix: str, *args: str) -> tuple[int, dict[str, Any]]:
    """`gifcat backfill --json` in-process against the embedded AWS: exit status and summary."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["backfill", "--bucket", bucket, "--prefix", prefix, "--endpoint", aws.endpoint,
                     "--timeout", "300", "--json", *args])
    text = out.getvalue()
    return code, json.loads(text[text.rindex('{\n  "execution"'):])


def items(aws: EmbeddedAws, prefix: str) -> dict[str, ResultItem]:
    return {r.key: r for r in aws.results() if r.key.startswith(prefix)}


def put_samples(aws: EmbeddedAws, bucket: str, prefix: str, gif: Callable[..., bytes]) -> list[str]:
    upload(aws.s3, bucket, f"{prefix}pizza.gif", gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    upload(aws.s3, bucket, f"{prefix}mood.gif", gif(), {"title": "Hmm", "tags": ["#mood"]}, via="sidecar")
    upload(aws.s3, bucket, f"{prefix}dance.gif", gif(frames=2), {"title": "Dance", "tags": ["dance"]})
    aws.s3.put_object(Bucket=bucket, Key=f"{prefix}fake.gif", Body=b"not a gif at all")
    # An upload in capitals is an upload; a file of another kind under the prefix is not.
    upload(aws.s3, bucket, f"{prefix}LOUD.GIF", gif(), {"title": "Pizza GIF", "tags": ["pizza", "food"]})
    aws.s3.put_object(Bucket=bucket, Key=f"{prefix}notes.txt", Body=b"not an upload")
    return [f"{prefix}{k}" for k in ("pizza.gif", "mood.gif", "dance.gif", "fake.gif", "LOUD.GIF")]


def test_backfill_gives_every_object_a_result(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    prefix = f"{PREFIX}all/"
    keys = put_samples(aws, bucket, prefix, gif)
    aws.s3.put_object(Bucket=bucket, Key="elsewhere/outside.gif", Body=gif())
    assert aws.runner.drain(10) and not items(aws, prefix)  # the upload trigger is off
    code, summary = backfill(aws, bucket, prefix, "--max-concurrency", "3")
    assert code == 0, summary
    got = items(aws, prefix)
    assert set(got) == set(keys)  # the sidecar (mood.gif.json) and notes.txt are listed, not uploads
    assert (got[f"{prefix}pizza.gif"].decided_by, got[f"{prefix}pizza.gif"].primary) == ("tags", "food")
    assert (got[f"{prefix}LOUD.GIF"].decided_by, got[f"{prefix}LOUD.GIF"].primary) == ("tags", "food")
    assert got[f"{prefix}mood.gif"].status == "classified"
    assert got[f"{prefix}fake.gif"].status == "skipped"
    assert all(i.taxonomy_version for i in got.values())
    assert (summary["objects"], summary["with_result"], summary["written_by_run"]) == (5, 5, 5)
    assert summary["missing"] == [] and summary["status"] == "SUCCEEDED"
    assert "elsewhere/outside.gif" not in {r.key for r in aws.results()}
    # The map ran as a Distributed Map with the run's parameters.
    sfn = aws.client("stepfunctions")
    runs = sfn.list_map_runs(executionArn=summary["execution"])["mapRuns"]
    described = sfn.describe_map_run(mapRunArn=runs[0]["mapRunArn"])
    assert (described["maxConcurrency"], described["toleratedFailurePercentage"]) == (3, 5)
    counts = described["itemCounts"]
    assert (counts["total"], counts["succeeded"]) == (7, 7)  # five uploads, the sidecar and notes.txt
    # The children's outcomes went to the artefacts bucket (the map's ResultWriter), not into the run's
    # output, which stays small however many objects there are.
    output = json.loads(sfn.describe_execution(executionArn=summary["execution"])["output"])
    written = output["map"]["ResultWriterDetails"]
    assert output["map"]["MapRunArn"] == runs[0]["mapRunArn"]
    assert written["Bucket"] == aws.outputs["ArtefactsBucketName"] and written["Key"].startswith("backfill/")
    manifest = json.loads(aws.s3.get_object(Bucket=written["Bucket"], Key=written["Key"])["Body"].read())
    assert manifest["MapRunArn"] == runs[0]["mapRunArn"]


def test_stale_only_reclassifies_only_what_is_stale(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes]
) -> None:
    prefix = f"{PREFIX}stale/"
    put_samples(aws, bucket, prefix, gif)
    for name in ("old-taxonomy", "failed", "deleted-result", "reuploaded", "stuck", "human", "fresh"):
        upload(aws.s3, bucket, f"{prefix}{name}.gif", gif(), {"title": "Pizza", "tags": ["pizza", "food"]})
    assert backfill(aws, bucket, prefix)[0] == 0
    code, again = backfill(aws, bucket, prefix, "--stale-only")
    assert code == 0 and again["written_by_run"] == 0 and again["kept"] == again["objects"] == 12

    ddb, table = aws.client("dynamodb"), aws.outputs["ResultsTableName"]

    def update(key: str, field: str, value: str) -> None:
        ddb.update_item(TableName=table, Key={"pk": {"S": f"s3://{bucket}/{prefix}{key}"}},
                        UpdateExpression="SET #f = :v", ExpressionAttributeNames={"#f": field},
                        ExpressionAttributeValues={":v": {"S": value}})

    update("old-taxonomy.gif", "taxonomy_version", "2020-01-01.1")
    update("failed.gif", "status", "failed")
    # Pending, and its run long gone (it timed out without recording): gifcat summary calls it stuck.
    update("stuck.gif", "status", "pending")
    update("stuck.gif", "execution", "a-run-that-timed-out")
    ddb.delete_item(TableName=table, Key={"pk": {"S": f"s3://{bucket}/{prefix}deleted-result.gif"}})
    upload(aws.s3, bucket, f"{prefix}reuploaded.gif", gif(frames=4), {"title": "Dance", "tags": ["dance"]})
    assert main(["correct", f"s3://{bucket}/{prefix}human.gif", "--category", "funny",
                 "--endpoint", aws.endpoint]) == 0
    update("human.gif", "taxonomy_version", "2020-01-01.1")
    before = items(aws, prefix)

    code, summary = backfill(aws, bucket, prefix, "--stale-only")
    assert code == 0, summary
    after = items(aws, prefix)
    run = summary["execution"].rsplit(":", 1)[-1] + "/"
    written = {k for k, i in after.items() if (i.execution or "").startswith(run)}
    stale = {f"{prefix}{n}.gif" for n in ("old-taxonomy", "failed", "deleted-result", "reuploaded", "stuck")}
    assert written == stale and summary["written_by_run"] == 5
    assert after[f"{prefix}failed.gif"].status == after[f"{prefix}stuck.gif"].status == "classified"
    assert after[f"{prefix}reuploaded.gif"].primary == "dance"
    assert after[f"{prefix}old-taxonomy.gif"].taxonomy_version != "2020-01-01.1"
    # A person's answer stays, whatever its taxonomy; fresh results are untouched.
    human = after[f"{prefix}human.gif"]
    assert (human.decided_by, human.primary) == ("human", "funny")
    for name in ("human", "fresh", "pizza"):
        key = f"{prefix}{name}.gif"
        assert after[key].updated_at == before[key].updated_at
    # Without --stale-only everything is classified again, except the person's answer.
    code, full = backfill(aws, bucket, prefix)
    assert code == 0 and full["written_by_run"] == 11 and full["kept"] == 1
    assert items(aws, prefix)[f"{prefix}human.gif"].decided_by == "human"


def test_a_failing_child_is_recorded_and_the_map_goes_on(
    aws: EmbeddedAws, bucket: str, gif: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"{PREFIX}failing/"
    keys = put_samples(aws, bucket, prefix, gif)
    step = aws.runner.functions[aws.stack.physical_name("TriageStepFunction")]
    escalate = aws.runner.functions[aws.stack.physical_name("EscalateFunction")]
    real_step = step.invoke

    def step_fails_for_pizza(event: Any) -> tuple[Any, bool]:
        if event["request"]["key"].endswith("pizza.gif"):
            return {"errorType": "Boom", "errorMessage": "triage step crashed"}, True
        return real_step(event)

    monkeypatch.setattr(step, "invoke", step_fails_for_pizza)
    monkeypatch.setattr(
        escalate, "invoke", lambda event: ({"errorType": "Timeout", "errorMessage": "slow"}, True)
    )
    code, summary = backfill(aws, bucket, prefix, "--tolerated-failure-percentage", "50")
    assert code == 0, summary  # every object has a result item: two of them say why they failed
    got = items(aws, prefix)
    assert set(got) == set(keys)
    pizza, mood = got[f"{prefix}pizza.gif"], got[f"{prefix}mood.gif"]
    # No item before, the step failed before taking it over: a failed item is created (nothing lost).
    assert pizza.status == "failed" and (pizza.reason or "").startswith("backfill: Boom: ")
    assert pizza.object_seq == "-"  # an upload's triage may still replace it
    # The LLM step failed on an item the child owned: its failure is recorded on it.
    assert mood.status == "failed" and (mood.reason or "").startswith("backfill: Timeout")
    assert got[f"{prefix}dance.gif"].status == "classified"
    assert {f["key"] for f in summary["failed"]} == {f"{prefix}pizza.gif", f"{prefix}mood.gif"}
    sfn = aws.client("stepfunctions")
    run = sfn.list_map_runs(executionArn=summary["execution"])["mapRuns"][0]
    assert sfn.describe_map_run(mapRunArn=run["mapRunArn"])["itemCounts"]["failed"] == 2


def test_an_empty_prefix_is_an_empty_run(aws: EmbeddedAws, bucket: str) -> None:
    code, summary = backfill(aws, bucket, f"{PREFIX}nothing-here/")
    assert code == 0 and summary["objects"] == 0 and summary["status"] == "SUCCEEDED"


def test_the_item_reader_reads_every_page_of_the_listing(aws: EmbeddedAws, bucket: str) -> None:
    # AWS's ItemReader reads every page of the listing; moto's read only the first 1,000 keys, and its
    # LastModified was a datetime. (A map over 1,000+ children is the benchmark's: slow for a test.)
    from moto.backends import get_backend

    prefix = f"{PREFIX}pages/"
    s3_backend = get_backend("s3")[ACCOUNT]["global"]  # straight into the store: 1,001 HTTP puts are slow
    for i in range(1001):
        s3_backend.put_object(bucket, f"{prefix}{i:04d}.json", b"{}")
    listed = list_all(aws.s3, {"Bucket": bucket, "Prefix": prefix})
    assert [o["Key"] for o in listed] == [f"{prefix}{i:04d}.json" for i in range(1001)]
    assert all(isinstance(o["LastModified"], str) for o in listed)
    json.dumps(listed)  # JSON values only, as the map's items must be


@pytest.mark.parametrize("missing", ["bucket", "table"])
def test_a_backfill_of_a_missing_bucket_or_table_starts_no_run(
    aws: EmbeddedAws, bucket: str, missing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sfn = aws.client("stepfunctions")
    machine = aws.outputs["BackfillStateMachineArn"]
    before = len(sfn.list_executions(stateMachineArn=machine)["executions"])
    args = ["backfill", "--bucket", "no-such-bucket" if missing == "bucket" else bucket,
            "--endpoint", aws.endpoint, "--timeout", "5"]
    if missing == "table":
        args += ["--table", "NoSuchTable"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("gifcat: AWS: ") and ("404" in err or "ResourceNotFound" in err), err
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == before
