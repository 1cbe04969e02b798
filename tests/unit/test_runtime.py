"""The composition root reads the handlers' environment through one typed model: a missing or malformed
variable fails at cold start with its name, not as a KeyError deep in a build."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from gifcat.adapters.artefact_store import S3ArtefactStore
from gifcat.application.artefacts import RefreshingStageStep
from gifcat.config import ConfigError, Settings
from gifcat.domain.stages.embedding import EmbeddingOptions, EmbeddingStage
from gifcat.domain.taxonomy import Taxonomy
from gifcat.runtime import (
    EmbedEnvironment,
    EscalatingTriageEnvironment,
    HandlerEnvironment,
    LearnEnvironment,
    TriageEnvironment,
    build_embedding_step,
    build_learn_job,
    build_llm_step,
    build_rerun_triage,
    build_triage,
)

ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:gifcat-classify"
VARS = (
    "RESULTS_TABLE",
    "STATE_MACHINE_ARN",
    "GIFCAT_SETTINGS",
    "GIFCAT_TAXONOMY",
    "GIFCAT_OVERRIDES",
    "GIFCAT_LLM_MODEL",
    "GIFCAT_LLM_BASE_URL",
    "GIFCAT_LLM_API_KEY_SECRET",
    "GIFCAT_ARTEFACTS",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # the adapters build boto3 clients (no calls)


def test_triage_without_results_table_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_MACHINE_ARN", ARN)
    with pytest.raises(ConfigError, match=r"^environment: RESULTS_TABLE is not set$"):
        build_triage()


def test_escalating_triage_without_state_machine_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULTS_TABLE", "gifcat-results")
    with pytest.raises(ConfigError, match=r"^environment: STATE_MACHINE_ARN is not set$"):
        build_triage()
    # The reruns' triage step does not escalate: it needs the table only.
    rerun = build_rerun_triage()
    assert not hasattr(rerun, "escalator") and rerun.store.table_name == "gifcat-results"


def test_rerun_triage_without_results_table_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_MACHINE_ARN", ARN)
    with pytest.raises(ConfigError, match=r"^environment: RESULTS_TABLE is not set$"):
        build_rerun_triage()


def test_every_problem_is_named_at_once_and_blank_counts_as_unset() -> None:
    with pytest.raises(ConfigError) as err:
        EscalatingTriageEnvironment.from_environ({"RESULTS_TABLE": "  ", "STATE_MACHINE_ARN": ""})
    assert str(err.value) == "environment: RESULTS_TABLE is not set; STATE_MACHINE_ARN is not set"


def test_a_state_machine_arn_that_is_not_one_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^environment: STATE_MACHINE_ARN: not a state machine ARN"):
        EscalatingTriageEnvironment.from_environ(
            {"RESULTS_TABLE": "t", "STATE_MACHINE_ARN": "gifcat-classify"}
        )


def test_triage_is_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULTS_TABLE", "gifcat-results")
    monkeypatch.setenv("STATE_MACHINE_ARN", ARN)
    triage = build_triage()
    assert triage.store.table_name == "gifcat-results"
    assert triage.escalator.state_machine_arn == ARN


def test_values_are_stripped_and_unknown_variables_ignored() -> None:
    env = TriageEnvironment.from_environ({"RESULTS_TABLE": " gifcat-results\n", "PATH": "/bin", "HOME": "/"})
    assert env.results_table == "gifcat-results" and env.settings is None and env.taxonomy is None


def test_llm_variables_become_settings_overrides_and_blank_ones_are_skipped() -> None:
    # The template passes every LLM parameter, "" when the stack leaves it blank.
    env = HandlerEnvironment.from_environ(
        {"GIFCAT_LLM_MODEL": "gpt-4.1-mini", "GIFCAT_LLM_BASE_URL": "", "GIFCAT_LLM_API_KEY_SECRET": " "}
    )
    assert env.llm_overrides() == {"stages": {"llm": {"model": "gpt-4.1-mini"}}}
    assert HandlerEnvironment.from_environ({}).llm_overrides() == {}
    secret = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gifcat/openai"
    env = HandlerEnvironment.from_environ(
        {"GIFCAT_LLM_BASE_URL": "http://127.0.0.1:9/v1", "GIFCAT_LLM_API_KEY_SECRET": secret}
    )
    llm = {"base_url": "http://127.0.0.1:9/v1", "api_key_secret": secret}
    assert env.llm_overrides() == {"stages": {"llm": llm}}


def test_stage_step_takes_the_llm_endpoint_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIFCAT_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: never called here
    monkeypatch.setenv("GIFCAT_LLM_MODEL", "gemma-3-270m-q4_k_m")
    step = build_llm_step()
    (llm,) = [s.stage for s in step.cascade.steps]
    assert llm.client.base_url == "http://127.0.0.1:9/v1" and llm.client.model == "gemma-3-270m-q4_k_m"



def test_artefacts_location_must_be_an_s3_uri() -> None:
    with pytest.raises(ConfigError, match=r"GIFCAT_ARTEFACTS: not s3://BUCKET\[/PREFIX\]"):
        EmbedEnvironment.from_environ({"GIFCAT_ARTEFACTS": "artefacts/embedding"})
    assert EmbedEnvironment.from_environ({"GIFCAT_ARTEFACTS": " "}).artefacts is None


@pytest.mark.parametrize("artefacts", [None, "s3://gifcat-artefacts/embedding"])
def test_the_embed_step_follows_published_artefacts_only_when_told_where(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, taxonomy: Taxonomy, artefacts: str | None
) -> None:
    from gifcat.adapters.embeddings import factory

    stage = EmbeddingStage(taxonomy, Unused(), "minilm@test", options=EmbeddingOptions())
    monkeypatch.setattr(factory, "build_embedding_stage", lambda settings, taxonomy: stage)
    # Nothing answers here: a cold start that asked S3 for the current artefact would fail.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    if artefacts:
        monkeypatch.setenv("GIFCAT_ARTEFACTS", artefacts)
    step = build_embedding_step()
    assert isinstance(step, RefreshingStageStep) is bool(artefacts)
    if isinstance(step, RefreshingStageStep):
        store = step.refresh.watcher.store
        assert isinstance(store, S3ArtefactStore) and store.uri == artefacts
        assert step.refresh.version == "bundled"


class Unused:
    """A text encoder for a stage that never scores here: the same unit vector for every text."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.full((len(texts), 4), 0.5, dtype=np.float32)

    def known_words(self, text: str) -> list[tuple[str, bool]]:
        return [(word, True) for word in text.lower().split()]  # reads every word: never "unreadable"


def test_the_learn_job_needs_the_table_and_an_s3_artefacts_location() -> None:
    with pytest.raises(ConfigError) as err:
        LearnEnvironment.from_environ({})
    assert str(err.value) == "environment: RESULTS_TABLE is not set; GIFCAT_ARTEFACTS is not set"
    with pytest.raises(ConfigError, match=r"^environment: GIFCAT_ARTEFACTS: not s3://BUCKET\[/PREFIX\]"):
        LearnEnvironment.from_environ({"RESULTS_TABLE": "t", "GIFCAT_ARTEFACTS": "bucket/embedding"})


def test_the_learn_job_is_built_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESULTS_TABLE", "gifcat-results")
    monkeypatch.setenv("GIFCAT_ARTEFACTS", "s3://gifcat-artefacts/embedding")
    job = build_learn_job()
    assert job.results.table_name == "gifcat-results"  # type: ignore[attr-defined]
    assert (job.store.bucket, job.store.prefix) == ("gifcat-artefacts", "embedding")  # type: ignore[attr-defined]
    assert job.trainer.encoder.startswith("minilm")
