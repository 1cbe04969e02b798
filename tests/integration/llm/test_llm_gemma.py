"""End to end with the real local model: llama-cpp-python's server running Gemma 3 270M.

Not skipped when llama_cpp is missing: the local default is part of the product, so the test fails
and says how to install it.
"""

from __future__ import annotations

import socket
import urllib.parse

import pytest

from gifcat.domain.llm.options import llm_options
from gifcat.domain.model import Classification, Status
from gifcat.domain.stages.llm import LlmStage
from gifcat.domain.taxonomy import load_taxonomy
from gifcat_tooling.llama_server import LocalServer, llama_cpp_missing
from tests.support.llm import item, settings_with


@pytest.mark.slow
def test_local_gemma_server_end_to_end() -> None:
    missing = llama_cpp_missing()
    if missing:
        pytest.fail(f"the local LLM server cannot run: {missing}")
    settings = settings_with(timeout_s=60, max_attempts=2)
    taxonomy = load_taxonomy()
    server = LocalServer(llm_options(settings).local)
    with server as endpoint:
        assert endpoint.model == "gemma-3-270m-q4_k_m"
        stage = LlmStage.from_settings(settings, taxonomy, base_url=endpoint.base_url, model=endpoint.model)
        outs = [
            stage.score(
                item("Pizza GIF", ("pizza", "cheese", "food")), Classification(status=Status.PENDING)
            ),
            stage.score(item("Kiss GIF", ("kiss", "love", "mwah")), Classification(status=Status.PENDING)),
        ]
        pid = server.process.pid if server.process else None
    # llama.cpp's server refuses json_schema; the client fell back once and kept json_object+schema
    assert stage.client.mode == "json_object_schema"
    assert "llm: endpoint rejected response_format json_schema; using json_object+schema" in outs[0].notes
    for out in outs:
        # the grammar built from the schema keeps even this small model inside the enum
        assert out.error is None, out.error
        assert out.candidates and all(c.category in taxonomy.names for c in out.candidates)
        assert out.model == "gemma-3-270m-q4_k_m" and out.prompt_version == "classify-v2"
        # the local answer format (stages.llm.local.answer_fields) is the primary alone: a handful of
        # generated tokens instead of the ~45 of the four-field answer
        assert out.usage["prompt_tokens"] > 0 and 0 < out.usage["completion_tokens"] < 20
        assert out.rationale is None and out.candidates[0].evidence[0].startswith("llm: chose ")
        assert out.cost_usd == 0.0 and not any("no price" in n for n in out.notes)
    # stopped: the process is gone and the port is closed
    assert pid is not None and server.process is None
    host_port = urllib.parse.urlsplit(endpoint.base_url)
    with socket.socket() as sock:
        assert sock.connect_ex((host_port.hostname or "127.0.0.1", host_port.port or 0)) != 0
