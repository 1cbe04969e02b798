"""A scripted OpenAI-compatible endpoint on 127.0.0.1 that misbehaves on purpose, for the hostile demo
scenario and the pipeline benchmark's fault mode. Not a model: it answers the first category the
request's schema allows (the earlier stages' best candidate), at once.

    with HostileLlm(faults={"429": 0.05, "500": 0.05, "hang": 0.02}, drip_marker="slow drip") as llm:
        ... LlmBaseUrl=llm.base_url ...

Per chat request, in order: a request whose messages contain `drip_marker` gets a 200 whose body
arrives one byte every `drip_interval_s` (each read succeeds, so a per-read timeout never fires);
otherwise a seeded draw picks a fault by its share: "429" (with Retry-After), "500", "hang" (no answer
for `hang_s`), else a good answer. `counts` tallies what was served.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "hostile-llm-1"
FAULTS = ("429", "500", "hang")


def _allowed(body: dict[str, Any]) -> list[str]:
    """The categories the request's schema allows (json_schema, or llama.cpp's json_object + schema)."""
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
    return list(schema.get("properties", {}).get("primary", {}).get("enum") or ["funny"])


def _answer(body: dict[str, Any]) -> bytes:
    primary = _allowed(body)[0]
    content = {"primary": primary, "labels": [primary], "confidence": 0.8, "rationale": "scripted answer"}
    return json.dumps(
        {
            "id": "chatcmpl-hostile",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(content)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
    ).encode()


class HostileLlm:
    def __init__(
        self,
        faults: dict[str, float] | None = None,
        *,
        drip_marker: str | None = None,
        drip_interval_s: float = 1.0,
        hang_s: float = 300.0,
        retry_after_s: float = 1.0,
        seed: int = 11,
    ) -> None:
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        self.faults = dict(faults or {})
        self.drip_marker = drip_marker
        self.drip_interval_s = drip_interval_s
        self.hang_s = hang_s
        self.retry_after_s = retry_after_s
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("HostileLlm is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def _choose(self, raw: str) -> str:
        if self.drip_marker and self.drip_marker in raw:
            return "drip"
        with self._lock:
            draw = self._rng.random()
        for fault in FAULTS:
            share = self.faults.get(fault, 0.0)
            if draw < share:
                return fault
            draw -= share
        return "answer"

    def __enter__(self) -> HostileLlm:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                data = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
                self._send(200, data)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                kind = llm._choose(raw)
                with llm._lock:
                    llm.counts[kind] += 1
                try:
                    if kind == "429":
                        error = {"error": {"message": "scripted rate limit", "type": "rate_limit_exceeded"}}
                        self._send(429, json.dumps(error).encode(), {"Retry-After": f"{llm.retry_after_s:g}"})
                    elif kind == "500":
                        error = {"error": {"message": "scripted server error", "type": "server_error"}}
                        self._send(500, json.dumps(error).encode())
                    elif kind == "hang":
                        if not llm._stopping.wait(llm.hang_s):
                            self._send(200, _answer(body))
                    elif kind == "drip":
                        data = _answer(body)
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            if llm._stopping.wait(llm.drip_interval_s):
                                return
                    else:
                        self._send(200, _answer(body))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what a hang or a drip is for

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="hostile-llm", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # ends hangs and drips
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
