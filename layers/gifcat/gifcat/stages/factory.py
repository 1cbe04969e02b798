"""The cheap stages from settings and taxonomy; heavy ones are built where they are needed
(gifcat.runtime for the Lambdas, gifcat.pipeline for the CLI)."""

from __future__ import annotations

from gifcat.config import Settings
from gifcat.model import StageName
from gifcat.stages import Stage
from gifcat.stages.triage import RuleStage, TagStage, TriageEvidence, TriageWeights
from gifcat.taxonomy import Taxonomy

ORDER = (StageName.TAGS, StageName.RULES, StageName.EMBEDDING, StageName.LLM)


def triage_stages(settings: Settings, taxonomy: Taxonomy) -> list[Stage]:
    evidence = TriageEvidence(taxonomy, TriageWeights(**settings.stage_options("tags")))
    return [TagStage(evidence), RuleStage(evidence)]
