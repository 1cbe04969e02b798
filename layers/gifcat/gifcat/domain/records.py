"""Labelled metadata records (JSON Lines, the format of the reference TAXONOMY.md)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from gifcat.config import describe_validation_error
from gifcat.domain.model import GifItem, GifMetadata, Status
from gifcat.domain.result import ResultItem


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

    def content_key(self) -> tuple[str, tuple[str, ...], str]:
        """What the record says, without its id: two records with the same key are the same GIF's
        metadata (a repost), up to case, spacing and the order of the tags."""

        def norm(text: str) -> str:
            return " ".join(text.casefold().split())

        return norm(self.title), tuple(sorted(norm(t) for t in self.tags)), norm(self.description)

    def primary_among(self, categories: Collection[str]) -> str | None:
        """The category this record teaches, of `categories`: its primary if that is one, else its first
        label that is (a record written under an older taxonomy may name a category since removed)."""
        if self.primary in categories:
            return self.primary
        return next((label for label in self.labels if label in categories), None)


def foreign_labels(records: Iterable[LabelledRecord], categories: Collection[str]) -> dict[str, list[str]]:
    """Each label that is not one of `categories`, with the ids of the records that carry it."""
    found: dict[str, list[str]] = {}
    for record in records:
        for label in dict.fromkeys([*record.labels, *([record.primary] if record.primary else [])]):
            if label not in categories:
                found.setdefault(label, []).append(record.id)
    return found


class RecordError(ValueError):
    pass


def from_results(
    items: Iterable[ResultItem], decided_by: Iterable[str] | None = None
) -> list[LabelledRecord]:
    """Classified result items as labelled records (the dev.jsonl format), for the embedding stage's kNN
    vote: what the LLM decided teaches the cheaper stage (`decided_by` picks whose answers to keep)."""
    keep = set(decided_by) if decided_by else None
    records = []
    for item in items:
        if item.status is not Status.CLASSIFIED or not item.primary:
            continue
        if item.reused_from:  # another upload's answer, for the same text: exported once, with it
            continue
        decider = str(item.decided_by) if item.decided_by else None
        if keep is not None and decider not in keep:
            continue
        records.append(
            LabelledRecord(
                id=item.pk,
                title=item.title or "",
                tags=list(item.tags or []),
                description=item.description or "",
                labels=list(item.labels or [item.primary]),
                primary=item.primary,
                difficulty=f"exported:{decider}",
            )
        )
    return records


def read_records(path: str | Path, *, require_labels: bool = True) -> list[LabelledRecord]:
    return list(iter_records(path, require_labels=require_labels))


def iter_records(path: str | Path, *, require_labels: bool = True) -> Iterator[LabelledRecord]:
    with Path(path).open(encoding="utf-8-sig") as fh:  # a byte-order mark, as Windows editors write, is fine
        yield from parse_records(fh, str(path), require_labels=require_labels)


def parse_records(
    lines: Iterable[str], where: str, *, require_labels: bool = True
) -> Iterator[LabelledRecord]:
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = LabelledRecord.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise RecordError(f"{where}:{lineno}: not a valid record: {exc}") from exc
        except ValidationError as exc:  # one line: each field and what is wrong with it
            what = f"{where}:{lineno}: not a valid record"
            raise RecordError(describe_validation_error(what, exc)) from exc
        if require_labels and not record.labels:
            raise RecordError(f"{where}:{lineno}: record {record.id!r} has no labels")
        if record.primary and record.labels and record.primary not in record.labels:
            # Accuracy counts a label as right and the classifier learns the primary: they must agree.
            raise RecordError(
                f"{where}:{lineno}: record {record.id!r}: primary {record.primary!r} is not one of its "
                f"labels {record.labels}"
            )
        yield record


def load_labelled(source: str | Path) -> list[LabelledRecord]:
    """Labelled examples for the embedding stage: "bundled" (the examples shipped with gifcat, the
    reference dev set) or a JSONL path. A record without labels is read and later left out."""
    if source == "bundled":
        text = resources.files("gifcat.config").joinpath("examples.jsonl").read_text(encoding="utf-8")
        return list(parse_records(text.splitlines(), "bundled examples.jsonl", require_labels=False))
    return read_records(source, require_labels=False)
