"""Client pieces that need no server: Retry-After, backoff, prices, call keys, the call cache, options."""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path

import pytest

from gifcat.adapters.llm.cache import CachedCall, CallCache, call_key
from gifcat.adapters.llm.client import LlmClient, cost_usd, parse_retry_after
from gifcat.config import ConfigError, TokenPrice
from gifcat.domain.llm.options import llm_options
from gifcat.domain.stages.llm import LlmStage
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
        llm_options(settings_with(timeout_z=3))
    with pytest.raises(ConfigError, match=r"stages.llm: mode"):
        llm_options(settings_with(mode="yaml"))
    opts = llm_options(settings_with())
    assert opts.instructions_in_user("gemma-3-270m-q4_k_m") and not opts.instructions_in_user("gpt-4o-mini")
    assert llm_options(settings_with(system_in_user=True)).instructions_in_user("gpt-4o-mini")


def test_bundled_settings_price_the_local_model_at_zero() -> None:
    settings = settings_with()
    local = llm_options(settings).local.model_name
    assert settings.prices.llm[local].input_per_million == 0 == settings.prices.llm[local].output_per_million


def test_from_settings_without_key_or_base_url_points_at_the_local_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = settings_with()
    assert wants_local_server(settings)
    with pytest.raises(ConfigError, match="local_llm_endpoint"):
        LlmStage.from_settings(settings, SMALL)
    stage = LlmStage.from_settings(
        settings, SMALL, base_url="http://127.0.0.1:1/v1", model="gemma-3-270m-q4_k_m"
    )
    assert stage.prompt.system_in_user and stage.client.model == "gemma-3-270m-q4_k_m"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-0000")
    assert not wants_local_server(settings)
    assert not wants_local_server(settings_with(base_url="http://proxy/v1"), environ={})


def test_local_server_command_uses_the_alias_and_chat_format(tmp_path: Path) -> None:
    opts = llm_options(settings_with()).local
    cmd = LocalServer(opts, python="/py").command(tmp_path / "m.gguf", 8123)
    assert cmd[:3] == ["/py", "-m", "llama_cpp.server"]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=True))
    assert flags["--model_alias"] == opts.model_name and flags["--chat_format"] == "gemma"
    assert flags["--host"] == "127.0.0.1" and flags["--port"] == "8123"
    assert llama_cpp_missing() is None or "build_llama_wheel.sh" in (llama_cpp_missing() or "")


def test_local_server_that_dies_on_start_fails_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gifcat_tooling import llama_server as local_server

    monkeypatch.setattr(local_server, "ensure_model_file", lambda opts: tmp_path / "m.gguf")
    monkeypatch.setattr(local_server, "llama_cpp_missing", lambda: None)
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\necho 'error: cannot load model' >&2\nexit 3\n")
    fake_python.chmod(0o755)
    server = LocalServer(llm_options(settings_with()).local, python=str(fake_python), log_dir=tmp_path)
    with pytest.raises(local_server.LocalLlmError, match=r"exited with code 3(.|\n)*cannot load model"):
        server.start()
    assert server.process is None and server.endpoint is None
