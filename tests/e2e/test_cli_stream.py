"""`gifcat stream` as a user runs it: a subprocess, real MiniLM, an OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DEV_DATA
from tests.support.fake_openai import FakeOpenAI

GIFCAT = [sys.executable, "-m", "gifcat_tooling.cli"]


def gifcat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GIFCAT, *args], capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(model="gpt-4o-mini") as server:
        yield server


def sample(tmp_path: Path, n: int, name: str = "sample") -> Path:
    lines = [line for line in DEV_DATA.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_stream_prints_the_learning_curve_and_draws_it(tmp_path: Path, llm: FakeOpenAI) -> None:
    data = sample(tmp_path, 60)
    more = tmp_path / "more.jsonl"  # a second file replays after the first
    more.write_text(
        json.dumps({"id": "x-1", "title": "Slam dunk", "tags": ["basketball"], "labels": ["sports"],
                    "primary": "sports"}) + "\n",
        encoding="utf-8",
    )
    env = {"GIFCAT_OVERRIDES": json.dumps({"stages": {"llm": {"base_url": llm.base_url,
                                                              "model": "gpt-4o-mini"}}})}
    before = len(llm.chat_requests)
    report, predictions = tmp_path / "report", tmp_path / "predictions.jsonl"
    args = ["stream", "--data", str(data), "--data", str(more), "--learn", "--window", "20",
            "--corrections", "0.5", "--json", "--report", str(report), "--predictions", str(predictions)]
    run = gifcat(*args, env=env)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert [(w["start"], w["n"]) for w in summary["windows"]] == [(0, 20), (20, 20), (40, 20), (60, 1)]
    for w in summary["windows"]:
        assert {"start", "n", "accuracy", "llm_share"} <= set(w)
        assert 0.0 <= w["accuracy"] <= w["accuracy_stored"] <= 1.0
    assert {"windows", "accuracy", "llm_share"} <= set(summary) and summary["n"] == 61
    assert summary["data"] == [
        {"path": str(data), "start": 0, "n": 60}, {"path": str(more), "start": 60, "n": 1}
    ]
    # Every LLM-bound record was one call (the fake answers at once, no repair needed).
    llm_bound = round(summary["llm_share"] * 61)
    assert len(llm.chat_requests) - before == llm_bound > 0
    assert 0 < summary["corrections"] < llm_bound and summary["decided_by"]["human"] == summary["corrections"]
    assert summary["windows"][0]["relearn"]["human"] == summary["windows"][0]["corrections"]
    assert json.loads((report / "stream.json").read_text()) == summary
    # The line that replays this run, the endpoint's override first (eval records the same).
    assert shlex.split(summary["command"]) == [f"GIFCAT_OVERRIDES={env['GIFCAT_OVERRIDES']}", "gifcat", *args]
    assert (report / "stream.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [line["id"] for line in lines][-2:] == ["dev-0060", "x-1"] and len(lines) == 61
    assert sum(line["decided_by"] == "human" for line in lines) == summary["corrections"]
    assert all(line["llm_answer"] for line in lines if line["llm_bound"])


def test_stream_without_an_llm_is_the_fast_path(tmp_path: Path) -> None:
    data = sample(tmp_path, 30)
    run = gifcat("stream", "--data", str(data), "--until", "embedding", "--window", "10", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["options"]["learn"] is False and summary["options"]["until"] == "embedding"
    # Nothing learned and nothing certified from an empty start: only the tag stage decides.
    assert set(summary["decided_by"]) <= {"tags", "undecided"}
    assert summary["llm_share"] == round(summary["decided_by"].get("undecided", 0) / 30, 4)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--corrections", "1.5"], "argument --corrections: expected a share from 0 to 1"),
     (["--window", "0"], "argument --window: expected a whole number of 1 or more")],
)
def test_stream_bad_options_are_clear_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    run = gifcat("stream", "--data", str(sample(tmp_path, 5)), "--until", "embedding", *extra)
    assert run.returncode == 2 and message in run.stderr  # the parser's refusal, with the usage


def test_stream_refuses_a_file_replayed_twice(tmp_path: Path) -> None:
    data = sample(tmp_path, 5)
    run = gifcat("stream", "--data", str(data), "--data", str(data), "--until", "embedding")
    assert run.returncode != 0 and "repeats the id 'dev-0001'" in run.stderr
