"""LlmClient over real HTTP against hostile endpoints: bodies that drip, 200s that are not completions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gifcat.adapters.llm.client import LlmCallError, LlmClient
from tests.support.fake_openai import FakeOpenAI, Reply, answer

MESSAGES = [{"role": "user", "content": "Pizza GIF"}]
SCHEMA = {"type": "object", "properties": {"primary": {"type": "string"}}}
GOOD = json.dumps(answer("food").body).encode()


def client(base_url: str, **knobs: Any) -> LlmClient:
    return LlmClient(
        model="m", api_key="sk-test", base_url=base_url, **{"backoff_s": 0.01, "max_backoff_s": 0.02, **knobs}
    )


# -- a server that answers one byte at a time ---------------------------------------------------------


@dataclass
class Drip:
    """Per request: how many bytes of the response went out before the client hung up."""

    interval_s: float
    phase: str  # "headers": the status line and headers drip; "body": headers at once, the body drips
    started: int = 0  # requests that reached the server
    sent: list[int] = field(default_factory=list)  # one entry per request once its handler is done
    total: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def drip_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Drip]]:
    drip = Drip(interval_s=0.05, phase=request.param)
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(GOOD)}\r\n\r\n"
    ).encode()
    drip.total = len(head) + len(GOOD)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            drip.started += 1
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            slow_part = head + GOOD if drip.phase == "headers" else GOOD
            sent = 0
            try:
                if drip.phase == "body":
                    self.wfile.write(head)
                    sent = len(head)
                for i in range(len(slow_part)):
                    self.wfile.write(slow_part[i : i + 1])
                    self.wfile.flush()
                    sent += 1
                    if drip.stop.wait(drip.interval_s):
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up
            drip.sent.append(sent)
            self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", drip
    finally:
        drip.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("drip_server", ["body", "headers"], indirect=True)
def test_a_dripping_endpoint_is_cut_at_the_attempt_deadline(drip_server: tuple[str, Drip]) -> None:
    # Each byte comes well within the read timeout, so only a deadline on the whole attempt ends it:
    # the full answer would take ~20 s to drip; each attempt may take 1 s.
    base_url, drip = drip_server
    with pytest.raises(LlmCallError, match=r"timeout after 1s; gave up after 2 attempt") as err:
        client(base_url, timeout_s=1.0, max_attempts=2).complete(MESSAGES, SCHEMA)
    assert err.value.attempts == 2
    # (An attempt whose deadline passes before it connects, e.g. a slow first call, never reaches the server.)
    assert 1 <= drip.started <= 2
    for _ in range(100):  # a handler notices the hang-up at its next write
        if len(drip.sent) == drip.started:
            break
        time.sleep(0.05)
    assert len(drip.sent) == drip.started
    assert all(sent < drip.total for sent in drip.sent)  # no attempt waited for the whole drip


# -- HTTP 200 whose body is not a chat completion: retried like a 5xx ----------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        Reply(
            status=200, body="<html><body>Bad gateway</body></html>", headers={"Content-Type": "text/html"}
        ),
        Reply(status=200, body="<html><body>Bad gateway</body></html>"),  # claims JSON, is not
        Reply(status=200, body='{"choices": [{"message": {"content": "tor'),
        Reply(status=200, body="[1, 2, 3]"),
    ],
    ids=["text/html", "html-as-json", "torn-json", "json-list"],
)
def test_a_200_that_is_not_a_completion_is_retried(bad: Reply) -> None:
    with FakeOpenAI() as server:
        server.push(bad, answer("food"))
        reply = client(server.base_url, max_attempts=3).complete(MESSAGES, SCHEMA)
        assert len(server.chat_requests) == 2
    assert reply.attempts == 2 and json.loads(reply.content or "")["primary"] == "food"
    assert any(n.startswith("llm: HTTP 200 that is not a chat completion, retry 1") for n in reply.notes)


def test_a_200_that_is_never_a_completion_stops_at_max_attempts() -> None:
    with FakeOpenAI() as server:
        server.push(
            *[Reply(status=200, body="<html>maintenance</html>", headers={"Content-Type": "text/html"})] * 5
        )
        with pytest.raises(LlmCallError) as err:
            client(server.base_url, max_attempts=3).complete(MESSAGES, SCHEMA)
        assert len(server.chat_requests) == 3
    assert err.value.attempts == 3
    assert err.value.reason.startswith("HTTP 200 that is not a chat completion")
    assert err.value.reason.endswith("gave up after 3 attempt(s)")
