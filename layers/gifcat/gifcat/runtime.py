"""Composition root for the Lambda handlers: builds services from the function's environment once,
at cold start, so warm invocations pay nothing for it.

Nothing here is cached at module level: each handler builds its services once, at its own import, from
its own environment (the local runner imports several functions into one process).

The environment is read through typed models (HandlerEnvironment and its subclasses): RESULTS_TABLE,
STATE_MACHINE_ARN, RESULT_EVENT_BUS (the publish function), and optionally GIFCAT_SETTINGS /
GIFCAT_TAXONOMY (a path or s3://bucket/key), the LLM endpoint (GIFCAT_LLM_*) and, for the embed
function, GIFCAT_ARTEFACTS (where `gifcat learn` publishes). GIFCAT_OVERRIDES is merged by
`load_settings` itself (the CLI reads it too), and AWS_ENDPOINT_URL (the local embedded AWS) by boto3.
A variable that is missing or malformed fails the cold start with its name.

They are plain pydantic models over os.environ rather than pydantic-settings' BaseSettings: that does
the same for seven strings, but its import (its CLI source pulls argparse and asyncio) adds 50-120 ms
to every cold start on this machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gifcat.adapters.dynamodb import ResultsTable, record_request
from gifcat.adapters.eventbridge import EventBridgeResults
from gifcat.adapters.s3 import S3Objects, read_s3_uri
from gifcat.adapters.stepfunctions import Escalations, execution_name
from gifcat.application.publish import ResultPublisher
from gifcat.application.service import RerunTriage, StageStep, Triage
from gifcat.application.sweep import StuckSweep
from gifcat.config import ConfigError, Settings, load_settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.stages import Stage
from gifcat.domain.stages.factory import triage_stages
from gifcat.domain.taxonomy import Taxonomy, load_taxonomy

if TYPE_CHECKING:  # numpy: the zip functions import this module and have none
    from gifcat.application.learn import LearnJob

STATE_MACHINE_ARN = r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d+:stateMachine:[^\s:]+$"
ARTEFACTS_URI = r"^s3://[^/\s]+(/\S*)?$"


class HandlerEnvironment(BaseModel):
    """What every gifcat function may read from its environment (template.yaml sets it)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    settings: str | None = Field(None, alias="GIFCAT_SETTINGS")
    taxonomy: str | None = Field(None, alias="GIFCAT_TAXONOMY")
    # The template passes the LLM endpoint as stack parameters; they override `stages.llm`.
    llm_model: str | None = Field(None, alias="GIFCAT_LLM_MODEL")
    llm_base_url: str | None = Field(None, alias="GIFCAT_LLM_BASE_URL")
    llm_api_key_secret: str | None = Field(None, alias="GIFCAT_LLM_API_KEY_SECRET")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The model over `environ` (default os.environ). A blank value counts as unset: the template
        passes "" for a parameter the stack leaves empty. Raises ConfigError naming each bad variable."""
        env = os.environ if environ is None else environ
        try:
            return cls.model_validate({k: v for k, v in env.items() if v.strip()})
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None

    def llm_overrides(self) -> dict[str, Any]:
        llm = {
            key: value
            for key, value in (
                ("model", self.llm_model),
                ("base_url", self.llm_base_url),
                ("api_key_secret", self.llm_api_key_secret),
            )
            if value
        }
        return {"stages": {"llm": llm}} if llm else {}


class TriageEnvironment(HandlerEnvironment):
    """The triage functions write results (reruns' triage step takes the item over too)."""

    results_table: str = Field(alias="RESULTS_TABLE")
    # The stack's UploadSuffix: the trigger filters by prefix only, and triage compares the suffix in
    # any letter case (S3's filter would miss "Cat.GIF"); a rerun or backfill child of another key
    # writes nothing.
    upload_suffix: str = Field(".gif", alias="GIFCAT_UPLOAD_SUFFIX", min_length=1)


class EscalatingTriageEnvironment(TriageEnvironment):
    """The upload path's triage also starts the state machine for what it leaves undecided."""

    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", pattern=STATE_MACHINE_ARN)


class EmbedEnvironment(HandlerEnvironment):
    """The embed function may follow the artefacts `gifcat learn` publishes (s3://BUCKET/PREFIX);
    unset: the bundled memory only, and no S3 read for it."""

    artefacts: str | None = Field(None, alias="GIFCAT_ARTEFACTS", pattern=ARTEFACTS_URI)


class LearnEnvironment(HandlerEnvironment):
    """The learn function reads the results table and publishes under the artefacts location."""

    results_table: str = Field(alias="RESULTS_TABLE")
    artefacts: str = Field(alias="GIFCAT_ARTEFACTS", pattern=ARTEFACTS_URI)


class PublishEnvironment(HandlerEnvironment):
    """The publish function sends result events to the stack's bus, and reads no settings nor taxonomy."""

    event_bus: str = Field(alias="RESULT_EVENT_BUS", min_length=1)


class SweepEnvironment(HandlerEnvironment):
    """The sweep reads and writes the results table, and reads no settings nor taxonomy."""

    results_table: str = Field(alias="RESULTS_TABLE")


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            problems.append(f"{name} is not set")
        elif err["type"] == "string_pattern_mismatch" and name == "STATE_MACHINE_ARN":
            problems.append(f"{name}: not a state machine ARN ({err['input']!r})")
        elif err["type"] == "string_pattern_mismatch" and name == "GIFCAT_ARTEFACTS":
            problems.append(f"{name}: not s3://BUCKET[/PREFIX] ({err['input']!r})")
        else:
            problems.append(f"{name}: {err['msg']}")
    return "environment: " + "; ".join(problems)


def settings_and_taxonomy(env: HandlerEnvironment | None = None) -> tuple[Settings, Taxonomy]:
    env = env or HandlerEnvironment.from_environ()
    # GIFCAT_SETTINGS / GIFCAT_TAXONOMY may name S3 objects: config reads them through the S3 adapter.
    settings = load_settings(env.settings, overrides=env.llm_overrides(), read_uri=read_s3_uri)
    taxonomy = load_taxonomy(env.taxonomy or settings.taxonomy, read_uri=read_s3_uri)
    return settings, taxonomy


def build_triage(environ: Mapping[str, str] | None = None) -> Triage:
    """The triage function's service: S3 upload -> a result, or pending and an execution."""
    env = EscalatingTriageEnvironment.from_environ(environ)  # first: fails before any file or S3 read
    settings, taxonomy = settings_and_taxonomy(env)
    return Triage(
        settings,
        _triage_cascade(settings, taxonomy),
        S3Objects(),
        ResultsTable(env.results_table),
        Escalations(env.state_machine_arn),
        execution_name,
        upload_suffix=env.upload_suffix,
    )


def build_rerun_triage(environ: Mapping[str, str] | None = None) -> RerunTriage:
    """The state machine's triage step (reruns, backfill): takes the item over, no execution to start,
    so it needs the table only."""
    env = TriageEnvironment.from_environ(environ)
    settings, taxonomy = settings_and_taxonomy(env)
    return RerunTriage(
        settings,
        _triage_cascade(settings, taxonomy),
        S3Objects(),
        ResultsTable(env.results_table),
        record_request,
        upload_suffix=env.upload_suffix,
    )


def _triage_cascade(settings: Settings, taxonomy: Taxonomy) -> Cascade:
    return Cascade.from_settings(settings, triage_stages(settings, taxonomy), taxonomy)


def build_embedding_step(environ: Mapping[str, str] | None = None) -> StageStep:
    """The embed function's step: MiniLM (and CLIP) sessions load here, once per container. With
    GIFCAT_ARTEFACTS it follows the newest published artefact, first asked about at the first item
    (not here: a cold start makes no extra S3 request)."""
    from gifcat.adapters.artefact_store import S3ArtefactStore
    from gifcat.adapters.embeddings.factory import build_embedding_stage  # onnxruntime: this function only
    from gifcat.application.artefacts import RefreshingStageStep, embedding_refresh

    env = EmbedEnvironment.from_environ(environ)
    settings, taxonomy = settings_and_taxonomy(env)
    stage = build_embedding_stage(settings, taxonomy)
    if not env.artefacts:
        return _stage_step(settings, taxonomy, stage)
    objects = S3Objects()
    refresh = embedding_refresh(S3ArtefactStore(env.artefacts, objects.client), settings, stage)
    return RefreshingStageStep(refresh, objects, settings, record_request)


def build_llm_step(environ: Mapping[str, str] | None = None) -> StageStep:
    """The escalate function's step: the LLM client, its key and the prompt load here, once."""
    from gifcat.adapters.llm.factory import build_llm_stage  # openai: this function only

    settings, taxonomy = settings_and_taxonomy(HandlerEnvironment.from_environ(environ))
    return _stage_step(settings, taxonomy, build_llm_stage(settings, taxonomy))


def _stage_step(settings: Settings, taxonomy: Taxonomy, stage: Stage) -> StageStep:
    cascade = Cascade.from_settings(settings, [stage], taxonomy)
    return StageStep(cascade, stage.name, S3Objects(), settings, record_request)


def build_stuck_sweep(environ: Mapping[str, str] | None = None) -> StuckSweep:
    """The sweep function's job: mark failed the pending results whose run ended without recording."""
    return StuckSweep(ResultsTable(SweepEnvironment.from_environ(environ).results_table))


def build_result_publisher(environ: Mapping[str, str] | None = None) -> ResultPublisher:
    """The publish function's job: the results table's changes (its stream) as events on the bus."""
    return ResultPublisher(EventBridgeResults(PublishEnvironment.from_environ(environ).event_bus))


def build_learn_job(environ: Mapping[str, str] | None = None) -> LearnJob:
    """The learn function's job: the results table, the artefact store, and MiniLM with the training
    code (scikit-learn: the learn image only) to fit and judge artefacts."""
    from gifcat.adapters.artefact_store import S3ArtefactStore
    from gifcat.adapters.embeddings.factory import build_embedding_stage  # onnxruntime: image functions only
    from gifcat.adapters.training import EmbeddingTrainer  # scikit-learn, scipy: the learn image only
    from gifcat.application.learn import LearnJob

    env = LearnEnvironment.from_environ(environ)
    settings, taxonomy = settings_and_taxonomy(env)
    stage = build_embedding_stage(settings, taxonomy)
    return LearnJob(
        settings, taxonomy, ResultsTable(env.results_table), S3ArtefactStore(env.artefacts),
        EmbeddingTrainer(settings, taxonomy, stage),
    )
