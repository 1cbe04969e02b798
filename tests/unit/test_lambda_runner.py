"""The local Lambda runner without a server: Timeout enforced as Lambda does, asynchronous retries and
the on-failure record, and the sequencer stamped on S3 events."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gifcat_tooling.local.lambda_runner import LambdaRunner, LocalFunction, Sequencer

HANDLER = """
import threading
import time

CALLS = []
STOPPED = threading.Event()


def handler(event, context):
    CALLS.append(event)
    if event.get("sleep"):
        try:
            while True:  # busy in Python, as a handler waiting on a slow endpoint would be
                time.sleep(0.01)
        finally:
            STOPPED.set()
    if event.get("fail"):
        raise ValueError("bad event")
    return {"ok": event.get("n"), "left_ms": context.get_remaining_time_in_millis()}
"""


@pytest.fixture
def fn(tmp_path: Path) -> LocalFunction:
    (tmp_path / "app.py").write_text(HANDLER)
    return LocalFunction(
        name="fn",
        arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
        code_dir=tmp_path,
        handler="app.handler",
        environment={},
        timeout_s=1,
        max_retries=2,
    )


def test_a_call_past_the_timeout_fails_as_lambda_says_and_the_sandbox_is_replaced(fn: LocalFunction) -> None:
    result, errored = fn.invoke({"n": 1})
    assert not errored and result["ok"] == 1 and 0 < result["left_ms"] <= 1000
    warm = fn._idle[0]
    module = warm.__globals__
    # The handler never returns, so the call times out whatever the machine's load: a short Timeout
    # keeps the wait short without making the outcome depend on timing.
    fn.timeout_s = 0.25
    started = time.monotonic()
    result, errored = fn.invoke({"sleep": True})
    assert errored and result["errorType"] == "Sandbox.Timedout"
    assert result["errorMessage"].endswith("Task timed out after 0.25 seconds")
    assert 0.25 <= time.monotonic() - started < 10.0
    assert module["STOPPED"].wait(10), "the timed-out handler's thread was not stopped"
    # The sandbox that timed out is gone: the next call starts a fresh one.
    fn.timeout_s = 1
    result, errored = fn.invoke({"n": 2})
    assert not errored and fn.cold_starts == 2 and fn._idle[0] is not warm


def test_a_handlers_own_error_is_reported_and_the_sandbox_kept(fn: LocalFunction) -> None:
    result, errored = fn.invoke({"fail": True})
    assert errored and (result["errorType"], result["errorMessage"]) == ("ValueError", "bad event")
    fn.invoke({"n": 1})
    assert fn.cold_starts == 1


def test_asynchronous_timeouts_are_retried_then_recorded(fn: LocalFunction) -> None:
    fn.timeout_s = 0.2
    with LambdaRunner("http://127.0.0.1:9", workers=1) as runner:
        runner.submit(fn, {"sleep": True})
        assert runner.drain(30)
    (record,) = runner.async_failures
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"]["errorType"] == "Sandbox.Timedout"


def test_sequencers_increase_across_threads() -> None:
    sequencer = Sequencer()
    seen: list[list[str]] = [[] for _ in range(4)]

    def stamp(out: list[str]) -> None:
        out.extend(sequencer.next() for _ in range(500))

    threads = [threading.Thread(target=stamp, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in seen:
        assert out == sorted(out)  # each thread sees them increase
    everything = [s for out in seen for s in out]
    assert len(set(everything)) == len(everything) and all(len(s) == 16 for s in everything)


def test_image_functions_run_the_handler_their_build_target_copies(tmp_path: Path) -> None:
    from gifcat_tooling.local.aws import image_handler

    root = Path(__file__).resolve().parents[2]
    dockerfile = root / "functions" / "Dockerfile"
    assert image_handler(root, dockerfile, "embed") == (root / "functions" / "embed", "app.handler")
    assert image_handler(root, dockerfile, "learn") == (root / "functions" / "learn", "app.handler")
    with pytest.raises(ValueError, match="no stage 'nope'"):
        image_handler(root, dockerfile, "nope")
    # A stage that runs a handler it never copies in cannot be run locally either: said, not guessed.
    broken = tmp_path / "Dockerfile"
    broken.write_text(
        'FROM base AS fn\nCOPY functions/x/other.py ${LAMBDA_TASK_ROOT}/\nCMD ["app.handler"]\n'
    )
    with pytest.raises(ValueError, match=r"no COPY of app\.py"):
        image_handler(root, broken, "fn")


SLOW_IMPORT = """
import os
import time

AT_IMPORT = os.environ.get("GIFCAT_ONLY_HERE")
time.sleep(0.3)  # a cold start that takes a while, as the embed function's does


def handler(event, context):
    return {"at_import": AT_IMPORT, "now": os.environ.get("GIFCAT_ONLY_HERE")}
"""


def test_a_cold_start_changes_the_environment_for_its_own_thread_only(tmp_path: Path) -> None:
    # Issue found in CI: a cold start wrote its variables into os.environ and took them out again, and
    # botocore iterating os.environ on another thread failed on a key that vanished under it.
    (tmp_path / "app.py").write_text(SLOW_IMPORT)
    fn = LocalFunction(name="env-fn", arn="arn:aws:lambda:us-east-1:123456789012:function:env-fn",
                       code_dir=tmp_path, handler="app.handler",
                       environment={"GIFCAT_ONLY_HERE": "yes"}, timeout_s=10)
    before = dict(os.environ)
    stop, seen, errors = threading.Event(), [], []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(dict(os.environ.items()))  # what botocore does, for proxies
            except Exception as exc:  # pragma: no cover - the failure this test guards against
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        result, errored = fn.invoke({})
    finally:
        stop.set()
        thread.join()
    assert not errored and result == {"at_import": "yes", "now": None}
    assert not errors and len(seen) > 1
    assert all(snapshot == before for snapshot in seen)
    assert "GIFCAT_ONLY_HERE" not in os.environ and dict(os.environ) == before
