"""The demo's uploads (gifcat_tooling/local/demo_samples.json) are not copies of the labelled examples:
the bundled kNN memory is those examples, and a demo decided by recalling one would show nothing."""

from __future__ import annotations

import json
from importlib import resources

from gifcat.domain.records import read_records
from tests.conftest import ROOT


def test_no_demo_upload_repeats_a_bundled_example_s_description() -> None:
    samples = json.loads(
        resources.files("gifcat_tooling.local").joinpath("demo_samples.json").read_text(encoding="utf-8")
    )["samples"]
    examples = read_records(ROOT / "layers/gifcat/gifcat/config/examples.jsonl")
    known = {r.description.strip().lower() for r in examples if r.description.strip()}
    described = [s for s in samples if (s.get("metadata") or {}).get("description")]
    assert len(described) >= 3  # the uploads the later stages read
    for sample in described:
        assert sample["metadata"]["description"].strip().lower() not in known, sample["key"]
