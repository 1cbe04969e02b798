"""The local LLM server's lifecycle around a child that is not llama.cpp: how a crash in use is told
apart from a clean stop. (tests/integration/llm/test_llm_gemma.py runs the real server.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gifcat.domain.llm.options import LocalOptions
from gifcat_tooling.llama_server import LocalServer


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
