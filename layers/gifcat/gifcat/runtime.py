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

from gifcat.adapters.dynamodb import ResultsTable, record_request
from gifcat.adapters.s3 import S3Objects, read_s3_uri
from gifcat.adapters.stepfunctions import Escalations, execution_name
from gifcat.application.service import RerunTriage, StageStep, Triage
from gifcat.config import Settings, load_settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.stages import Stage
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
    # GIFCAT_SETTINGS / GIFCAT_TAXONOMY may name S3 objects: config reads them through the S3 adapter.
    settings = load_settings(overrides=_llm_overrides(), read_uri=read_s3_uri)
    taxonomy = load_taxonomy(os.environ.get("GIFCAT_TAXONOMY") or settings.taxonomy, read_uri=read_s3_uri)
    return settings, taxonomy


def build_triage() -> Triage:
    """The triage function's service: S3 upload -> a result, or pending and an execution."""
    settings, taxonomy = settings_and_taxonomy()
    return Triage(
        settings,
        _triage_cascade(settings, taxonomy),
        S3Objects(),
        ResultsTable(os.environ["RESULTS_TABLE"]),
        Escalations(os.environ["STATE_MACHINE_ARN"]),
        execution_name,
    )


def build_rerun_triage() -> RerunTriage:
    """The state machine's triage step (console reruns): takes the item over, no execution to start."""
    settings, taxonomy = settings_and_taxonomy()
    return RerunTriage(
        settings,
        _triage_cascade(settings, taxonomy),
        S3Objects(),
        ResultsTable(os.environ["RESULTS_TABLE"]),
        record_request,
    )


def _triage_cascade(settings: Settings, taxonomy: Taxonomy) -> Cascade:
    return Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy.version)


def build_embedding_step() -> StageStep:
    """The embed function's step: MiniLM (and CLIP) sessions load here, once per container."""
    from gifcat.adapters.embeddings.factory import build_embedding_stage  # onnxruntime: this function only

    settings, taxonomy = settings_and_taxonomy()
    return _stage_step(settings, taxonomy, build_embedding_stage(settings, taxonomy))


def build_llm_step() -> StageStep:
    """The escalate function's step: the LLM client, its key and the prompt load here, once."""
    from gifcat.adapters.llm.factory import build_llm_stage  # openai: this function only

    settings, taxonomy = settings_and_taxonomy()
    return _stage_step(settings, taxonomy, build_llm_stage(settings, taxonomy))


def _stage_step(settings: Settings, taxonomy: Taxonomy, stage: Stage) -> StageStep:
    cascade = Cascade.from_settings(settings, [stage], taxonomy.version)
    return StageStep(cascade, stage.name, S3Objects(), settings, record_request)
