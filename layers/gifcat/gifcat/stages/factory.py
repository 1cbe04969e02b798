"""Builds the stages a run needs from settings and taxonomy, loading heavy models only when asked."""

from __future__ import annotations

from gifcat.config import Settings
from gifcat.model import StageName
from gifcat.stages import Stage
from gifcat.stages.triage import RuleStage, TagStage
from gifcat.taxonomy import Taxonomy

ORDER = (StageName.TAGS, StageName.RULES, StageName.EMBEDDING, StageName.LLM)


def triage_stages(settings: Settings, taxonomy: Taxonomy) -> list[Stage]:
    tags = TagStage(taxonomy, **settings.stage_options("tags"))
    return [tags, RuleStage(taxonomy, tags, **settings.stage_options("rules"))]


def stages_until(
    until: StageName, settings: Settings, taxonomy: Taxonomy, **llm_options: object
) -> list[Stage]:
    """The stages from the cheapest up to and including `until`."""
    wanted = ORDER[: ORDER.index(until) + 1]
    stages: list[Stage] = triage_stages(settings, taxonomy)
    if StageName.EMBEDDING in wanted:
        from gifcat.stages.embedding import EmbeddingStage

        stages.append(EmbeddingStage.from_settings(settings, taxonomy))
    if StageName.LLM in wanted:
        from gifcat.stages.llm import LlmStage

        stages.append(LlmStage.from_settings(settings, taxonomy, **llm_options))  # type: ignore[arg-type]
    return stages
