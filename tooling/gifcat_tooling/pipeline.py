"""The cascade in-process, as `gifcat classify` and `gifcat eval` run it: the same stages the Lambdas
run, with heavy stages built only when an item reaches them (the local LLM server starts on first use).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gifcat.config import ConfigError, Settings
from gifcat.domain.cascade import Cascade
from gifcat.domain.llm.options import LlmOptions
from gifcat.domain.model import Classification, GifItem, StageName, StageOutput
from gifcat.domain.stages import Stage
from gifcat.domain.stages.factory import ORDER, triage_stages
from gifcat.domain.taxonomy import Taxonomy


class LazyStage(Stage):
    """A stage built on first use: an item decided early never pays for loading a later stage."""

    def __init__(self, name: StageName, build: Callable[[], Stage]) -> None:
        self.name = name
        self._build = build
        self._stage: Stage | None = None

    @property
    def built(self) -> Stage | None:
        return self._stage

    def build(self) -> Stage:
        if self._stage is None:
            self._stage = self._build()
        return self._stage

    def prepare(self) -> None:
        self.build()  # the cascade calls it before timing the stage: loading is not the item's latency

    def wants_gif(self, item: GifItem) -> bool:
        return self.build().wants_gif(item)

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        return self.build().score(item, so_far)


class LocalPipeline:
    """Stages up to `until`, in-process. Use as a context manager: it owns the local LLM server."""

    def __init__(
        self,
        settings: Settings,
        taxonomy: Taxonomy,
        until: StageName = StageName.LLM,
        *,
        skip: tuple[StageName, ...] = (),
        labelled: Any = None,
        embedding: Stage | None = None,
        llm: Stage | None = None,
    ) -> None:
        self.settings = settings
        self.taxonomy = taxonomy
        self.until = until
        self.labelled = labelled
        self.llm_endpoint: tuple[str, str] | None = None
        self._exit = ExitStack()
        wanted = [s for s in ORDER[: ORDER.index(until) + 1] if s not in skip]
        self._check(wanted, embedding is None, llm is None)
        stages: list[Stage] = [s for s in triage_stages(settings, taxonomy) if s.name in wanted]
        # Prebuilt stages (cross-validation fits one embedding stage per fold, shares one LLM stage).
        if StageName.EMBEDDING in wanted:
            stages.append(embedding or LazyStage(StageName.EMBEDDING, self._embedding))
        if StageName.LLM in wanted:
            stages.append(llm or LazyStage(StageName.LLM, self._llm))
        self.stages = stages
        self.cascade = Cascade.from_settings(settings, stages, taxonomy)

    def _check(self, wanted: list[StageName], embedding: bool, llm: bool) -> None:
        """What the lazy stages will read, checked now: a misspelt knob or a missing labelled file is a
        ConfigError before the first item, where at the stage's build it would be every item's error."""
        if embedding and StageName.EMBEDDING in wanted:
            from gifcat.domain.stages.embedding import EmbeddingOptions

            source = self.labelled if self.labelled is not None else (
                self.settings.options("embedding", EmbeddingOptions).labelled
            )
            if isinstance(source, str | Path) and source != "bundled" and not Path(source).is_file():
                where = "--labelled or stages.embedding.labelled"
                raise ConfigError(f"labelled examples {source}: no such file ({where})")
        if llm and StageName.LLM in wanted:
            self.settings.options("llm", LlmOptions)
            from gifcat_tooling.llama_server import check_prompt_fits, wants_local_server

            if wants_local_server(self.settings):
                check_prompt_fits(self.settings, self.taxonomy)

    def _embedding(self) -> Stage:
        from gifcat.adapters.embeddings.factory import build_embedding_stage

        return build_embedding_stage(self.settings, self.taxonomy, labelled=self.labelled)

    def _llm(self) -> Stage:
        from gifcat.adapters.llm.factory import build_llm_stage
        from gifcat_tooling.llama_server import local_llm_endpoint, wants_local_server

        if wants_local_server(self.settings):
            endpoint = self._exit.enter_context(local_llm_endpoint(self.settings))
            self.llm_endpoint = (endpoint.base_url, endpoint.model)
            return build_llm_stage(
                self.settings, self.taxonomy, base_url=endpoint.base_url, model=endpoint.model
            )
        return build_llm_stage(self.settings, self.taxonomy)

    def classify(self, item: GifItem) -> Classification:
        return self.cascade.run(item)

    def stage(self, name: StageName) -> Stage:
        """The (built) stage of that name, e.g. to ask the LLM about items an earlier stage decided."""
        for stage in self.stages:
            if stage.name is name:
                return stage.build() if isinstance(stage, LazyStage) else stage
        raise KeyError(f"no {name.value} stage in this pipeline")

    def __enter__(self) -> LocalPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self._exit.close()
