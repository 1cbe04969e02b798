"""The cheap stages from settings and taxonomy; heavy ones are built where they are needed
(gifcat.runtime for the Lambdas, gifcat_tooling.pipeline for the CLI)."""

from __future__ import annotations

from gifcat.config import Settings
from gifcat.domain.model import StageName
from gifcat.domain.stages import Stage
from gifcat.domain.stages.triage import RuleStage, TagStage, TriageEvidence, TriageWeights
from gifcat.domain.taxonomy import Taxonomy

ORDER = (StageName.TAGS, StageName.RULES, StageName.EMBEDDING, StageName.LLM)


def triage_stages(settings: Settings, taxonomy: Taxonomy) -> list[Stage]:
    evidence = TriageEvidence(taxonomy, TriageWeights(**settings.stage_options("tags")))
    return [TagStage(evidence), RuleStage(evidence)]
