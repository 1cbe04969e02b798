"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests that use the real openai client.

    with FakeOpenAI() as server:
        server.push(rate_limited(retry_after=1), answer("food", ["food", "cute"]))
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
        ...
        server.chat_requests[0].body["messages"]

Each POST /v1/chat/completions takes the next scripted Reply; when the script is empty the
`responder` (default: a good answer naming the first category of the request's schema) decides.
GET /v1/models lists the model. It is a real HTTP server in a thread: timeouts, status codes and
headers go through the real network stack and SDK.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MODEL = "fake-gpt-1"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: Any  # parsed JSON, or the raw text when it is not JSON
    at: float  # time.monotonic() when it arrived

    @property
    def response_format(self) -> Any:
        return self.body.get("response_format") if isinstance(self.body, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def image_parts(self) -> list[dict[str, Any]]:
        """Every `image_url` content part of the request's messages, in order."""
        return [
            part
            for m in self.messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if part.get("type") == "image_url"
        ]

    @property
    def text(self) -> str:
        """The request's text: string contents and text parts, joined."""
        texts: list[str] = []
        for m in self.messages:
            content = m.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts += [p["text"] for p in content if p.get("type") == "text"]
        return "\n".join(texts)


def data_url(url: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a base64 data: URL; AssertionError when it is not one."""
    match = re.fullmatch(r"data:([\w/+.-]+);base64,([A-Za-z0-9+/=]+)", url)
    assert match, f"not a base64 data URL: {url[:60]!r}"
    return match.group(1), base64.b64decode(match.group(2), validate=True)


@dataclass
class Reply:
    """One scripted response: status, JSON (dict) or raw (str) body, headers, and a delay before it.

    The Content-Type is application/json unless `headers` names another."""

    status: int = 200
    body: dict[str, Any] | str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def completion(
    content: str | None,
    *,
    model: str = DEFAULT_MODEL,
    prompt_tokens: int = 120,
    completion_tokens: int = 30,
    finish_reason: str = "stop",
    usage: bool = True,
) -> Reply:
    """A 200 chat completion whose message content is `content`, verbatim."""
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return Reply(body=body)


def answer(
    primary: str,
    labels: list[str] | None = None,
    confidence: float = 0.9,
    rationale: str = "the title says so",
    *,
    extra: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Reply:
    """A completion with a well-formed answer (`extra` adds fields outside the schema)."""
    data = {
        "primary": primary,
        "labels": labels or [primary],
        "confidence": confidence,
        "rationale": rationale,
    }
    return completion(json.dumps({**data, **(extra or {})}), **kwargs)


def error(status: int, message: str = "scripted error", *, headers: dict[str, str] | None = None) -> Reply:
    kind = (
        "rate_limit_exceeded"
        if status == 429
        else "invalid_request_error"
        if status < 500
        else "server_error"
    )
    return Reply(
        status=status,
        body={"error": {"message": message, "type": kind, "param": None, "code": None}},
        headers=headers or {},
    )


def rate_limited(retry_after: float | str | None = 1) -> Reply:
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    return error(429, "Rate limit reached; scripted", headers=headers)


def server_error(status: int = 500) -> Reply:
    return error(status, f"scripted {status}")


def slow(delay_s: float, reply: Reply | None = None) -> Reply:
    """`reply` (default: a good answer) after `delay_s`: longer than the client timeout means a timeout."""
    base = reply or answer("funny")
    return Reply(status=base.status, body=base.body, headers=dict(base.headers), delay_s=delay_s)


def hang() -> Reply:
    """No answer until the server stops: the client times out whatever its timeout and the load."""
    return Reply(delay_s=math.inf)


def json_schema_rejected() -> Reply:
    """What llama-cpp-python's server answers to response_format json_schema (a 500 with its validation)."""
    return error(
        500,
        "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), "
        "'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]",
    )


def first_category(request: RecordedRequest) -> Reply:
    """Default responder: a confident answer naming the first category in the request's schema."""
    rf = request.response_format or {}
    schema = rf.get("schema") or (rf.get("json_schema") or {}).get("schema") or {}
    enum = schema.get("properties", {}).get("primary", {}).get("enum") or ["funny"]
    return answer(enum[0], [enum[0]], 0.8, "default scripted answer")


Responder = Callable[[RecordedRequest], Reply]


class FakeOpenAI:
    def __init__(
        self,
        responder: Responder = first_category,
        *,
        model: str = DEFAULT_MODEL,
        reject_json_schema: bool = False,
    ) -> None:
        self.responder = responder
        self.model = model
        # Behave like llama-cpp-python: every json_schema response_format is refused.
        self.reject_json_schema = reject_json_schema
        self.requests: list[RecordedRequest] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- script -------------------------------------------------------------------------------------

    def push(self, *replies: Reply) -> FakeOpenAI:
        with self._lock:
            self._script.extend(replies)
        return self

    def clear(self) -> None:
        """Drop whatever is still scripted."""
        with self._lock:
            self._script.clear()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def _next(self, request: RecordedRequest) -> Reply:
        rf = request.response_format
        if self.reject_json_schema and isinstance(rf, dict) and rf.get("type") == "json_schema":
            return json_schema_rejected()
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        return scripted or self.responder(request)

    # -- server -------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def _record(self, body: Any) -> RecordedRequest:
                headers = {k.lower(): v for k, v in self.headers.items()}  # HTTP header names are case-blind
                req = RecordedRequest(self.command, self.path, headers, body, time.monotonic())
                with fake._lock:
                    fake.requests.append(req)
                return req

            def _send(self, reply: Reply) -> None:
                delay = None if math.isinf(reply.delay_s) else reply.delay_s  # None: until stopped
                if reply.delay_s and fake._stopping.wait(delay):
                    return
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body or {})
                data = payload.encode("utf-8")
                try:
                    self.send_response(reply.status)
                    if not any(name.lower() == "content-type" for name in reply.headers):
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): that is the point of a slow reply

            def do_GET(self) -> None:
                self._record(None)
                if self.path.rstrip("/").endswith("/models"):
                    body = {
                        "object": "list",
                        "data": [{"id": fake.model, "object": "model", "owned_by": "me"}],
                    }
                    self._send(Reply(body=body))
                else:
                    self._send(error(404, f"no route {self.path}"))

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw
                req = self._record(body)
                if not self.path.endswith("/chat/completions"):
                    self._send(error(404, f"no route {self.path}"))
                    return
                self._send(fake._next(req))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # a short poll interval: shutdown() waits for it, and tests start many servers
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow replies
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
