"""The local LLM server's lifecycle around a child that is not llama.cpp: how a crash in use is told
apart from a clean stop. (tests/integration/llm/test_llm_gemma.py runs the real server.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gifcat.adapters.cpus import usable_cpus
from gifcat.config import ConfigError, load_settings
from gifcat.domain.llm.options import LlmOptions, LocalOptions
from gifcat_tooling.llama_server import LocalLlmError, LocalServer, free_port, server_options


def serving(tmp_path: Path, code: str) -> LocalServer:
    """A LocalServer as start() leaves it once /v1/models answered, its child running `code`."""
    server = LocalServer(LocalOptions())
    server.log_path = tmp_path / "server.log"
    server.log_path.write_text("llama_kv_cache: ready\nINFO: POST /v1/chat/completions\n")
    server.process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    server._started = True
    return server


def test_a_server_that_crashed_in_use_is_reported_with_its_signal_and_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = serving(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert server.process is not None
    server.process.wait(timeout=30)
    server.stop()
    assert server.crash == "exited on its own with signal SIGSEGV"
    err = capsys.readouterr().err
    assert "local LLM server (llama_cpp.server) exited on its own with signal SIGSEGV" in err
    assert f"log {server.log_path}:" in err and "POST /v1/chat/completions" in err
    assert server.log_path is not None and server.log_path.exists()  # kept: something went wrong


def test_a_server_stopped_by_us_is_not_a_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = serving(tmp_path, "import time; time.sleep(60)")
    server.stop(timeout_s=10)
    assert server.crash is None
    assert capsys.readouterr().err == ""
    assert server.log_path is not None and not server.log_path.exists()  # a clean stop drops its log


# A stand-in for llama_cpp.server: lists the model, and answers a completion per ANSWER ("ok", or
# "crash": SIGSEGV, as the AMX build did on its first decode).
FAKE_SERVER = """
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
port, answer = int(sys.argv[1]), sys.argv[2]
class Handler(BaseHTTPRequestHandler):
    def _send(self, doc):
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self._send({"data": [{"id": "gemma-3-270m-q4_k_m"}]})
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        print("POST", self.path, flush=True)
        if answer == "crash":
            os.kill(os.getpid(), signal.SIGSEGV)
        self._send({"choices": [{"text": " there"}]})
HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


class FakeServer(LocalServer):
    def __init__(self, answer: str) -> None:
        super().__init__(LocalOptions(startup_timeout_s=30))
        self.answer = answer

    def command(self, model_path: Path, port: int) -> list[str]:
        return [sys.executable, "-c", FAKE_SERVER, str(port), self.answer]


def test_a_server_that_crashes_on_its_first_answer_fails_the_start_with_its_log(tmp_path: Path) -> None:
    server = FakeServer("crash")
    with pytest.raises(LocalLlmError) as failed:
        server._start_on(tmp_path / "model.gguf", free_port("127.0.0.1"))
    message = str(failed.value)
    assert "crashed (signal SIGSEGV) on its first answer" in message
    assert "POST /v1/completions" in message  # the log's tail
    assert "CMAKE_ARGS=-DGGML_NATIVE=OFF" in message  # and what to do about it
    assert server.process is None and server.crash is None  # stopped; a failed start, not a crash in use


def test_a_server_that_answers_is_ready_after_one_token(tmp_path: Path) -> None:
    server = FakeServer("ok")
    endpoint = server._start_on(tmp_path / "model.gguf", free_port("127.0.0.1"))
    try:
        assert endpoint.model == "gemma-3-270m-q4_k_m" and endpoint.base_url.endswith("/v1")
        assert server.process is not None and server.process.poll() is None
    finally:
        server.stop()
    assert server.crash is None


def test_beside_the_embedded_aws_the_server_takes_the_shared_thread_count() -> None:
    # gifcat demo runs the Lambdas, moto and ONNX Runtime on the same cores as the server: it starts it
    # with `n_threads_shared`; the CLI's sequential runs keep `n_threads`. "auto" (the default) counts
    # the CPUs gifcat can keep busy, one fewer when shared, and never goes below one.
    settings = load_settings()
    for cpus, expected in ((1, (1, 1)), (2, (2, 1)), (8, (8, 7))):
        alone = server_options(settings, cpus=cpus)
        shared = server_options(settings, shared=True, cpus=cpus)
        assert (alone.n_threads, shared.n_threads) == expected
    alone, shared = server_options(settings, cpus=2), server_options(settings, shared=True, cpus=2)
    assert shared.model_copy(update={"n_threads": 2}) == alone  # nothing else differs
    command = LocalServer(shared).command(Path("model.gguf"), 8080)
    assert command[command.index("--n_threads") + 1] == "1"
    unresolved = LocalServer(load_settings().options("llm", LlmOptions).local).command(Path("m.gguf"), 1)
    assert unresolved[unresolved.index("--n_threads") + 1] == str(usable_cpus())
    tuned = load_settings(overrides={"stages": {"llm": {"local": {"n_threads_shared": 2, "n_threads": 3}}}})
    assert server_options(tuned, shared=True, cpus=8).n_threads == 2
    assert server_options(tuned, cpus=8).n_threads == 3


def test_thread_counts_below_one_are_refused() -> None:
    for bad in (0, -1, "all"):
        with pytest.raises(ConfigError, match="n_threads"):
            settings = load_settings(overrides={"stages": {"llm": {"local": {"n_threads": bad}}}})
            settings.options("llm", LlmOptions)
