"""Client pieces that need no server: Retry-After, backoff, prices, call keys, the call cache, options."""

from __future__ import annotations

import email.utils
import json
import time
from importlib.machinery import ModuleSpec
from pathlib import Path

import pytest

from gifcat.adapters.llm.cache import CachedCall, CallCache, call_key
from gifcat.adapters.llm.client import LlmClient, parse_retry_after
from gifcat.adapters.llm.factory import build_llm_stage
from gifcat.config import ConfigError, TokenPrice
from gifcat.domain.costs import cost_usd
from gifcat.domain.llm.options import LlmOptions
from gifcat_tooling.llama_server import LocalServer, llama_cpp_missing, wants_local_server
from tests.support.llm import SMALL, settings_with

PRICES = {
    "gpt-4o-mini": TokenPrice(input_per_million=0.15, output_per_million=0.60),
    "local": TokenPrice(input_per_million=0, output_per_million=0),
}


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after({"retry-after": date}, now=now) or 0) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    low = LlmClient(model="m", api_key="k", backoff_s=0.5, max_backoff_s=3, jitter=lambda: 0.0)
    high = LlmClient(model="m", api_key="k", backoff_s=0.5, max_backoff_s=3, jitter=lambda: 1.0)
    assert [low._backoff(n) for n in (1, 2, 3, 4, 5)] == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert [high._backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_client_repr_has_no_key() -> None:
    assert "sk-secret" not in repr(LlmClient(model="m", api_key="sk-secret-123456"))


def test_cost_from_prices_including_dated_snapshots() -> None:
    assert cost_usd(PRICES, "gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd(PRICES, "gpt-4o-mini-2024-07-18", 1000, 100) == pytest.approx(0.00021)
    assert cost_usd(PRICES, "local", 500, 50) == 0.0
    assert cost_usd(PRICES, "mystery-model", 500, 50) is None


def test_call_key_depends_on_model_messages_and_schema() -> None:
    msgs = [{"role": "user", "content": "x"}]
    base = call_key("m", msgs, {"a": 1})
    assert base == call_key("m", [dict(msgs[0])], {"a": 1})
    assert (
        len({base, call_key("n", msgs, {"a": 1}), call_key("m", msgs, {"a": 2}), call_key("m", [], {"a": 1})})
        == 4
    )


def test_call_cache_round_trip_and_torn_lines(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    cache = CallCache(path)
    cache.put("k1", CachedCall('{"primary": "food"}', "gpt-4o-mini", 100, 20))
    with path.open("a") as fh:
        fh.write('{"key": "k2", "content": "tor')  # an interrupted write
    again = CallCache(path)
    assert again.get("k1") == CachedCall('{"primary": "food"}', "gpt-4o-mini", 100, 20)
    assert again.get("k2") is None and len(again) == 1
    assert json.loads(path.read_text().splitlines()[0])["key"] == "k1"


def test_settings_knobs_are_validated_by_name() -> None:
    with pytest.raises(ConfigError, match=r"stages.llm: timeout_z: Extra inputs"):
        settings_with(timeout_z=3).options("llm", LlmOptions)
    with pytest.raises(ConfigError, match=r"stages.llm: mode"):
        settings_with(mode="yaml").options("llm", LlmOptions)
    opts = settings_with().options("llm", LlmOptions)
    assert opts.instructions_in_user("gemma-3-270m-q4_k_m") and not opts.instructions_in_user("gpt-4o-mini")
    assert settings_with(system_in_user=True).options("llm", LlmOptions).instructions_in_user("gpt-4o-mini")


def test_bundled_settings_price_the_local_model_at_zero() -> None:
    settings = settings_with()
    local = settings.options("llm", LlmOptions).local.model_name
    assert settings.prices.llm[local].input_per_million == 0 == settings.prices.llm[local].output_per_million


def test_from_settings_without_key_or_base_url_points_at_the_local_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = settings_with()
    assert wants_local_server(settings)
    with pytest.raises(ConfigError, match="local_llm_endpoint"):
        build_llm_stage(settings, SMALL)
    stage = build_llm_stage(
        settings, SMALL, base_url="http://127.0.0.1:1/v1", model="gemma-3-270m-q4_k_m"
    )
    assert stage.prompt.system_in_user and stage.client.model == "gemma-3-270m-q4_k_m"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-0000")
    assert not wants_local_server(settings)
    assert not wants_local_server(settings_with(base_url="http://proxy/v1"), environ={})


def test_local_server_command_uses_the_alias_and_chat_format(tmp_path: Path) -> None:
    opts = settings_with().options("llm", LlmOptions).local
    cmd = LocalServer(opts, python="/py").command(tmp_path / "m.gguf", 8123)
    assert cmd[:3] == ["/py", "-m", "llama_cpp.server"]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags["--model_alias"] == opts.model_name and flags["--chat_format"] == "gemma"
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "8123"
    # The server's own default computes logits for every prompt token (3x slower cold); gifcat needs none.
    assert flags["--logits_all"] == "False"


def test_the_dev_install_can_run_the_local_server() -> None:
    # The local model is gifcat's default LLM: the dev install has llama_cpp and its server extras.
    missing = llama_cpp_missing()
    assert missing is None, f"the local LLM server cannot run: {missing}"


def test_a_missing_server_package_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from gifcat_tooling import llama_server as local_server

    # Every other package present, fastapi absent, whatever this machine has installed.
    def find_spec(name: str, *args: object) -> ModuleSpec | None:
        return None if name == "fastapi" else ModuleSpec(name, None)

    monkeypatch.setattr(local_server.importlib.util, "find_spec", find_spec)
    missing = llama_cpp_missing()
    assert missing is not None and missing.startswith("python package 'fastapi' is not installed in ")
    assert missing.endswith(local_server.BUILD_HINT) and "scripts/build_llama_wheel.sh" in missing


def test_local_server_that_dies_on_start_fails_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gifcat_tooling import llama_server as local_server

    monkeypatch.setattr(local_server, "ensure_model_file", lambda opts: tmp_path / "m.gguf")
    monkeypatch.setattr(local_server, "llama_cpp_missing", lambda: None)
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'error: cannot load model' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    local = settings_with().options("llm", LlmOptions).local
    server = LocalServer(local, python=str(fake_python), log_dir=tmp_path)
    with pytest.raises(local_server.LocalLlmError, match=r"exited with code 3(.|\n)*cannot load model"):
        server.start()
    assert server.process is None and server.endpoint is None
