"""`gifcat demo --scenario backfill`: the embedded AWS with the upload trigger off, the sample uploads
put, then the backfill state machine; it exits 0 only when every object has a result item."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest


@pytest.mark.slow
def test_backfill_scenario_gives_every_sample_a_result(root: Path) -> None:
    demo_samples = resources.files("gifcat_tooling.local").joinpath("demo_samples.json")
    samples = json.loads(demo_samples.read_text())["samples"]
    run = subprocess.run(
        [sys.executable, "-m", "gifcat_tooling.cli", "demo", "--scenario", "backfill"],
        capture_output=True, text=True, cwd=root, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"put {len(samples)} objects under uploads/ (results now: 0)" in run.stdout  # nothing ran yet
    assert f"{len(samples)}/{len(samples)} objects have a result item" in run.stdout
    assert f"objects {len(samples)}, with a result {len(samples)}, written by this run {len(samples)}" in (
        run.stdout
    )
    rows = {
        line.split("  ")[0].strip(): line for line in run.stdout.splitlines() if line.startswith("uploads/")
    }
    assert "classified" in rows["uploads/pizza time.gif"] and " tags " in rows["uploads/pizza time.gif"]
    assert "skipped" in rows["uploads/not-a-gif.gif"]
    assert "MISSING" not in run.stdout and '"level":"INFO"' not in run.stdout
