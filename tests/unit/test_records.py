"""Labelled records: reading JSON Lines, and turning result items back into labelled examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from gifcat.domain.records import RecordError, from_results, read_records


def test_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a", "labels": ["funny"]}\n{oops\n')
    with pytest.raises(RecordError, match=r"r\.jsonl:2"):
        read_records(path)
    path.write_text('{"id": "a", "labels": []}\n')
    with pytest.raises(RecordError, match="has no labels"):
        read_records(path)


def test_only_classified_results_of_the_chosen_deciders_become_examples() -> None:
    items = [
        {
            "pk": "s3://b/1",
            "status": "classified",
            "primary": "sad",
            "labels": ["sad"],
            "decided_by": "llm",
            "title": "T",
            "tags": ["x"],
            "description": "D",
        },
        {
            "pk": "s3://b/2",
            "status": "classified",
            "primary": "food",
            "labels": ["food"],
            "decided_by": "tags",
        },
        {"pk": "s3://b/3", "status": "failed", "reason": "bad"},
        {"pk": "s3://b/4", "status": "pending"},
    ]
    assert [r["id"] for r in from_results(items)] == ["s3://b/1", "s3://b/2"]
    (only_llm,) = from_results(items, ["llm"])
    assert only_llm == {
        "id": "s3://b/1",
        "title": "T",
        "tags": ["x"],
        "description": "D",
        "labels": ["sad"],
        "primary": "sad",
        "difficulty": "exported:llm",
    }
