"""Builders for LLM-stage tests: a small taxonomy, settings with stage knobs overridden, items."""

from __future__ import annotations

from typing import Any

from gifcat.config import Settings, bundled_text, parse_yaml
from gifcat.domain.model import Candidate, Classification, GifItem, GifMetadata, StageName, StageTrace, Status
from gifcat.domain.taxonomy import Category, Taxonomy

SMALL = Taxonomy(
    version="test-1",
    categories=(
        Category(name="funny", description="humour, fails, memes", examples=("someone slips on a banana",)),
        Category(name="food", description="food, drink, cooking", examples=("a cheesy pizza slice",)),
        Category(name="gaming", description="video games, esports", examples=("a streamer rages",)),
        Category(name="cute", description="adorable, aww", examples=("a sleepy puppy",)),
        Category(name="sad", description="crying, heartbreak"),
    ),
)


def settings_with(**llm: Any) -> Settings:
    """The bundled settings with `stages.llm` knobs replaced (fast retries unless given)."""
    data = parse_yaml(bundled_text("settings.yaml"), "settings")
    section = data["stages"]["llm"]
    # Any category by default: tests of the mechanism should not depend on the candidate restriction.
    section.update(
        {
            "backoff_s": 0.01,
            "max_backoff_s": 0.05,
            "timeout_s": 2.0,
            "api_key_secret": None,
            "choose_from_top": 0,
        }
    )
    section.update(llm)
    return Settings.model_validate(data)


def item(title: str = "", tags: tuple[str, ...] = (), description: str = "", id: str = "t-1") -> GifItem:
    return GifItem(id=id, metadata=GifMetadata(title=title, tags=tags, description=description))


def pending(*candidates: tuple[str, float]) -> Classification:
    """A classification so far whose last stage found `candidates` (category, score)."""
    trace = StageTrace(
        stage=StageName.EMBEDDING,
        decided=False,
        elapsed_ms=1.0,
        candidates=[Candidate(category=c, score=s, evidence=[f"embedding: {c}"]) for c, s in candidates],
    )
    return Classification(status=Status.PENDING, stages=[trace])
