"""`gifcat discover` with the real MiniLM on the reference dev set: take a category out of the taxonomy and
its records must come back as a cluster flagged as a candidate new category.

Every category of the bundled taxonomy is taken out in turn (the same settings for all, chosen by
scripts/measure_discovery.py), in-process with one encoder; the command itself runs once as a user runs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gifcat.config import bundled_text, load_settings
from gifcat.domain.records import read_records
from gifcat.domain.stages.embedding import EmbeddingStage, item_text
from gifcat.domain.taxonomy import load_taxonomy
from gifcat_tooling.discovery import Discovery, DiscoveryOptions, discover, items_from_metadata
from gifcat_tooling.training import CachingEncoder
from tests.conftest import DEV_DATA, ROOT

GIFCAT = [sys.executable, "-m", "gifcat_tooling.cli"]
CATEGORIES = load_taxonomy().names
# Measured (scripts/measure_discovery.py, README "Discovering new categories"): taken out, these feelings'
# records spread over clusters near the other feelings (angry near sad, cute near animals), and under half
# come back flagged at the chosen threshold. Strict: the day they come back, the test says so.
NOT_RECOVERED = {"funny", "cute", "sad", "angry"}
RECORDS = {r.id: r for r in read_records(DEV_DATA)}


def taxonomy_without(category: str, path: Path) -> Path:
    """A copy of the bundled taxonomy.yaml with one category removed."""
    doc = yaml.safe_load(bundled_text("taxonomy.yaml"))
    doc["categories"] = [c for c in doc["categories"] if c["name"] != category]
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def recovered(clusters: list[dict[str, Any]], category: str) -> tuple[float, float]:
    """(share of the category's records in flagged clusters, share labelled with it of the flagged
    cluster holding most of them): the brief's 'comes back as a flagged cluster'."""
    mine = {rid for rid, r in RECORDS.items() if r.primary == category}
    flagged = [c for c in clusters if c["candidate_new"]]
    in_flagged = sum(len(mine & set(c["members"])) for c in flagged)
    if not in_flagged:
        return 0.0, 0.0
    home = max(flagged, key=lambda c: len(mine & set(c["members"])))
    purity = sum(category in RECORDS[m].labels for m in home["members"]) / home["size"]
    return in_flagged / len(mine), purity


@pytest.fixture(scope="module")
def encoder() -> Iterator[tuple[Any, str]]:
    stage = EmbeddingStage.from_settings(load_settings(), load_taxonomy(), labelled=[])
    yield CachingEncoder(stage.text), stage.text_identity  # dev's texts are embedded once for all cases


@pytest.mark.parametrize(
    "category",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason="measured: not recovered on dev"))
        if c in NOT_RECOVERED else c
        for c in CATEGORIES
    ],
)
def test_a_category_taken_out_comes_back_as_a_flagged_cluster(
    category: str, encoder: tuple[Any, str], tmp_path: Path
) -> None:
    text, identity = encoder
    taxonomy = load_taxonomy(str(taxonomy_without(category, tmp_path / "taxonomy.yaml")))
    assert category not in taxonomy.names
    stage = EmbeddingStage(taxonomy, text, identity)  # prototypes of the remaining categories only
    generic = taxonomy.normalised_generic_tags
    items, skipped = items_from_metadata(
        ((r.id, r.item().metadata) for r in RECORDS.values()),
        lambda m: item_text(m.title, m.tags, m.description, generic),
    )
    assert not skipped
    result: Discovery = discover(items, stage, DiscoveryOptions.from_mapping(load_settings().discovery))
    clusters = result.to_public()["clusters"]
    assert sorted(m for c in clusters for m in c["members"]) == sorted(RECORDS)
    assert all(c["nearest_category"] in taxonomy.names for c in clusters)
    recall, purity = recovered(clusters, category)
    assert recall > 0.5, f"only {recall:.0%} of {category}'s records are in flagged clusters"
    assert purity > 0.5, f"the flagged cluster holding most {category} records is {purity:.0%} {category}"


def test_the_command_flags_the_removed_category_and_writes_the_report(tmp_path: Path) -> None:
    # The taxonomy's first category that discovery recovers: this checks the command, not the method.
    category = next(c for c in CATEGORIES if c not in NOT_RECOVERED)
    reduced = taxonomy_without(category, tmp_path / "taxonomy.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers/gifcat")}
    run = subprocess.run(
        [*GIFCAT, "discover", "--data", str(DEV_DATA), "--taxonomy", str(reduced), "--json",
         "--report", str(tmp_path / "report")],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    clusters = out["clusters"]
    assert set(clusters[0]) == {
        "id", "size", "members", "terms", "nearest_category", "similarity", "candidate_new"
    }
    assert sorted(m for c in clusters for m in c["members"]) == sorted(RECORDS)
    assert all(c["size"] == len(c["members"]) and c["terms"] for c in clusters)
    assert category not in {c["nearest_category"] for c in clusters}
    recall, purity = recovered(clusters, category)
    assert recall > 0.5 and purity > 0.5
    report = tmp_path / "report"
    assert (report / "map.png").read_bytes()[:4] == b"\x89PNG"
    assert "candidate" in (report / "index.md").read_text(encoding="utf-8")
    assert json.loads((report / "discovery.json").read_text(encoding="utf-8"))["clusters"] == clusters


def test_too_few_items_is_a_clear_error(tmp_path: Path) -> None:
    data = tmp_path / "few.jsonl"
    lines = [{"id": "a", "title": "Pizza"}, {"id": "b", "title": ""}, {"id": "c", "title": "Goal!"}]
    data.write_text("\n".join(json.dumps(r) for r in lines) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers/gifcat")}
    run = subprocess.run([*GIFCAT, "discover", "--data", str(data), "--clusters", "3"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert run.returncode == 2
    assert "skipped b: no title, tags or description" in run.stderr
    assert "2 item(s) with text from 3 read: too few to cluster into 3 clusters" in run.stderr
    assert run.stdout == ""
    data.write_text('{"id": "a", "title": "Pizza"}\n{"id": "b", "tags": "not a list"}\n', encoding="utf-8")
    run = subprocess.run([*GIFCAT, "discover", "--data", str(data)],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert run.returncode == 2 and "few.jsonl:2: not a valid record" in run.stderr
