"""Labelled records: reading JSON Lines, and turning result items back into labelled examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gifcat.domain.model import Classification, GifMetadata, StageName, Status
from gifcat.domain.records import LabelledRecord, RecordError, from_results, read_records
from gifcat.domain.result import ObjectRef, ResultItem, result_item


def test_bad_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a", "labels": ["funny"]}\n{oops\n')
    with pytest.raises(RecordError, match=r"r\.jsonl:2"):
        read_records(path)
    path.write_text('{"id": "a", "labels": []}\n')
    with pytest.raises(RecordError, match="has no labels"):
        read_records(path)


def test_only_classified_results_of_the_chosen_deciders_become_examples() -> None:
    def item(n: int, classification: Classification, metadata: GifMetadata | None = None) -> ResultItem:
        return result_item(ObjectRef(bucket="b", key=str(n)), classification, metadata=metadata)

    items = [
        item(
            1,
            Classification(status=Status.CLASSIFIED, primary="sad", labels=["sad"], decided_by=StageName.LLM),
            GifMetadata(title="T", tags=("x",), description="D"),
        ),
        item(
            2,
            Classification(
                status=Status.CLASSIFIED, primary="food", labels=["food"], decided_by=StageName.TAGS
            ),
        ),
        item(3, Classification(status=Status.FAILED, reason="bad")),
        item(4, Classification(status=Status.PENDING)),
    ]
    assert [r.id for r in from_results(items)] == ["s3://b/1", "s3://b/2"]
    # An upload that took another's answer (the same bytes and metadata) is that one's example, once.
    copy = items[0].model_copy(update={"pk": "s3://b/1-copy", "reused_from": "s3://b/1"})
    assert [r.id for r in from_results([*items, copy])] == ["s3://b/1", "s3://b/2"]
    (only_llm,) = from_results(items, ["llm"])
    assert only_llm == LabelledRecord(
        id="s3://b/1",
        title="T",
        tags=["x"],
        description="D",
        labels=["sad"],
        primary="sad",
        difficulty="exported:llm",
    )
    # what `gifcat export` writes: the dev.jsonl format
    assert json.loads(only_llm.model_dump_json(exclude_none=True)) == {
        "id": "s3://b/1",
        "title": "T",
        "tags": ["x"],
        "description": "D",
        "labels": ["sad"],
        "primary": "sad",
        "difficulty": "exported:llm",
    }
