"""The LLM stage's knobs (settings.yaml `stages.llm`), validated so a typo fails at load, by name."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gifcat.config import StageOptions
from gifcat.domain.llm.answer import ANSWER_FIELDS, check_fields


def _fields(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return None if value is None else check_fields(value)


def cache_root() -> Path:
    """$GIFCAT_CACHE or ~/.cache/gifcat: wheels/ and models/ live under it."""
    return Path(os.environ.get("GIFCAT_CACHE") or Path.home() / ".cache" / "gifcat").expanduser()


class LocalOptions(BaseModel):
    """llama-cpp-python's OpenAI-compatible server, the default when no API key is configured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_name: str = "gemma-3-270m-q4_k_m"
    model_dir: str | None = None
    chat_format: str = "gemma"
    n_ctx: int = Field(4096, ge=512)
    # A number, or "auto": the CPUs this process can keep busy (gifcat.adapters.cpus.usable_cpus).
    n_threads: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    # Threads when the server shares the machine with the embedded AWS (`gifcat demo`): llama.cpp's
    # threads meet at every layer, so while the Lambdas, moto and ONNX Runtime hold a core, one waiting
    # thread stalls the others (docs/results/README.md "The local LLM server's threads"). "auto": one
    # fewer than `n_threads: auto`, never below 1.
    n_threads_shared: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    startup_timeout_s: float = Field(120.0, gt=0)
    # llama-cpp-python's server computes logits for every prompt token unless told not to: over Gemma's
    # 262k-token vocabulary that tripled a cold 1,300-token prompt (12.9 s against 3.9 s). gifcat reads
    # no logprobs, so only the last token's are needed.
    logits_all: bool = False
    # The answer the local model writes; None: the same as `stages.llm.answer_fields`. Each generated
    # token is checked against the grammar over Gemma's 262k-token vocabulary, so the answer's length
    # is most of a local call's time.
    answer_fields: tuple[str, ...] | None = None
    # Nearest labelled examples shown to the local model; None: `stages.llm.few_shot`.
    few_shot: int | None = Field(None, ge=0)
    # The local model's answer held to the earlier stages' top k; None: `stages.llm.choose_from_top`.
    choose_from_top: int | None = Field(None, ge=0)

    _check_fields = field_validator("answer_fields")(_fields)

    def models_dir(self) -> Path:
        return Path(self.model_dir).expanduser() if self.model_dir else cache_root() / "models"


class LlmOptions(StageOptions):
    """The knobs under `stages.llm` in settings.yaml (beside min_score/min_margin)."""

    # An OpenAI-compatible endpoint; a value that is not an http(s) URL is refused at load, where every
    # call would fail four times over.
    base_url: str | None = Field(None, pattern=r"^https?://\S+$")
    model: str = "gpt-4o-mini"
    api_key_env: str | None = "OPENAI_API_KEY"
    api_key_secret: str | None = None
    api_key_cache_s: float = Field(900.0, ge=0)
    timeout_s: float = Field(20.0, gt=0)
    max_attempts: int = Field(4, ge=1, le=10)
    backoff_s: float = Field(0.5, ge=0)
    max_backoff_s: float = Field(8.0, ge=0)
    max_retry_after_s: float = Field(30.0, ge=0)
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(200, ge=16)
    prompt: str = "classify-v2"
    mode: str = Field("auto", pattern=r"^(auto|json_schema|json_object_schema|grammar)$")
    system_in_user: bool | Literal["auto"] = "auto"
    examples_per_category: int = Field(2, ge=0)
    max_field_chars: int = Field(500, ge=20)
    max_tags: int = Field(20, ge=0)
    rationale_max_chars: int = Field(200, ge=20)
    choose_from_top: int = Field(0, ge=0)  # 0: any category; k: only the earlier stages' top k
    few_shot: int = Field(0, ge=0)  # nearest labelled examples shown with the item (prompt v2)
    example_chars: int = Field(200, ge=20)  # each example's text is cut to this
    answer_fields: tuple[str, ...] = ANSWER_FIELDS  # the fields the model writes; primary is one
    cache_path: str | None = None
    local: LocalOptions = LocalOptions()
    # Items with no title, tags or description: send sampled frames as image parts. "auto": when the
    # model matches `image_models` (and is not the local model); true/false force it.
    images: bool | Literal["auto"] = "auto"
    # Model names (shell globs, case-blind) that accept image parts, for images "auto".
    image_models: tuple[str, ...] = ()
    image_frames: int = Field(3, ge=1, le=10)  # frames sent (fewer when over image_max_bytes)
    image_max_side: int = Field(256, ge=16)  # px, the longest side of each frame sent
    image_min_side: int = Field(96, ge=16)  # px: below this, frames are dropped instead of shrunk
    image_max_bytes: int = Field(300_000, ge=1_000)  # the encoded frames together (before base64)
    image_format: Literal["jpeg", "png"] = "jpeg"
    image_quality: int = Field(85, ge=1, le=95)  # JPEG quality
    image_detail: Literal["low", "high", "auto"] = "low"

    _check_fields = field_validator("answer_fields")(_fields)

    @model_validator(mode="after")
    def _sides(self) -> LlmOptions:
        if self.image_min_side > self.image_max_side:
            raise ValueError(
                f"image_min_side ({self.image_min_side}) is over image_max_side ({self.image_max_side})"
            )
        return self

    def is_local(self, model: str) -> bool:
        return model == self.local.model_name

    def images_for(self, model: str) -> bool:
        """Whether the LLM step sends frames of a text-less GIF to `model`."""
        if isinstance(self.images, bool):
            return self.images
        if self.is_local(model):  # Gemma 3 270M reads no images
            return False
        name = model.lower()
        return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in self.image_models)

    def fields_for(self, model: str) -> tuple[str, ...]:
        """The answer format for `model`: the local server's own when it is the one answering."""
        if self.is_local(model) and self.local.answer_fields is not None:
            return self.local.answer_fields
        return self.answer_fields

    def few_shot_for(self, model: str) -> int:
        if self.is_local(model) and self.local.few_shot is not None:
            return self.local.few_shot
        return self.few_shot

    def choose_from_top_for(self, model: str) -> int:
        """How many of the earlier stages' top candidates the answer of `model` may name (0: any)."""
        if self.is_local(model) and self.local.choose_from_top is not None:
            return self.local.choose_from_top
        return self.choose_from_top

    def instructions_in_user(self, model: str) -> bool:
        """Gemma's chat template has no system role (llama.cpp's `gemma` format drops it)."""
        if isinstance(self.system_in_user, bool):
            return self.system_in_user
        return "gemma" in model.lower()
