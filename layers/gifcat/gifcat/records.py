"""Labelled metadata records (JSON Lines, the format of the reference TAXONOMY.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from gifcat.model import GifItem, GifMetadata


class LabelledRecord(BaseModel):
    id: str
    title: str = ""
    tags: list[str] = Field(default_factory=list)
    description: str = ""
    labels: list[str] = Field(default_factory=list)
    primary: str | None = None
    difficulty: str | None = None

    def item(self) -> GifItem:
        return GifItem(
            id=self.id,
            metadata=GifMetadata(title=self.title, tags=tuple(self.tags), description=self.description),
        )


class RecordError(ValueError):
    pass


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
