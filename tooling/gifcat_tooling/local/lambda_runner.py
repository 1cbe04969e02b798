"""Runs the real Lambda handlers in-process for the embedded moto server, which runs Lambda code only
through Docker (and there is no Docker engine here).

Four moto internals are replaced (pinned: moto==5.2.5, see pyproject.toml):
- `LambdaFunction._invoke_lambda(self, event) -> (payload, is_error, logs)`: the single path of the
  Invoke API, S3 notifications and Step Functions lambda tasks. It now calls the handler from the
  function's source folder, in a warm "container" (a module instance serving one call at a time), and
  enforces the function's Timeout as Lambda does: past it the invocation fails with `Sandbox.Timedout`
  and the container is thrown away (its thread is stopped at its next Python instruction).
- `moto.s3.notifications._invoke_awslambda`: moto calls it inside PutObject, *before* it stores the
  object's user metadata, and synchronously. AWS invokes asynchronously, after the put; so do we: the
  event is held until the S3 request has finished (`S3Response.key_response`, the third replacement),
  then a worker delivers it, with the function's EventInvokeConfig retries and its on-failure
  destination (an SQS queue), like AWS's asynchronous invocation.
- `LambdaFunction.invoke`, for the Invoke API with InvocationType Event only: moto runs the handler
  before it answers and drops its error; AWS queues the event, answers 202, and retries and
  dead-letters it as above (`gifcat redrive` invokes this way).
- moto's S3 events carry no `sequencer`; AWS's do, and it is the only order of one key's uploads that
  AWS guarantees. Each event gets one when its request finishes: increasing hex, so later requests
  sort later, as on AWS. Its `eventTime` is set then too, in UTC with its `Z`, as AWS writes it ("when
  S3 finished processing the request"): moto stamps the local time, without a zone, before it stores.

Each AWS call a function's code makes (botocore's `BaseClient._make_api_call`, while the function's
cold start or invocation runs in this thread) is checked against its policy in template.yaml, as AWS
would check it: moto enforces no IAM (see `iam.py`).

A function's environment variables are in os.environ while its handler module is imported (its cold
start), which is when gifcat's handlers read them, and only for the importing thread: the process's
other threads go on reading (and iterating) the environment unchanged. Code that reads the environment
later, during an invocation, sees the process's: functions run side by side in one process here.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import queue
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.client import BaseClient

from gifcat_tooling.local import iam

_IMPORT_LOCK = threading.Lock()  # a cold start puts its code folder first on sys.path: one at a time


class _ThreadEnviron(os._Environ):  # type: ignore[type-arg]
    """os.environ, plus variables that only the thread that set them sees.

    A cold start used to write its function's variables into os.environ and take them out again; any
    other thread iterating os.environ meanwhile (botocore does, for proxies, whenever it makes a
    client) could fail on a key that vanished under it."""

    def __init__(self, base: os._Environ) -> None:  # type: ignore[type-arg]
        data = base._data  # type: ignore[attr-defined]  # the same dict: writes reach every view
        super().__init__(data, base.encodekey, base.decodekey, base.encodevalue, base.decodevalue)
        self._threads = threading.local()

    def _layer(self) -> dict[str, str]:
        layer: dict[str, str] = getattr(self._threads, "layer", {})
        return layer

    @contextmanager
    def layered(self, env: dict[str, str]) -> Iterator[None]:
        """For this thread, within the block, `env` over the process's environment."""
        self._threads.layer = dict(env)
        try:
            yield
        finally:
            self._threads.layer = {}

    def __getitem__(self, key: str) -> str:
        layer = self._layer()
        return layer[key] if key in layer else str(super().__getitem__(key))

    def __iter__(self) -> Iterator[str]:
        layer = self._layer()
        yield from layer
        yield from (key for key in super().__iter__() if key not in layer)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _thread_environ() -> _ThreadEnviron:
    """os.environ as a _ThreadEnviron (installed once: it is the process's environment, unchanged for
    every thread that sets no layer)."""
    with _IMPORT_LOCK:
        if not isinstance(os.environ, _ThreadEnviron):
            os.environ = _ThreadEnviron(os.environ)  # noqa: B003 - the same variables, one more view
        return os.environ


class SandboxTimedOut(BaseException):
    """Raised inside a handler's thread when its invocation ran past the function's Timeout.

    A BaseException, like SystemExit: a handler's `except Exception` safety net must not catch it and
    carry on (Lambda would have stopped the sandbox)."""


def _stop_thread(thread: threading.Thread) -> None:
    """Ask the thread to raise SandboxTimedOut at its next Python instruction (a blocking socket read
    returns first): the nearest thing in one process to Lambda stopping the sandbox."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(SandboxTimedOut)
        )


class Sequencer:
    """Increasing hex strings, like the `sequencer` of AWS's S3 events (nanoseconds, kept strictly
    increasing): an event stamped later sorts later."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:016X}"


@dataclass
class LocalFunction:
    """Where a deployed function's code lives locally, and what it runs with."""

    name: str
    arn: str
    code_dir: Path
    handler: str  # "module.function"
    environment: dict[str, str]
    memory_mb: int = 128
    timeout_s: float = 3.0
    max_retries: int = 2  # EventInvokeConfig.MaximumRetryAttempts (asynchronous invocations)
    on_failure_queue_url: str | None = None
    max_containers: int = 4
    # Its template policy's statements: each AWS call its code makes is checked against them (iam.py);
    # None leaves its calls unchecked.
    statements: list[Mapping[str, Any]] | None = None
    _idle: list[Callable[..., Any]] = field(default_factory=list)
    _count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _free: threading.Semaphore | None = None
    cold_starts: int = 0

    def __post_init__(self) -> None:
        self._free = threading.Semaphore(self.max_containers)

    @contextmanager
    def container(self) -> Iterator[Callable[..., Any]]:
        """A warm handler if one is idle, else a cold start (a fresh import of the handler module)."""
        assert self._free is not None
        self._free.acquire()
        try:
            with self._lock:
                handler = self._idle.pop() if self._idle else None
            if handler is None:
                handler = self._cold_start()
            keep = [True]
            try:
                yield handler
            except SandboxTimedOut:
                keep[0] = False  # the sandbox is gone: the next call starts a fresh one
                raise
            finally:
                if keep[0]:
                    with self._lock:
                        self._idle.append(handler)
        finally:
            self._free.release()

    def _cold_start(self) -> Callable[..., Any]:
        module_name, func_name = self.handler.rsplit(".", 1)
        path = self.code_dir / (module_name.replace(".", "/") + ".py")
        with self._lock:
            self._count += 1
            unique = f"_gifcat_fn_{self.name.replace('-', '_')}_{self._count}"
        env = {
            **self.environment,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "_HANDLER": self.handler,
        }
        environ = _thread_environ()
        with _IMPORT_LOCK, environ.layered(env):
            sys.path.insert(0, str(self.code_dir))
            try:
                spec = importlib.util.spec_from_file_location(unique, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load handler {self.handler} from {path}")
                module: ModuleType = importlib.util.module_from_spec(spec)
                with iam.running(self.statements):
                    spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(self.code_dir))
        self.cold_starts += 1
        return getattr(module, func_name)

    def invoke(self, event: Any) -> tuple[Any, bool]:
        """Run the handler: (result, False), or (Lambda's error payload, True).

        The handler runs in its own thread so that the function's Timeout can be enforced: past it the
        call fails as Lambda's does (errorType Sandbox.Timedout, which Step Functions tasks see as the
        error name), whatever the handler is blocked on. The cold start is not counted, as Lambda
        gives the Init phase its own limit.
        """
        try:
            with self.container() as handler:
                context = LambdaContext(self)
                return self._run(handler, event, context)
        except SandboxTimedOut:
            return {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {uuid.uuid4()} Error: Task timed out after "
                f"{self.timeout_s:.2f} seconds",
            }, True
        except Exception as exc:
            return {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exception(exc)[-5:],
            }, True

    def _run(self, handler: Callable[..., Any], event: Any, context: LambdaContext) -> tuple[Any, bool]:
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def call() -> None:
            try:
                with iam.running(self.statements):
                    outcome["result"] = handler(event, context)
            except SandboxTimedOut:
                pass  # stopped after its timeout: nobody is waiting for it any more
            except BaseException as exc:  # handed to the caller, as Lambda reports it
                outcome["error"] = exc
            finally:
                done.set()

        thread = threading.Thread(target=call, name=f"lambda:{self.name}", daemon=True)
        thread.start()
        if not done.wait(self.timeout_s):
            _stop_thread(thread)
            raise SandboxTimedOut()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["result"], False


class LambdaContext:
    """What handlers (and Powertools) read of the Lambda context."""

    def __init__(self, fn: LocalFunction) -> None:
        self.function_name = fn.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = fn.arn
        self.memory_limit_in_mb = fn.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{fn.name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + fn.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LambdaRunner:
    """Installs the two replacements and delivers asynchronous invocations with retries and DLQ."""

    def __init__(self, endpoint_url: str, workers: int = 4) -> None:
        self.endpoint_url = endpoint_url
        self.sequencer = Sequencer()
        self._held = threading.local()  # events raised during the current thread's S3 request
        self.functions: dict[str, LocalFunction] = {}
        self._queue: queue.Queue[tuple[LocalFunction, Any, int] | None] = queue.Queue()
        self._workers = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        self._pending = 0
        self._pending_lock = threading.Condition()
        self.async_failures: list[dict[str, Any]] = []
        self._saved: dict[str, Any] = {}

    def register(self, fn: LocalFunction) -> None:
        self.functions[fn.name] = fn

    def __enter__(self) -> LambdaRunner:
        import moto.awslambda.models as lambda_models
        import moto.s3.notifications as s3_notifications
        from moto.s3.responses import S3Response

        runner = self

        def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
            fn = runner.functions.get(self.function_name)
            if fn is None:
                return json.dumps({"errorMessage": f"no local code for {self.function_name}"}), True, ""
            if isinstance(event, str | bytes):
                event = json.loads(event or "{}")
            result, errored = fn.invoke(event)
            return json.dumps(result, default=str), errored, ""

        def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
            name = fn_arn.split(":function:")[-1].split(":")[0]
            fn = runner.functions.get(name)
            if fn is None:
                return
            held = getattr(runner._held, "events", None)
            if held is None:  # not inside an S3 request we watch: deliver now
                runner._deliver([(fn, event_body)])
            else:
                held.append((fn, event_body))

        original_invoke = lambda_models.LambdaFunction.invoke

        def invoke(self: Any, body: Any, request_headers: Any, response_headers: Any) -> Any:
            fn = runner.functions.get(self.function_name)
            if fn is not None and request_headers.get("x-amz-invocation-type") == "Event":
                runner.submit(fn, json.loads(body or "{}"))
                return ""
            return original_invoke(self, body, request_headers, response_headers)

        original_key_response = S3Response.key_response

        def key_response(self: Any, *args: Any, **kwargs: Any) -> Any:
            # Hold the request's events until it returns: moto stores user metadata after it notifies.
            runner._held.events = []
            try:
                return original_key_response(self, *args, **kwargs)
            finally:
                held, runner._held.events = runner._held.events, None
                if held:
                    runner._deliver(held)

        self._saved = {
            "api_call": BaseClient._make_api_call,
            "invoke": lambda_models.LambdaFunction._invoke_lambda,
            "notify": s3_notifications._invoke_awslambda,
            "key_response": original_key_response,
            "invoke_api": original_invoke,
        }
        BaseClient._make_api_call = iam.checked_call(BaseClient._make_api_call)
        lambda_models.LambdaFunction._invoke_lambda = _invoke_lambda
        lambda_models.LambdaFunction.invoke = invoke
        s3_notifications._invoke_awslambda = _invoke_awslambda
        S3Response.key_response = key_response
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import moto.awslambda.models as lambda_models
        import moto.s3.notifications as s3_notifications
        from moto.s3.responses import S3Response

        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout=30)
        BaseClient._make_api_call = self._saved["api_call"]
        lambda_models.LambdaFunction._invoke_lambda = self._saved["invoke"]
        lambda_models.LambdaFunction.invoke = self._saved["invoke_api"]
        s3_notifications._invoke_awslambda = self._saved["notify"]
        S3Response.key_response = self._saved["key_response"]

    def _deliver(self, events: list[tuple[LocalFunction, Any]]) -> None:
        """Stamp the request's events with one sequencer (one upload, however many notifications) and
        the time the request finished."""
        sequencer = self.sequencer.next()
        finished = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for fn, body in events:
            for record in body.get("Records", []):
                record.get("s3", {}).get("object", {}).setdefault("sequencer", sequencer)
                record["eventTime"] = finished
            self.submit(fn, body)

    def submit(self, fn: LocalFunction, event: Any) -> None:
        with self._pending_lock:
            self._pending += 1
        self._queue.put((fn, event, 0))

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until every asynchronous invocation (and its retries) has finished."""
        deadline = time.monotonic() + timeout_s
        with self._pending_lock:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._pending_lock.wait(left)
        return True

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            fn, event, attempt = job
            result, errored = fn.invoke(event)
            if errored and attempt < fn.max_retries:
                # AWS waits about a minute, then two; locally a short pause keeps the order of events.
                time.sleep(0.05 * (attempt + 1))
                self._queue.put((fn, event, attempt + 1))
                continue
            if errored:
                self._dead_letter(fn, event, result, attempt + 1)
            with self._pending_lock:
                self._pending -= 1
                self._pending_lock.notify_all()

    def _dead_letter(self, fn: LocalFunction, event: Any, error: Any, attempts: int) -> None:
        record = {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "requestContext": {
                "functionArn": f"{fn.arn}:$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "responsePayload": error,
        }
        self.async_failures.append(record)
        if fn.on_failure_queue_url:
            sqs = boto3.client("sqs", endpoint_url=self.endpoint_url)
            sqs.send_message(QueueUrl=fn.on_failure_queue_url, MessageBody=json.dumps(record, default=str))
