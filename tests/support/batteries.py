"""The planted-text batteries of tests/data/injections (their README says who wrote each and which
rounds of the instruction screen were developed on it): rows read as the metadata a stage sees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gifcat.domain.model import GifMetadata

BATTERIES = Path(__file__).resolve().parents[1] / "data" / "injections"


def battery(name: str, part: str) -> list[dict[str, Any]]:
    """A battery's `attacks` or `benign` rows."""
    lines = (BATTERIES / name / f"{part}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def as_metadata(row: dict[str, Any]) -> GifMetadata:
    """The row's text in the field it names, the other fields empty."""
    text, field = row["text"], row["field"]
    return GifMetadata(title=text if field == "title" else "", tags=(text,) if field == "tag" else (),
                       description=text if field == "description" else "")
