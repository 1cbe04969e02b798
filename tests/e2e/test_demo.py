"""`gifcat demo` as the README's main command runs it: the embedded AWS, the stack from template.yaml,
the local LLM server, sample uploads good and bad, and a result item for every one of them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_records_a_result_for_every_upload(root: Path) -> None:
    samples_file = resources.files("gifcat_tooling.local").joinpath("demo_samples.json")
    doc = json.loads(samples_file.read_text())
    samples = [*doc["samples"], *doc["reposts"]]
    run = subprocess.run(
        [sys.executable, "-m", "gifcat_tooling.cli", "demo"],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=900,
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
    # A repost (the same bytes and sidecar under another key) takes the result of what it copies.
    for repost in doc["reposts"]:
        row, source = rows[repost["key"]], rows[repost["of"]]
        assert row[35:].split()[:3] == source[35:].split()[:3]  # status, category, decided_by
        assert row.rstrip().endswith(f"reused the result of {repost['of']}")
    # The summary under the table counts the same uploads by the stage that decided them, and the
    # reposts on their own row.
    deciders = ["reused" if "reused the result of" in line else line[35:].split()[2]
                for line in rows.values() if " classified " in line]
    block = run.stdout.split("decided by ", 1)[1].split("one decision, explained", 1)[0]
    names = ("tags", "rules", "embedding", "llm", "human", "reused")
    summary = {line.split()[0]: line.split() for line in block.splitlines()
               if line.split() and line.split()[0] in names}
    assert len(summary) == 6
    assert {d: int(summary[d][1]) for d in summary} == {d: deciders.count(d) for d in summary}
    assert deciders.count("reused") == len(doc["reposts"])
    reached = re.search(r"reached the LLM: (\d+) of (\d+) items", run.stdout)
    assert reached and int(reached[1]) >= deciders.count("llm") and int(reached[2]) == len(samples)
    # A subscriber of the stack's result bus got one event per upload's answer, of the kind its row says.
    told = re.search(r"result events on \S+ \(what a team's rule receives\): (\d+) for (\d+) "
                     r"uploads \((.*)\)", run.stdout)
    assert told and int(told[1]) == int(told[2]) == len(samples)
    kinds = dict(part.rsplit(" ", 1) for part in told[3].split(", "))
    classified = sum(" classified " in row for row in rows.values())
    assert kinds == {"GIF classified": str(classified), "GIF not classified": str(len(rows) - classified)}
    # One upload a later stage decided is explained as `gifcat show` would: its decision, then each stage.
    explained = run.stdout.split("one decision, explained (gifcat show s3://", 1)[1].split("\n\n", 1)[0]
    key = explained.split(")", 1)[0].split("/", 1)[1]
    decider = next(d for d in ("embedding", "llm") if d in deciders)
    assert f" {decider} " in rows[key] and f"decided by {decider} at " in explained
    stages = explained.split("stages (the top candidates of each, with their evidence):\n", 1)[1]
    assert [line.split()[0] for line in stages.splitlines() if not line.startswith("      ")][:3] == [
        "tags", "rules", "embedding"
    ]
