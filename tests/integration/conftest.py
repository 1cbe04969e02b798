"""The embedded AWS for integration tests: moto's server with the stack deployed from template.yaml,
the real handlers running in-process, and a scripted OpenAI-compatible server as the LLM endpoint."""

from __future__ import annotations

import io
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws
from PIL import Image

from gifcat.domain.model import Status
from gifcat.domain.result import ResultItem
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from tests.support.fake_openai import DEFAULT_MODEL, FakeOpenAI, first_category, slow

# Small limits so the oversized case needs no 25 MB upload; thresholds stay the bundled ones.
REGION = "us-east-1"
TEST_OVERRIDES = {"limits": {"max_gif_bytes": 20000}}


_numbers = itertools.count()


@pytest.fixture
def gif() -> Callable[..., bytes]:
    """GIFs unlike every other of the run (a comment extension numbers each; fixed width, so equal
    arguments give equal sizes). On the embedded AWS an upload whose bytes and metadata were classified
    before takes that result without a run; a test keeps a body to upload the same bytes again."""

    def unique(frames: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
        images = [Image.new("P", size, i * 40) for i in range(frames)]
        buf = io.BytesIO()
        images[0].save(buf, "GIF", save_all=True, append_images=images[1:], duration=50, loop=0,
                       comment=f"gifcat test {next(_numbers):08d}")
        return buf.getvalue()

    return unique


@pytest.fixture
def moto_in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto inside this process (mock_aws) for an adapter's own tests, with no endpoint, profile or
    credentials of the machine's leaking in."""
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # moto's config is process-wide: say what these tests assume (no state machine interpreter), whatever
    # an embedded AWS run earlier in this process switched on.
    with mock_aws(config={"stepfunctions": {"execute_state_machine": False}}):
        yield


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def embedded_stack(
    root: Path,
    llm: FakeOpenAI,
    *,
    model: str = DEFAULT_MODEL,
    overrides: dict[str, Any] | None = None,
    upload_trigger: bool = True,
) -> EmbeddedAws:
    """The stack the integration tests run: template.yaml on the embedded AWS, `llm` as the LLM
    endpoint, the functions' settings with TEST_OVERRIDES (or `overrides`)."""
    return EmbeddedAws(
        root,
        parameters={
            "LlmBaseUrl": llm.base_url,
            "LlmModel": model,
            "SettingsOverrides": json.dumps(TEST_OVERRIDES if overrides is None else overrides),
            "LlmHourlyBudgetUsd": "1.5",
        },
        upload_trigger=upload_trigger,
    )


@pytest.fixture(scope="module")
def aws(root: Path, llm_server: FakeOpenAI) -> Iterator[EmbeddedAws]:
    with embedded_stack(root, llm_server) as embedded:
        yield embedded


def s3_event(
    bucket: str, key: str, etag: str | None = None, size: int | None = None, sequencer: str | None = None
) -> dict[str, Any]:
    """An ObjectCreated event as S3 sends it (URL-encoded key); the sequencer of a repeated delivery,
    or none for an event that is not S3's."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-28T10:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "bucket": {"name": bucket},
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag,
                        **({"sequencer": sequencer} if sequencer else {}),
                    },
                },
            }
        ]
    }


def settled(aws: EmbeddedAws, timeout_s: float = 60.0) -> None:
    """Every invocation done and every change of the results table told (its stream read to the end):
    nothing of the stack's still runs and prints (its functions' logs and metrics go to stdout)."""
    assert aws.runner.drain(timeout_s)
    assert aws.streams is not None and aws.streams.wait_idle(timeout_s)


def wait_item(aws: EmbeddedAws, key: str, timeout_s: float = 60.0, finished: bool = True) -> ResultItem:
    assert aws.runner.drain(timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        item = next((r for r in aws.results() if r.key == key), None)
        if item and (not finished or item.status is not Status.PENDING):
            return item
        time.sleep(0.1)
    raise AssertionError(f"no {'finished ' if finished else ''}result for {key}")


def pending_upload(
    aws: EmbeddedAws, bucket: str, key: str, body: bytes, llm: FakeOpenAI, monkeypatch: pytest.MonkeyPatch,
    delay_s: float = 1.5,
) -> ResultItem:
    """Upload `key` with metadata the cheap stages leave to the LLM, which answers after `delay_s`: the
    item while it is pending, its run going on (to test what lands meanwhile)."""
    monkeypatch.setattr(llm, "responder", lambda request: slow(delay_s, first_category(request)))
    upload(aws.s3, bucket, key, body, {"title": "Hmm", "tags": ["#mood"]})
    pending = wait_item(aws, key, finished=False)
    assert pending.status == "pending" and pending.execution
    return pending


def runs(aws: EmbeddedAws) -> list[dict[str, Any]]:
    """The upload machine's runs. (Express runs are listed locally; on AWS they are in its log group.)"""
    listed = aws.client("stepfunctions").list_executions(
        stateMachineArn=aws.outputs["StateMachineArn"], maxResults=1000)
    return list(listed["executions"])


def finished(aws: EmbeddedAws, arn: str, timeout_s: float = 120.0) -> dict[str, Any]:
    """The execution's description once it is no longer running."""
    sfn, deadline = aws.client("stepfunctions"), time.monotonic() + timeout_s
    while (described := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution {arn} still running after {timeout_s:g} s"
        time.sleep(0.1)
    return dict(described)


def _until_ended(aws: EmbeddedAws, run: dict[str, Any], timeout_s: float) -> None:
    finished(aws, run["executionArn"], timeout_s)


def wait_run_ended(aws: EmbeddedAws, name: str, timeout_s: float = 60.0) -> str:
    """Wait until the upload machine's run of execution `name` is no longer running; its ARN."""
    (run,) = [e for e in runs(aws) if e["name"] == name]
    _until_ended(aws, run, timeout_s)
    return str(run["executionArn"])


def after_run(aws: EmbeddedAws, act: Callable[[], Any], timeout_s: float = 60.0) -> dict[str, Any]:
    """Do `act`, and wait for the run of the upload machine it starts to end; that run."""
    before = {e["executionArn"] for e in runs(aws)}
    act()
    deadline = time.monotonic() + timeout_s
    while not (started := [e for e in runs(aws) if e["executionArn"] not in before]):
        assert time.monotonic() < deadline, "no run started"
        assert aws.runner.drain(10)
        time.sleep(0.1)
    newest = max(started, key=lambda e: e["startDate"])
    _until_ended(aws, newest, timeout_s)
    return newest


def console_rerun(aws: EmbeddedAws, bucket: str, key: str, force: bool = True) -> dict[str, Any]:
    """A rerun from the console (the Standard rerun machine) of `key`, waited for; its description."""
    arn = aws.client("stepfunctions").start_execution(
        stateMachineArn=aws.outputs["RerunStateMachineArn"],
        input=json.dumps({"bucket": bucket, "key": key, "force": force}),
        name=str(uuid.uuid4()),
    )["executionArn"]
    return finished(aws, arn)


def put_late_sidecar(aws: EmbeddedAws, bucket: str, key: str, body: bytes) -> dict[str, Any]:
    """Put `key`'s sidecar after it, and wait for the rerun that starts to end; that run."""
    return after_run(aws, lambda: aws.s3.put_object(Bucket=bucket, Key=key + ".json", Body=body))


def emitted_metrics(stdout: str) -> set[str]:
    """The metric names in the handlers' CloudWatch embedded-metric-format lines (Powertools prints
    one JSON object a flush), each as NAME@SERVICE."""
    names: set[str] = set()
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            flushed = json.loads(line)
            for directive in flushed["_aws"]["CloudWatchMetrics"]:
                if directive["Namespace"] == "gifcat":
                    names |= {f'{m["Name"]}@{flushed["service"]}' for m in directive["Metrics"]}
    return names


def dashboard(aws: EmbeddedAws) -> dict[str, Any]:
    """The stack's CloudWatch dashboard as deployed, its body parsed; its address is the stack's output."""
    name = aws.stack.physical_name("CascadeDashboard")
    assert aws.outputs["DashboardUrl"].endswith(f"#dashboards:name={name}")
    body: dict[str, Any] = json.loads(
        aws.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"]
    )
    return body
