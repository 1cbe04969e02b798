"""Stages: small objects with one job each, to score an item and return candidates with evidence.

A stage never decides; the cascade compares its candidates with that stage's thresholds.
"""

from __future__ import annotations

from typing import Protocol

from gifcat.domain.model import Classification, GifItem, StageName, StageOutput


class Stage(Protocol):
    name: StageName

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        """Score `item`. `so_far` holds what earlier stages found (their traces and top candidates)."""
        ...
