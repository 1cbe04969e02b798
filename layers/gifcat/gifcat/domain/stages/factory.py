"""The cheap stages from settings and taxonomy; heavy ones are built where they are needed
(gifcat.runtime for the Lambdas, gifcat_tooling.pipeline for the CLI)."""

from __future__ import annotations

from gifcat.config import Settings, StageOptions
from gifcat.domain.model import StageName
from gifcat.domain.stages import Stage
from gifcat.domain.stages.triage import RuleStage, TagStage, TriageEvidence, TriageWeights
from gifcat.domain.taxonomy import Taxonomy

ORDER = (StageName.TAGS, StageName.RULES, StageName.EMBEDDING, StageName.LLM)


def triage_stages(settings: Settings, taxonomy: Taxonomy) -> list[Stage]:
    evidence = TriageEvidence(taxonomy, settings.options("tags", TriageWeights))
    # The rule stage reads the tag stage's weights: its own section holds thresholds only, so any
    # other name there is a typo (refused by name, as in every stage's section).
    settings.options("rules", StageOptions)
    return [TagStage(evidence), RuleStage(evidence)]
