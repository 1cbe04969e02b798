"""One chat completion held to a schema: bounded retries, format fallback, call cache and cost.

Retries are tenacity's (the openai client is built with max_retries=0): attempts are bounded by
`max_attempts`, the wait is exponential with equal jitter, or the server's Retry-After plus up to a tenth
(the call fails at once when it asks for more than `max_retry_after_s`, rather than sleeping through a
Lambda's timeout), and each wait is recorded in the notes. The SDK's own retries would not do: they
retry no 200 whose body is not a completion, and sleep their own backoff when Retry-After is too long.
What is worth retrying is decided here, by `_attempt`.

`timeout_s` bounds each whole attempt, not each socket read: httpx's timeouts apply per read, so an
endpoint sending a byte a second would hold an attempt forever. The client's sockets therefore go
through a network backend that clamps every connect, read and write to the attempt's deadline.
"""

from __future__ import annotations

import email.utils
import importlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
import tenacity
from openai.types.chat.chat_completion import ChatCompletion

from gifcat.adapters.llm.cache import CachedCall, CallCache, call_key
from gifcat.domain.ports import LlmCallError, LlmReply, Message

Mode = Literal["auto", "json_schema", "json_object_schema", "grammar"]
MODES: tuple[str, ...] = ("auto", "json_schema", "json_object_schema", "grammar")
RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx
SCHEMA_NAME = "gif_classification"
# How an endpoint says it does not do `response_format: json_schema` (llama-cpp-python answers 500 with
# its request validation error; others 400 or 422).
_UNSUPPORTED = re.compile(r"response_format|json_schema", re.IGNORECASE)


def _http_modules() -> tuple[Any, Any]:
    """(httpx, httpcore) as the installed openai uses them: openai 3 moved to the httpx2/httpcore2 fork
    (same API); the Lambda layer pins openai<3, which uses httpx/httpcore."""
    name = next(
        c.__module__.partition(".")[0]
        for c in openai.DefaultHttpxClient.__mro__
        if c.__module__.startswith("httpx")
    )
    return importlib.import_module(name), importlib.import_module(name.replace("httpx", "httpcore"))


httpx, httpcore = _http_modules()

# The deadline (time.monotonic()) of the attempt running in this thread/context; None: no deadline.
_attempt_deadline: ContextVar[float | None] = ContextVar("gifcat_llm_attempt_deadline", default=None)


def _time_left(timeout: float | None, error: type[Exception]) -> float | None:
    """`timeout` clamped to what is left of the attempt; `error` once nothing is left."""
    deadline = _attempt_deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):  # type: ignore[misc,name-defined]
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> Any:
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):  # type: ignore[misc,name-defined]
    """httpcore's own sync backend, its streams wrapped in _DeadlineStream."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> Any:
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> Any:
        timeout = _time_left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _deadline_http_client() -> Any:
    """An httpx client for the openai SDK whose connections honour the attempt deadline."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    transport = httpx.HTTPTransport(limits=limits)
    # httpx has no option for the network backend: replace the pool it built with the same pool on ours.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=_DeadlineBackend(),
    )
    return openai.DefaultHttpxClient(transport=transport)


class _NotACompletion(ValueError):
    """An HTTP 200 whose body is not a chat completion (an HTML error page, torn JSON...)."""


class _Retryable(Exception):
    """An attempt that failed in a way worth another: what happened, and the wait the server asked for."""

    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.retry_after = retry_after


@dataclass
class _Tally:
    """One call's HTTP requests (the format fallback's included) and notes, across its attempts."""

    requests: int = 0
    notes: list[str] = field(default_factory=list)


class _RetryWait(tenacity.wait.wait_base):
    """The server's Retry-After when it sent one, plus up to a tenth so that callers told the same
    moment spread out; otherwise tenacity's exponential backoff with "equal jitter": half of each wait
    fixed, half random, so that many callers failing together do not retry together."""

    def __init__(self, backoff_s: float, max_backoff_s: float, jitter: Callable[[], float]) -> None:
        self._exponential = tenacity.wait_exponential(multiplier=backoff_s, max=max_backoff_s)
        self._jitter = jitter

    def backoff(self, retry_state: tenacity.RetryCallState) -> float:
        return float(self._exponential(retry_state)) * (0.5 + 0.5 * self._jitter())

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        failure = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(failure, _Retryable) and failure.retry_after is not None:
            return failure.retry_after * (1.0 + 0.1 * self._jitter())
        return self.backoff(retry_state)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `Retry-After` (seconds or an HTTP date); None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class LlmClient:
    """An OpenAI-compatible chat endpoint held to a JSON schema. Safe to share between threads."""

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        timeout_s: float = 20.0,
        max_attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 30.0,
        temperature: float = 0.0,
        max_tokens: int = 200,
        mode: str = "auto",
        cache: CallCache | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.model = model
        self.base_url = base_url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.configured_mode = mode
        # auto starts with json_schema and switches for good when the endpoint rejects it
        self._mode = "json_schema" if mode == "auto" else mode
        self._mode_lock = threading.Lock()
        self.cache = cache
        self._sleep = sleep
        self._wait = _RetryWait(backoff_s, max_backoff_s, jitter)
        self._secret = api_key  # kept only to scrub it from error text
        self._openai = openai.OpenAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=0,
            http_client=_deadline_http_client(),
        )

    def __repr__(self) -> str:  # no key in reprs or logs
        return f"LlmClient(model={self.model!r}, base_url={self.base_url!r}, mode={self._mode!r})"

    @property
    def mode(self) -> str:
        """The structured-output mode in use now (auto resolves to json_schema or json_object_schema)."""
        return self._mode

    # -- requests ---------------------------------------------------------------------------------

    def _format_args(
        self, mode: str, schema: dict[str, Any], grammar: str | None, bounded: dict[str, Any] | None
    ) -> dict[str, Any]:
        if mode == "json_schema":
            return {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema},
                }
            }
        if mode == "json_object_schema":
            # llama-cpp-python's extension: JSON mode constrained by a schema (compiled to a grammar).
            # Sent as extra_body so the SDK's typed params cannot drop the non-standard `schema` key.
            return {"extra_body": {"response_format": {"type": "json_object", "schema": bounded or schema}}}
        if grammar is None:
            raise ValueError("mode 'grammar' needs a grammar")
        return {"extra_body": {"grammar": grammar}}

    def _scrub(self, text: str, limit: int = 300) -> str:
        if self._secret and len(self._secret) >= 8:
            text = text.replace(self._secret, "***")
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def _backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based) when the server named none."""
        # A bare call state: the exponential wait reads only its attempt number.
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.attempt_number = retry
        return self._wait.backoff(state)

    def complete(
        self,
        messages: list[Message],
        schema: dict[str, Any],
        *,
        grammar: str | None = None,
        bounded_schema: dict[str, Any] | None = None,
    ) -> LlmReply:
        """One answer. Raises LlmCallError after the retry budget or on a non-retryable error.

        `schema` goes to endpoints with strict structured outputs and keys the call cache;
        `bounded_schema` (the same with length bounds) replaces it in json_object_schema mode;
        `grammar` is used in grammar mode.
        """
        key = call_key(self.model, messages, schema)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return LlmReply(
                    content=hit.content,
                    model=hit.model,
                    prompt_tokens=hit.prompt_tokens,
                    completion_tokens=hit.completion_tokens,
                    attempts=0,
                    cached=True,
                    mode="cache",
                    notes=["llm: replayed from the call cache"],
                )
        tally = _Tally()

        def note_retry(state: tenacity.RetryCallState) -> None:
            failure = state.outcome.exception() if state.outcome else None
            what = failure.what if isinstance(failure, _Retryable) else repr(failure)
            wait = state.next_action.sleep if state.next_action else 0.0
            tally.notes.append(f"llm: {what}, retry {state.attempt_number} in {wait:.2f}s")

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),  # LlmCallError ends the call at once
            before_sleep=note_retry,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            response, mode = retrying(self._attempt, messages, schema, grammar, bounded_schema, tally)
        except _Retryable as last:
            reason = f"{last.what}; gave up after {self.max_attempts} attempt(s)"
            raise LlmCallError(reason, attempts=tally.requests, notes=tally.notes) from None
        return self._reply(response, key, mode, tally.requests, tally.notes)

    def _attempt(
        self,
        messages: list[Message],
        schema: dict[str, Any],
        grammar: str | None,
        bounded_schema: dict[str, Any] | None,
        tally: _Tally,
    ) -> tuple[ChatCompletion, str]:
        """One attempt, within its deadline: the completion and the mode it was asked in. Raises
        _Retryable for what is worth another attempt, LlmCallError for what is not."""
        while True:  # at most twice: the json_schema fallback resends at once, within the same attempt
            mode = self._mode
            tally.requests += 1
            deadline = _attempt_deadline.set(time.monotonic() + self.timeout_s)
            try:
                response = self._openai.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                    **self._format_args(mode, schema, grammar, bounded_schema),
                )
                if not isinstance(response, ChatCompletion):  # the SDK returns a non-JSON body as text
                    raise _NotACompletion(f"a {type(response).__name__} body")
                return response, mode
            except (json.JSONDecodeError, _NotACompletion):
                # A proxy's HTML page or a torn body under load: transient, like a 5xx.
                raise _Retryable("HTTP 200 that is not a chat completion") from None
            except openai.APIStatusError as exc:
                status = exc.status_code
                detail = self._scrub(f"{exc.message} {exc.body if exc.body is not None else ''}")
                if (
                    self.configured_mode == "auto"
                    and mode == "json_schema"
                    and status in (400, 422, 500)
                    and _UNSUPPORTED.search(detail)
                ):
                    with self._mode_lock:
                        self._mode = "json_object_schema"
                    tally.notes.append(
                        "llm: endpoint rejected response_format json_schema; using json_object+schema"
                    )
                    continue  # not a failure of the endpoint: the same attempt in the other format
                if status not in RETRY_STATUS and status < 500:
                    reason = f"HTTP {status}: {detail}"
                    raise LlmCallError(reason, attempts=tally.requests, notes=tally.notes) from None
                wait = parse_retry_after(exc.response.headers)
                if wait is not None and wait > self.max_retry_after_s:
                    raise LlmCallError(
                        f"HTTP {status}: Retry-After {wait:.0f}s exceeds max_retry_after_s "
                        f"{self.max_retry_after_s:.0f}s",
                        attempts=tally.requests,
                        notes=tally.notes,
                    ) from None
                raise _Retryable(f"HTTP {status}", wait) from None
            except openai.APITimeoutError:
                raise _Retryable(f"timeout after {self.timeout_s:g}s") from None
            except openai.APIConnectionError as exc:
                cause = self._scrub(str(exc.__cause__ or exc), 120)
                raise _Retryable(f"connection error ({cause})") from None
            except openai.OpenAIError as exc:  # e.g. a response the SDK cannot read
                reason = f"{type(exc).__name__}: {self._scrub(str(exc))}"
                raise LlmCallError(reason, attempts=tally.requests, notes=tally.notes) from None
            finally:
                _attempt_deadline.reset(deadline)

    def _reply(self, response: Any, key: str, mode: str, requests: int, notes: list[str]) -> LlmReply:
        choice = response.choices[0] if response.choices else None
        content = choice.message.content if choice is not None else None
        usage = response.usage
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        if usage is None:
            notes.append("llm: the endpoint reported no token usage")
        model = response.model or self.model
        if self.cache is not None and content is not None:
            self.cache.put(key, CachedCall(content, model, prompt_tokens, completion_tokens))
        return LlmReply(
            content=content,
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            attempts=requests,
            cached=False,
            mode=mode,
            finish_reason=getattr(choice, "finish_reason", None),
            notes=notes,
        )
