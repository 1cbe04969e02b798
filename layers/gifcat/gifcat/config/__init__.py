"""Settings as data: the bundled settings.yaml, overridable by a path or an S3 object.

The lowest layer: it imports no other part of gifcat. A document at an s3:// URI is read through the
`read_uri` callable the caller passes (gifcat.runtime passes the S3 adapter's), so config never
reaches for boto3 itself.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(ValueError):
    """A settings or taxonomy file that cannot be used; the message names the bad entry."""


# How `gifcat calibrate` searches for a stage's threshold (gifcat.adapters.training.choose_threshold).
ThresholdSearch = Literal["lowest", "fixed_sequence"]
THRESHOLD_SEARCHES: tuple[str, ...] = get_args(ThresholdSearch)


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="allow")  # stages keep their own knobs beside the thresholds

    min_score: float = Field(ge=0.0, le=1.0)
    min_margin: float = Field(ge=0.0, le=1.0)
    # The error rate `gifcat calibrate` bounds on what the stage decides (one-sided 95% upper bound).
    target: float | None = Field(None, gt=0.0, lt=1.0)
    search: ThresholdSearch = "lowest"  # how `gifcat calibrate` searches for that threshold

    @field_validator("min_score", "min_margin", "target", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML's `true` would be read as 1.0: a stage that never decides
            raise ValueError("a number, not true/false")
        return value


class LabelPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ratio: float = Field(0.6, gt=0.0, le=1.0)
    max: int = Field(3, ge=1)


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_gif_bytes: int = Field(25_000_000, gt=0)
    sniff_bytes: int = Field(1024, ge=13)
    max_metadata_bytes: int = Field(65536, gt=0)
    # How long a late sidecar's rerun waits for its upload's own first result before it compares what
    # that upload read with what the object has now (RerunTriage). Under the step function's Timeout.
    sidecar_wait_seconds: float = Field(10.0, ge=0.0, le=20.0)
    # A deleted upload's result (status deleted) stays this long, then the table's TTL removes it. Longer
    # than any event of an older upload of the key can come late (the triage dead-letter queue keeps
    # one 14 days), so that none writes a result for an object that is gone.
    deleted_result_days: int = Field(30, ge=15)


class ReuseSettings(BaseModel):
    """An upload whose bytes (ETag and size) and metadata are another result's, made with the taxonomy in
    force, takes that result at the S3 Lambda instead of a run of the state machine: a GIF posted again,
    copied or renamed costs one index query, not the embedding and LLM steps (Triage.handle_upload)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # How many results of the same content the lookup reads: a popular GIF has many. A person's answer
    # among them is taken first, else the first classified one.
    look_at: int = Field(5, ge=1, le=100)


class TokenPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_million: float = Field(ge=0.0)
    output_per_million: float = Field(ge=0.0)


class LambdaPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gb_second_usd: float = Field(ge=0.0)
    request_usd: float = Field(ge=0.0)
    # Memory of the function that runs each stage (as in template.yaml), for GB-seconds.
    memory_mb: dict[str, int] = Field(default_factory=dict)


class StandardWorkflowPrice(BaseModel):
    """Standard workflows: per state transition."""

    model_config = ConfigDict(extra="forbid")

    transition_usd: float = Field(ge=0.0)
    transitions_per_execution: int = Field(ge=0)


class ExpressWorkflowPrice(BaseModel):
    """Express workflows: per request, and per GB-second of duration billed in steps of `billing_ms`
    and `memory_mb`; plus the CloudWatch Logs its execution logging ingests."""

    model_config = ConfigDict(extra="forbid")

    request_usd: float = Field(ge=0.0)
    gb_second_usd: float = Field(ge=0.0)
    memory_mb: int = Field(64, gt=0)
    billing_ms: int = Field(100, gt=0)
    # Time a run spends beyond its stages' own latency (the DynamoDB tasks, Lambda invokes).
    overhead_ms: float = Field(0.0, ge=0.0)
    log_bytes_per_execution: int = Field(0, ge=0)
    log_ingest_per_gb_usd: float = Field(0.0, ge=0.0)


class StepFunctionsPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # How the per-upload machine is priced: as template.yaml deploys it (express), or as Standard.
    workflow: Literal["express", "standard"] = "express"
    standard: StandardWorkflowPrice | None = None
    express: ExpressWorkflowPrice | None = None

    @model_validator(mode="before")
    @classmethod
    def _flat_standard(cls, data: Any) -> Any:
        # Settings written before Express (`transition_usd` at this level) priced Standard workflows.
        if isinstance(data, dict) and "transition_usd" in data:
            flat = {k: data[k] for k in ("transition_usd", "transitions_per_execution") if k in data}
            rest = {k: v for k, v in data.items() if k not in flat}
            return {"workflow": "standard", **rest, "standard": flat}
        return data

    @model_validator(mode="after")
    def _priced(self) -> StepFunctionsPrice:
        if getattr(self, self.workflow) is None:
            raise ValueError(f"workflow is {self.workflow!r} but there are no {self.workflow} prices")
        return self


class LlmCallReference(BaseModel):
    """A typical LLM call, for `gifcat eval` runs that made none (`--until embedding`): what reaches the
    LLM, and sending every GIF to it, are projected with it. A prompt's tokens are its characters
    times `tokens_per_char`; `prompt_tokens` serves when the prompt is not known."""

    model_config = ConfigDict(extra="forbid")

    tokens_per_char: float = Field(0.25, gt=0.0)
    prompt_tokens: float = Field(0.0, ge=0.0)
    completion_tokens: float = Field(0.0, ge=0.0)
    latency_ms: float = Field(0.0, ge=0.0)
    source: str = ""  # where the figures were measured


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    llm: dict[str, TokenPrice] = Field(default_factory=dict)
    # `lambda` is a keyword, hence the alias
    lambda_: LambdaPrice = Field(alias="lambda")
    stepfunctions: StepFunctionsPrice | None = None
    llm_call: LlmCallReference = LlmCallReference()


class LearnSettings(BaseModel):
    """`gifcat learn` (gifcat.application.learn): what it learns from and when it publishes. Defaults
    and why: settings.yaml `learn`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_examples: int = Field(10, ge=5)
    min_per_category: int = Field(5, ge=1)
    holdout: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 0
    triage_examples: bool = True
    keep_shipped: bool = True
    gate_target: float = Field(0.15, gt=0.0, lt=1.0)
    gate_confidence: float = Field(0.80, gt=0.5, lt=1.0)
    gate_min_pairs: int = Field(20, ge=0)
    tolerance: float = Field(0.0, ge=0.0, lt=1.0)
    max_per_category: int | None = Field(1000, ge=1)
    max_items: int = Field(200_000, ge=1)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    version: int
    taxonomy: str = "bundled"
    labels: LabelPolicy = LabelPolicy()
    stages: dict[str, Thresholds]
    limits: Limits = Limits()
    reuse: ReuseSettings = ReuseSettings()
    prices: Prices
    # `gifcat discover`'s knobs; gifcat_tooling.discovery.DiscoveryOptions checks them when discovery runs.
    discovery: dict[str, Any] = Field(default_factory=dict)
    learn: LearnSettings = LearnSettings()

    def thresholds(self, stage: str) -> Thresholds:
        try:
            return self.stages[stage]
        except KeyError:
            raise ConfigError(f"settings: no thresholds for stage {stage!r} under 'stages'") from None

    def stage_options(self, stage: str) -> dict[str, Any]:
        """A stage's own knobs as written (everything in its section but the thresholds)."""
        return dict(self.thresholds(stage).model_extra or {})

    def options(self, stage: str, model: type[OptionsT]) -> OptionsT:
        """A stage's own knobs, validated by the stage's options model: a typo fails at load, by name."""
        try:
            return model.model_validate(self.stage_options(stage))
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(f"settings: stages.{stage}", exc)) from exc


class StageOptions(BaseModel):
    """The base of every stage's options model (its section of `stages`, beside the thresholds):
    unknown names are refused, and options do not change once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OptionsT = TypeVar("OptionsT", bound=StageOptions)


# Reads the document at an s3://bucket/key URI (the S3 adapter's read_s3_uri).
UriReader = Callable[[str], str]


def read_text(source: str, read_uri: UriReader | None = None) -> str:
    """Read a config document from a path, or from an s3://bucket/key URI through `read_uri`."""
    if source.startswith("s3://"):
        if read_uri is None:
            raise ConfigError(f"{source}: no reader for s3:// documents was given (gifcat.runtime has one)")
        try:
            return read_uri(source)
        except ConfigError:
            raise
        except Exception as exc:  # the SDK's error (no such bucket or key, access denied): by the URI
            raise ConfigError(f"{source}: cannot read: {type(exc).__name__}: {exc}") from exc
    try:
        return Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # at load, by name, like every other config error
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{source}: cannot read: {reason}") from exc


def bundled_text(name: str) -> str:
    return resources.files("gifcat.config").joinpath(name).read_text(encoding="utf-8")


class _UniqueKeys:
    """Refuses a key written twice in one mapping: PyYAML keeps the last one, so a second `min_margin` or
    `categories` would silently replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges, by design
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[attr-defined]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no stubs here
    """YAML's safe loader (constructs no Python objects), refusing a key written twice."""


# The same on libyaml's parser where PyYAML was built with it (its wheels are): the bundled settings,
# taxonomy and screen words parse in about 5 ms instead of 60, at every cold start.
_FastUniqueKeyLoader = (
    type("_FastUniqueKeyLoader", (_UniqueKeys, yaml.CSafeLoader), {}) if hasattr(yaml, "CSafeLoader")
    else _UniqueKeyLoader
)


def parse_yaml(text: str, what: str) -> Any:
    try:
        return yaml.load(text, Loader=_FastUniqueKeyLoader)
    except yaml.YAMLError:
        # libyaml refuses some documents the pure loader reads (JSON's escaped surrogate pairs for an
        # emoji, as json.dumps writes them), and the pure loader's messages are the ones users see
        pass
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:  # one line: what is wrong and where
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{what}: not valid YAML{where}: {problem}") from exc


def describe_validation_error(what: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        problems.append(f"{where}: {err['msg']}")
    return f"{what}: " + "; ".join(problems)


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `overrides` into `base` (mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = (
            merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


class ScreenWords(BaseModel):
    """The instruction screen's words in languages other than English (instruction_screen.yaml, where
    each list is described): regular-expression fragments, each list read as one alternation."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    roles: list[str]
    label_nouns: list[str]
    addressees: list[str]
    override_verbs: list[str]
    override_nouns: list[str]
    answer_verbs: list[str]
    answer_particles: list[str]
    answer_verbs_after: list[str]
    answer_nouns: list[str]
    copulas: list[str]
    copula_particles: list[str]
    greetings: list[str]
    articles: list[str]
    if_you_are: list[str]
    ai_words: list[str]

    @field_validator("*")
    @classmethod
    def _fragments(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        if not value:
            raise ValueError("an empty list would match nothing: give at least one word")
        for fragment in value:
            if not fragment.strip():
                raise ValueError("an empty entry would match everywhere")
            try:
                re.compile(fragment)
            except re.error as exc:  # named here, not as a failed import of the screen
                raise ValueError(f"{fragment!r} is not a regular expression: {exc}") from None
        return value

    def alternation(self, name: str) -> str:
        """One list as a non-capturing alternation: `(?:a|b|c)`."""
        return "(?:" + "|".join(getattr(self, name)) + ")"


def parse_screen_words(text: str, what: str = "instruction_screen.yaml") -> ScreenWords:
    try:
        return ScreenWords.model_validate(parse_yaml(text, what))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(what, exc)) from exc


@lru_cache(maxsize=1)
def screen_words() -> ScreenWords:
    """The bundled instruction_screen.yaml (gifcat.domain.instructions compiles its patterns with it)."""
    return parse_screen_words(bundled_text("instruction_screen.yaml"))


def load_settings(
    source: str | None = None, overrides: dict[str, Any] | None = None, *, read_uri: UriReader | None = None
) -> Settings:
    """Bundled settings unless `source` (or GIFCAT_SETTINGS) names another file or S3 object (read
    with `read_uri`).

    GIFCAT_OVERRIDES (JSON) and then `overrides` are merged on top: how the template's parameters
    reach the thresholds without a settings file of their own.
    """
    source = source or os.environ.get("GIFCAT_SETTINGS") or None
    what = f"settings {source}" if source else "bundled settings.yaml"
    text = read_text(source, read_uri) if source else bundled_text("settings.yaml")
    data = parse_yaml(text, what)
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: expected a mapping at the top level")
    env_overrides = os.environ.get("GIFCAT_OVERRIDES", "").strip()
    if env_overrides:
        try:
            data = merge(data, json.loads(env_overrides))
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ConfigError(f"GIFCAT_OVERRIDES: not a JSON object: {exc}") from exc
        what += " with GIFCAT_OVERRIDES"  # a bad value may be the override's, not the file's
    if overrides:
        data = merge(data, overrides)
        what += " and the caller's overrides" if env_overrides else " with the caller's overrides"
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(what, exc)) from exc
