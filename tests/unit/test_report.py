"""The evaluation report: JSON as given, a real PNG, one self-contained HTML file, a text table."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gifcat.report import render_text, write_report

CATEGORIES = ["funny", "food", "love", "<script>"]


def realistic_summary() -> dict[str, Any]:
    labels = [*CATEGORIES, "undecided"]
    matrix = [
        [80, 2, 1, 0, 1],
        [1, 70, 0, 0, 0],
        [3, 0, 60, 2, 0],
        [0, 1, 0, 99, 0],
    ]
    return {
        "n": 320,
        "accuracy": 0.8437,
        "micro_f1": 0.7123,
        "undecided": 1,
        "llm_share": 0.2219,
        "command": "gifcat eval --data ../shared/data/dev.jsonl --report out/ --tags '<b>'",
        "stages": {
            "tags": {
                "decided": 171,
                "share": 0.5344,
                "accuracy": 0.9883,
                "micro_f1": 0.8,
                "latency_ms": {"p50": 0.05, "p95": 0.1},
            },
            "rules": {
                "decided": 37,
                "share": 0.1156,
                "accuracy": 0.91,
                "micro_f1": 0.7,
                "latency_ms": {"p50": 0.2, "p95": 0.4},
            },
            "embedding": {
                "decided": 41,
                "share": 0.1281,
                "accuracy": 0.85,
                "micro_f1": 0.66,
                "latency_ms": {"p50": 6.1, "p95": 9.8},
            },
            "llm": {
                "decided": 70,
                "share": 0.2188,
                "accuracy": 0.61,
                "micro_f1": 0.55,
                "latency_ms": {"p50": 310.0, "p95": 802.5},
            },
        },
        "confusion": {"labels": labels, "matrix": matrix},
        "cost": {
            "per_1000_usd": 0.1234,
            "llm_per_1000_usd": 0.1,
            "lambda_per_1000_usd": 0.0234,
            "by_model_per_1000_usd": {"gpt-4o-mini": 0.05, "gpt-4.1-mini": 0.13},
        },
        "latency_ms": {"p50": 1.0, "p95": 300.0},
        "operating_curve": [
            {"threshold": t / 10, "llm_share": 0.05 + t * 0.09, "accuracy": 0.7 + t * 0.02, "chosen": t == 2}
            for t in range(10)
        ],
        "operating_point": {"threshold": 0.2, "llm_share": 0.23, "accuracy": 0.74},
        "baselines": {
            "llm": {"accuracy": 0.5, "llm_share": 1.0, "cost_per_1000_usd": 0.5},
            "embedding": {"accuracy": 0.62, "llm_share": 0.0, "cost_per_1000_usd": 0.02},
            "tags": {"accuracy": 0.45},  # no cost position: drawn as a reference line
        },
    }


def test_report_renders_every_artefact(tmp_path: Path) -> None:
    summary = realistic_summary()
    paths = write_report(summary, tmp_path / "out")
    assert set(paths) == {"json", "png", "html"}
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == summary
    with Image.open(paths["png"]) as img:
        img.verify()
        assert img.format == "PNG"

    page = paths["html"].read_text(encoding="utf-8")
    assert "0.844" in page  # accuracy
    assert "0.712" in page  # micro-F1
    for decided in ("171", "37", "41", "70"):
        assert f">{decided}<" in page
    assert "$0.1234" in page  # cost per 1,000
    assert "22.2%" in page  # LLM share
    assert "310.00" in page and "802.50" in page  # LLM latency p50 / p95
    assert ">undecided<" in page


def test_html_is_self_contained_with_the_embedded_png(tmp_path: Path) -> None:
    paths = write_report(realistic_summary(), tmp_path)
    page = paths["html"].read_text(encoding="utf-8")
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match
    assert base64.b64decode(match.group(1)) == paths["png"].read_bytes()
    assert "<style>" in page
    # Nothing fetched from elsewhere: no external scripts, stylesheets or images.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "<script" not in page


def test_strings_are_escaped(tmp_path: Path) -> None:
    page = write_report(realistic_summary(), tmp_path)["html"].read_text(encoding="utf-8")
    assert "&lt;script&gt;" in page
    assert "<script>" not in page
    assert "--tags &#x27;&lt;b&gt;&#x27;" in page  # the command, verbatim but escaped


def test_confusion_matrix_has_gold_rows_and_predicted_columns(tmp_path: Path) -> None:
    page = write_report(realistic_summary(), tmp_path)["html"].read_text(encoding="utf-8")
    table = page.split("Confusion matrix", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 1 + 4  # header + one row per gold category
    assert '<td class="diag">99</td>' in table


@pytest.mark.parametrize(
    "drop",
    [
        ("operating_curve", "operating_point", "baselines"),
        ("cost", "confusion", "command"),
        ("stages", "latency_ms", "micro_f1", "llm_share", "undecided"),
    ],
)
def test_missing_optional_keys_do_not_crash(tmp_path: Path, drop: tuple[str, ...]) -> None:
    summary = realistic_summary()
    for key in drop:
        summary.pop(key)
    paths = write_report(summary, tmp_path)
    assert paths["html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with Image.open(paths["png"]) as img:
        img.verify()
    assert "accuracy: 0.844" in render_text(summary)


def test_minimal_summary_from_current_evaluation(tmp_path: Path) -> None:
    """What evaluation.Report.summary() returns today: no curve, no cost, stages without F1/latency."""
    summary = {
        "n": 3,
        "accuracy": 0.6667,
        "micro_f1": 0.5,
        "undecided": 1,
        "stages": {"tags": {"decided": 2, "share": 0.6667, "accuracy": 1.0}},
        "statuses": {"classified": 2, "undecided": 1},
        "llm_share": 0.0,
        "latency_ms": {"p50": 0.1, "p95": 0.2},
    }
    paths = write_report(copy.deepcopy(summary), tmp_path)
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == summary
    assert "data:image/png;base64," in paths["html"].read_text(encoding="utf-8")


def test_render_text_table() -> None:
    text = render_text(realistic_summary())
    assert "accuracy: 0.844" in text
    assert "cost / 1,000 GIFs: $0.1234" in text
    stage_lines = [line for line in text.splitlines() if line.split()[:1] in (["tags"], ["llm"])]
    assert any("171" in line for line in stage_lines)
    assert "gpt-4.1-mini" in text
    assert "gifcat eval --data" in text
