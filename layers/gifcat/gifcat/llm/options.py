"""The LLM stage's knobs (settings.yaml `stages.llm`), validated so a typo fails at load, by name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gifcat.config import ConfigError, Settings, describe_validation_error


def cache_root() -> Path:
    """$GIFCAT_CACHE or ~/.cache/gifcat: wheels/ and models/ live under it."""
    return Path(os.environ.get("GIFCAT_CACHE") or Path.home() / ".cache" / "gifcat").expanduser()


class LocalOptions(BaseModel):
    """llama-cpp-python's OpenAI-compatible server, the default when no API key is configured."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = "gemma-3-270m-q4_k_m"
    model_dir: str | None = None
    chat_format: str = "gemma"
    n_ctx: int = Field(4096, ge=512)
    n_threads: int = Field(2, ge=-1)
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)
    startup_timeout_s: float = Field(120.0, gt=0)

    def models_dir(self) -> Path:
        return Path(self.model_dir).expanduser() if self.model_dir else cache_root() / "models"


class LlmOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
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
    prompt: str = "classify-v1"
    mode: str = Field("auto", pattern=r"^(auto|json_schema|json_object_schema|grammar)$")
    system_in_user: bool | Literal["auto"] = "auto"
    examples_per_category: int = Field(2, ge=0)
    max_field_chars: int = Field(500, ge=20)
    max_tags: int = Field(20, ge=0)
    rationale_max_chars: int = Field(200, ge=20)
    choose_from_top: int = Field(0, ge=0)  # 0: any category; k: only the earlier stages' top k
    cache_path: str | None = None
    local: LocalOptions = LocalOptions()

    def instructions_in_user(self, model: str) -> bool:
        """Gemma's chat template has no system role (llama.cpp's `gemma` format drops it)."""
        if isinstance(self.system_in_user, bool):
            return self.system_in_user
        return "gemma" in model.lower()


def llm_options(settings: Settings) -> LlmOptions:
    try:
        return LlmOptions.model_validate(settings.stage_options("llm"))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error("settings: stages.llm", exc)) from exc
