"""The CLI when the local LLM server cannot run: a clear message and exit status 2, not a traceback.
(The server's own failures are in tests/unit/test_llama_server_unit.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gifcat_tooling import llama_server
from gifcat_tooling.cli import main


def test_eval_says_why_the_local_server_cannot_run_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # no key and no base_url: the local server

    def crash(self: llama_server.LocalServer) -> llama_server.LocalEndpoint:
        raise llama_server.LocalLlmError("llama_cpp.server crashed (signal SIGSEGV) on its first answer")

    monkeypatch.setattr(llama_server.LocalServer, "start", crash)
    data = tmp_path / "records.jsonl"
    # tags no stage decides alone, so the record goes on to the LLM step
    record = {"id": "r1", "title": "Monday", "tags": ["work", "coffee"], "labels": ["funny"]}
    data.write_text(json.dumps(record) + "\n")
    assert main(["eval", "--data", str(data), "--json"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("gifcat: the local LLM server cannot run: "
                        "llama_cpp.server crashed (signal SIGSEGV) on its first answer")
