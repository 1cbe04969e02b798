"""Composition root for the Lambda handlers: builds services from the function's environment once,
at cold start, so warm invocations pay nothing for it.

Nothing here is cached at module level: each handler builds its services once, at its own import, from
its own environment (the local runner imports several functions into one process).

Environment: RESULTS_TABLE, STATE_MACHINE_ARN, and optionally GIFCAT_SETTINGS / GIFCAT_TAXONOMY
(a path or s3://bucket/key) and AWS_ENDPOINT_URL (the local embedded AWS).
"""

from __future__ import annotations

import os
from typing import Any

from gifcat.adapters.dynamodb import ResultsTable
from gifcat.adapters.s3 import S3Objects
from gifcat.adapters.stepfunctions import Escalations, execution_name
from gifcat.application.service import StageStep, Triage
from gifcat.config import Settings, load_settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.model import StageName
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import Taxonomy, load_taxonomy


def _llm_overrides() -> dict[str, Any]:
    """The template passes the LLM endpoint as GIFCAT_LLM_* variables (parameters of the stack)."""
    llm = {
        key: value
        for key, var in (
            ("model", "GIFCAT_LLM_MODEL"),
            ("base_url", "GIFCAT_LLM_BASE_URL"),
            ("api_key_secret", "GIFCAT_LLM_API_KEY_SECRET"),
        )
        if (value := os.environ.get(var))
    }
    return {"stages": {"llm": llm}} if llm else {}


def settings_and_taxonomy() -> tuple[Settings, Taxonomy]:
    settings = load_settings(overrides=_llm_overrides())
    return settings, load_taxonomy(os.environ.get("GIFCAT_TAXONOMY") or settings.taxonomy)


def build_triage(with_escalation: bool = True) -> Triage:
    settings, taxonomy = settings_and_taxonomy()
    cascade = Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy.version)
    return Triage(
        settings,
        cascade,
        S3Objects(),
        ResultsTable(os.environ["RESULTS_TABLE"]),  # reruns' triage step takes the item over too
        Escalations(os.environ["STATE_MACHINE_ARN"]) if with_escalation else None,
        execution_name,
    )


def build_stage_step(stage: StageName, **stage_options: Any) -> StageStep:
    settings, taxonomy = settings_and_taxonomy()
    if stage is StageName.EMBEDDING:
        from gifcat.domain.stages.embedding import EmbeddingStage

        built: Any = EmbeddingStage.from_settings(settings, taxonomy, **stage_options)
    else:
        from gifcat.domain.stages.llm import LlmStage

        built = LlmStage.from_settings(settings, taxonomy, **stage_options)
    cascade = Cascade.from_settings(settings, [built], taxonomy.version)
    return StageStep(cascade, stage, S3Objects(), settings)
