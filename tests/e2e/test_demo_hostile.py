"""`gifcat demo --scenario hostile`: the sample uploads and every hostile case of issue 11 through the
embedded AWS; it exits 0 only when every key has one result item, none is pending, and each
re-uploaded key's result describes its last upload."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HOSTILE_KEYS = (
    "uploads/hostile/again.gif",
    "uploads/hostile/new metadata.gif",
    "uploads/hostile/deep json.gif",
    "uploads/hostile/bogus rfc2047.gif",
    "uploads/hostile/huge frames.gif",
    "uploads/hostile/emoji sidecar.gif",
    "uploads/hostile/slow drip.gif",
    "uploads/hostile/bom sidecar.gif",
    "uploads/hostile/control chars.gif",
    "uploads/hostile/ten quick.gif",
)


@pytest.mark.slow
def test_hostile_scenario_loses_nothing_and_keeps_the_last_upload(root: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "gifcat_tooling.cli", "demo", "--scenario", "hostile"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=900,
    )
    rows = {line[:40].strip(): line for line in run.stdout.splitlines() if line.startswith("uploads/")}
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-3000:]
    assert "FAIL" not in run.stdout
    for key in HOSTILE_KEYS:
        assert key[:40] in rows, f"no row for {key}"
        assert "pending" not in rows[key[:40]] and "MISSING" not in rows[key[:40]]
    for key in (
        "uploads/hostile/again.gif",
        "uploads/hostile/new metadata.gif",
        "uploads/hostile/ten quick.gif",
    ):
        assert " yes " in rows[key], rows[key]  # the result describes the last upload
    # The dripping endpoint ends in a recorded failure at the client's deadline: the scenario's short
    # attempts reached the function through the template's SettingsOverrides.
    assert "failed" in rows["uploads/hostile/slow drip.gif"]
    assert "timeout after 4s; gave up after 2 attempt" in rows["uploads/hostile/slow drip.gif"]
