"""Stages: small objects with one job each, to score an item and return candidates with evidence.

A stage never decides; the cascade compares its candidates with that stage's thresholds.
Stages subclass `Stage` to inherit its no-op `prepare`; any object with the same members is one too.
"""

from __future__ import annotations

from typing import Protocol

from gifcat.domain.model import Classification, GifItem, StageName, StageOutput

# Why a GIF with no title, tags or description is skipped when no stage can look at its frames: no CLIP
# artefacts for the embedding stage, and an LLM endpoint that reads no images.
NO_TEXT_NO_IMAGE_MODEL = "no text and no image model"


class Stage(Protocol):
    name: StageName

    def prepare(self) -> None:
        """One-time loading (models, a server) before the first item; called before each item is timed,
        so it must be cheap once done. What it raises is the stage's error for that item."""
        return None

    def wants_gif(self, item: GifItem) -> bool:
        """Whether scoring `item` reads its GIF bytes (the state machine's step reads them from S3
        only then)."""
        return False

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        """Score `item`. `so_far` holds what earlier stages found (their traces and top candidates)."""
        ...
