"""The LLM stage wired to its endpoint: the client, the API key and the call cache from `stages.llm`."""

from __future__ import annotations

from gifcat.adapters.llm.cache import CallCache
from gifcat.adapters.llm.credentials import CredentialsError, resolve_api_key
from gifcat.adapters.llm.frames import PillowFrameImager
from gifcat.config import ConfigError, Settings
from gifcat.domain.llm.options import LlmOptions
from gifcat.domain.llm.prompt import PromptBuilder, PromptError, load_prompt
from gifcat.domain.ports import FrameLimits
from gifcat.domain.stages.llm import LlmStage
from gifcat.domain.taxonomy import Taxonomy

LOCAL_API_KEY = "local-no-key"  # OpenAI-compatible local servers ignore it; the SDK insists on one


def prompt_builder(settings: Settings, taxonomy: Taxonomy, model: str | None = None) -> PromptBuilder:
    """The prompt `stages.llm` configures for `model` (default: the configured one); no endpoint needed."""
    opts: LlmOptions = settings.options("llm", LlmOptions)
    model = model or opts.model
    try:
        return PromptBuilder(
            template=load_prompt(opts.prompt),
            taxonomy=taxonomy,
            max_labels=settings.labels.max,
            examples_per_category=opts.examples_per_category,
            max_field_chars=opts.max_field_chars,
            max_tags=opts.max_tags,
            system_in_user=opts.instructions_in_user(model),
            answer_fields=opts.fields_for(model),
            few_shot=opts.few_shot_for(model),
            example_chars=opts.example_chars,
        )
    except PromptError as exc:  # a prompt that cannot give the configured answer fails at load
        raise ConfigError(f"settings: stages.llm: {exc}") from exc


def build_llm_stage(
    settings: Settings,
    taxonomy: Taxonomy,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
) -> LlmStage:
    """The LLM stage on an OpenAI-compatible endpoint, from `stages.llm`. Arguments override the
    settings (the CLI passes the local server's)."""
    opts: LlmOptions = settings.options("llm", LlmOptions)
    base_url = base_url or opts.base_url
    model = model or opts.model
    if api_key is None:
        try:
            api_key = resolve_api_key(
                env_var=opts.api_key_env, secret_id=opts.api_key_secret, ttl_s=opts.api_key_cache_s
            )
        except CredentialsError as exc:
            raise ConfigError(f"settings: stages.llm: {exc}") from exc
    if not api_key:
        if base_url is None:
            raise ConfigError(
                f"settings: stages.llm: no API key (set {opts.api_key_env or 'api_key_env'} or "
                "api_key_secret) and no base_url; run the local model with "
                "gifcat_tooling.llama_server.local_llm_endpoint(settings)"
            )
        api_key = LOCAL_API_KEY
    # Here, not at the top: the openai SDK takes 0.5 to 0.9 s to import, and prompt_builder's callers
    # (the evaluation's cost accounting) make no call.
    from gifcat.adapters.llm.client import LlmClient

    client = LlmClient(
        model=model,
        api_key=api_key,
        base_url=base_url,
        timeout_s=opts.timeout_s,
        max_attempts=opts.max_attempts,
        backoff_s=opts.backoff_s,
        max_backoff_s=opts.max_backoff_s,
        max_retry_after_s=opts.max_retry_after_s,
        temperature=opts.temperature,
        max_tokens=opts.max_tokens,
        mode=opts.mode,
        cache=CallCache(opts.cache_path) if opts.cache_path else None,
    )
    prompt = prompt_builder(settings, taxonomy, model)
    imager = frame_imager(settings, opts) if opts.images_for(model) else None
    if imager is not None and not prompt.template.frames:
        raise ConfigError(
            f"settings: stages.llm: prompt {prompt.version} has no 'frames' section, which images "
            f"({opts.images!r} for model {model!r}) needs for GIFs with no text"
        )
    return LlmStage(
        client,
        prompt,
        prices=dict(settings.prices.llm),
        rationale_max_chars=opts.rationale_max_chars,
        choose_from_top=opts.choose_from_top_for(model),
        imager=imager,
        image_detail=opts.image_detail,
    )


def frame_imager(settings: Settings, opts: LlmOptions) -> PillowFrameImager:
    """The frames of a text-less GIF as `stages.llm.image_*` bounds them, decoded within the bounds the
    embedding stage applies to untrusted GIFs (its section is read raw: its options model needs numpy)."""
    embedding = settings.stage_options("embedding") if "embedding" in settings.stages else {}
    defaults = FrameLimits()
    limits = FrameLimits(
        max_bytes=settings.limits.max_gif_bytes,
        max_canvas_pixels=int(embedding.get("max_canvas_pixels", defaults.max_canvas_pixels)),
        max_frames_decoded=int(embedding.get("max_frames_decoded", defaults.max_frames_decoded)),
        max_decode_pixels=int(embedding.get("max_decode_pixels", defaults.max_decode_pixels)),
    )
    return PillowFrameImager(
        frames=opts.image_frames,
        max_side=opts.image_max_side,
        min_side=opts.image_min_side,
        max_bytes=opts.image_max_bytes,
        fmt=opts.image_format,
        quality=opts.image_quality,
        limits=limits,
    )
