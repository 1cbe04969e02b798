"""`gifcat demo` as the README's main command runs it: the embedded AWS, the stack from template.yaml,
the local LLM server, sample uploads good and bad, and a result item for every one of them."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_records_a_result_for_every_upload(root: Path) -> None:
    samples = json.loads(resources.files("gifcat_tooling.local").joinpath("demo_samples.json").read_text())["samples"]
    run = subprocess.run(
        [sys.executable, "-m", "gifcat_tooling.cli", "demo"], capture_output=True, text=True, cwd=root, timeout=900
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"{len(samples)}/{len(samples)} uploads have a result item" in run.stdout
    rows = {
        line.split("  ")[0].strip(): line for line in run.stdout.splitlines() if line.startswith("uploads/")
    }
    assert "classified" in rows["uploads/pizza time.gif"] and " tags " in rows["uploads/pizza time.gif"]
    assert "skipped" in rows["uploads/not-a-gif.gif"] and "not a GIF" in rows["uploads/not-a-gif.gif"]
    assert "failed" in rows["uploads/broken sidecar.gif"]
    assert '"level":"INFO"' not in run.stdout  # the table is not buried under handler logs
