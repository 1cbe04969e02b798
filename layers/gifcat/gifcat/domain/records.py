"""Labelled metadata records (JSON Lines, the format of the reference TAXONOMY.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from gifcat.domain.model import GifItem, GifMetadata


class LabelledRecord(BaseModel):
    id: str
    title: str = ""
    tags: list[str] = Field(default_factory=list)
    description: str = ""
    labels: list[str] = Field(default_factory=list)
    primary: str | None = None
    difficulty: str | None = None
    kind: str | None = None  # dev-hard's trap kinds (homonym, irony, injection...); any value is kept

    def item(self) -> GifItem:
        return GifItem(
            id=self.id,
            metadata=GifMetadata(title=self.title, tags=tuple(self.tags), description=self.description),
        )


class RecordError(ValueError):
    pass


def from_results(
    items: Iterable[dict[str, Any]], decided_by: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Classified result items as labelled records (the dev.jsonl format), for the embedding stage's kNN
    vote: what the LLM decided teaches the cheaper stage (`decided_by` picks whose answers to keep)."""
    keep = set(decided_by) if decided_by else None
    records = []
    for item in items:
        if item.get("status") != "classified" or not item.get("primary"):
            continue
        if keep is not None and item.get("decided_by") not in keep:
            continue
        records.append(
            {
                "id": item["pk"],
                "title": item.get("title") or "",
                "tags": list(item.get("tags") or []),
                "description": item.get("description") or "",
                "labels": list(item.get("labels") or [item["primary"]]),
                "primary": item["primary"],
                "difficulty": f"exported:{item.get('decided_by')}",
            }
        )
    return records


def read_records(path: str | Path, *, require_labels: bool = True) -> list[LabelledRecord]:
    return list(iter_records(path, require_labels=require_labels))


def iter_records(path: str | Path, *, require_labels: bool = True) -> Iterator[LabelledRecord]:
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = LabelledRecord.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                raise RecordError(f"{path}:{lineno}: not a valid record: {exc}") from exc
            if require_labels and not record.labels:
                raise RecordError(f"{path}:{lineno}: record {record.id!r} has no labels")
            yield record
