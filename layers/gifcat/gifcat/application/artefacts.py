"""Keeps the embed step on the newest embedding artefact `gifcat learn` published: no redeploy.

- `ArtefactWatcher`: when to ask the store, and whether its current version is one not loaded yet. At
  most once per `stages.embedding.refresh_s` on a monotonic clock; the first ask is at the first item,
  not at import, so a cold start reads nothing more.
- `ArtefactLoader`: a published version as the step's cascade. Fetched into a temporary folder (/tmp
  on Lambda) that is removed once loaded; refused unless it was made with the stage's encoder and for
  the running taxonomy; the thresholds calibrated with it (its manifest's) replace the settings' ones.
- `ArtefactRefresh`: the cascade to run now (`refreshed()`). A version it refuses, or a store or file
  that fails, leaves the current one in place with a warning, and is asked about again after the next
  interval: an artefact problem never fails an item.
- `RefreshingStageStep`: the embed step, asking it before each item, and saying what the ask did
  (`artefact_outcome`: loaded, refused, failed) for the embed function's metrics.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from gifcat.application.ports import ArtefactStore, ObjectSource, RecordEncoder
from gifcat.application.service import StageStep, StepState
from gifcat.config import Settings, Thresholds, describe_validation_error, merge
from gifcat.domain.artefact import PublishedArtefact
from gifcat.domain.cascade import Cascade
from gifcat.domain.memory import Learned
from gifcat.domain.stages.embedding import EmbeddingOptions, EmbeddingStage

log = logging.getLogger(__name__)

Clock = Callable[[], float]
# What one ask for a newer artefact did: a version loaded, one refused (ArtefactRefused), or the store or
# the file failed. Nothing new to load is no outcome.
RefreshOutcome = Literal["loaded", "refused", "failed"]


class ArtefactRefused(ValueError):
    """A published artefact this step will not run with; the message says why."""


class ArtefactWatcher:
    """Asks the store for its current version at most once per `every_s` seconds of `clock`."""

    def __init__(self, store: ArtefactStore, every_s: float, clock: Clock = time.monotonic) -> None:
        self.store = store
        self.every_s = every_s
        self.clock = clock
        self._due_at: float | None = None  # None: never asked yet

    def newer(self, loaded: str) -> PublishedArtefact | None:
        """The store's current version if the interval has passed and it is not `loaded`, else None.
        What the store raises passes on; the interval restarts all the same (no retry storm)."""
        now = self.clock()
        if self._due_at is not None and now < self._due_at:
            return None
        self._due_at = now + self.every_s
        current = self.store.current()
        return current if current is not None and current.version != loaded else None


def with_thresholds(settings: Settings, thresholds: Mapping[str, Mapping[str, float]]) -> Settings:
    """`settings` with an artefact's thresholds over `stages`. Only thresholds: they are what is
    calibrated with a memory and its classifier; a stage's other knobs belong to the deployment."""
    known = set(Thresholds.model_fields)
    for stage, values in thresholds.items():
        if stage not in settings.stages:
            raise ArtefactRefused(f"its thresholds name stage {stage!r}, which the settings do not have")
        other = sorted(set(values) - known)
        if other:
            names = ", ".join(f"stages.{stage}.{name}" for name in other)
            raise ArtefactRefused(f"its thresholds set {names}: not a threshold (a deployment sets it)")
    try:
        data = merge(settings.model_dump(by_alias=True), {"stages": thresholds})
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ArtefactRefused(describe_validation_error("its thresholds", exc)) from exc


class ArtefactLoader:
    """Turns a published version into the cascade the embed step runs: `stage`'s models with the
    artefact's memory and classifier, under the artefact's thresholds."""

    def __init__(
        self, store: ArtefactStore, settings: Settings, stage: EmbeddingStage, workdir: Path | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self.stage = stage
        self.workdir = workdir or Path(tempfile.gettempdir()) / "gifcat-artefacts"

    def load(self, published: PublishedArtefact) -> Cascade:
        manifest = published.manifest
        self._check(manifest.encoder, manifest.taxonomy_version, "its manifest")  # before any download
        settings = with_thresholds(self.settings, manifest.thresholds)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Lambda's /tmp outlives invocations: the file goes once its arrays are in memory.
        with tempfile.TemporaryDirectory(dir=self.workdir, prefix=f"{published.version}-") as tmp:
            learned = Learned.load(self.store.fetch(published.version, Path(tmp)))
        # The file says what its vectors were made with too; it is what the stage would compare with.
        self._check(learned.encoder, learned.taxonomy_version, "its file")
        names = set(self.stage.taxonomy.names)
        unknown = sorted({label for labels in learned.memory.labels for label in labels} - names)
        if unknown:
            raise ArtefactRefused(
                f"its examples are labelled {', '.join(unknown)}, not categories of taxonomy "
                f"{self.stage.taxonomy.version}"
            )
        stage = self.stage.with_learned(learned, published.version)
        return Cascade.from_settings(settings, [stage], self.stage.taxonomy)

    def _check(self, encoder: str, taxonomy_version: str, where: str) -> None:
        if encoder != self.stage.text_identity:
            raise ArtefactRefused(
                f"{where} says encoder {encoder!r}, this function encodes with {self.stage.text_identity!r}"
            )
        if taxonomy_version != self.stage.taxonomy.version:
            raise ArtefactRefused(
                f"{where} says taxonomy {taxonomy_version!r}, this function runs "
                f"{self.stage.taxonomy.version!r}"
            )


class ArtefactRefresh:
    """The embed step's cascade, moved to a newer published artefact when the watcher finds one."""

    def __init__(
        self, cascade: Cascade, version: str, watcher: ArtefactWatcher, loader: ArtefactLoader
    ) -> None:
        self._cascade = cascade
        self.version = version
        self.watcher = watcher
        self.loader = loader
        self.last_outcome: RefreshOutcome | None = None  # of the last refreshed()

    @property
    def current(self) -> Cascade:
        """The cascade as loaded, without asking the store."""
        return self._cascade

    def refreshed(self) -> Cascade:
        """The cascade to run now: a newer published version if one is due, found and usable."""
        published: PublishedArtefact | None = None
        self.last_outcome = None
        try:
            published = self.watcher.newer(self.version)
            if published is not None:
                self._cascade = self.loader.load(published)
                log.info("embedding artefact %s loaded (was %s)", published.version, self.version)
                self.version = published.version
                self.last_outcome = "loaded"
        except ArtefactRefused as exc:
            assert published is not None
            log.warning("embedding artefact %s refused, keeping %s: %s", published.version, self.version, exc)
            self.last_outcome = "refused"
        except Exception as exc:  # the store or the file: never the item's failure; asked again later
            self.last_outcome = "failed"
            what = f"artefact {published.version}" if published is not None else "artefacts"
            log.warning(
                "embedding %s: %s: %s; keeping %s until the next check",
                what, type(exc).__name__, exc, self.version,
            )
        return self._cascade


def embedding_refresh(
    store: ArtefactStore,
    settings: Settings,
    stage: EmbeddingStage,
    *,
    clock: Clock = time.monotonic,
    workdir: Path | None = None,
) -> ArtefactRefresh:
    """A refresh starting from `stage` as built (its artefact version, the settings' thresholds)."""
    every_s = settings.options("embedding", EmbeddingOptions).refresh_s
    cascade = Cascade.from_settings(settings, [stage], stage.taxonomy)
    return ArtefactRefresh(
        cascade,
        stage.artefact_version,
        ArtefactWatcher(store, every_s, clock),
        ArtefactLoader(store, settings, stage, workdir),
    )


class RefreshingStageStep(StageStep):
    """The embed step on the newest published artefact: asks its refresh for the cascade per item."""

    def __init__(
        self,
        refresh: ArtefactRefresh,
        source: ObjectSource,
        settings: Settings,
        record_request: RecordEncoder,
    ) -> None:
        super().__init__(refresh.current, EmbeddingStage.name, source, settings, record_request)
        self.refresh = refresh

    def run(self, state: StepState) -> StepState:
        self.cascade = self.refresh.refreshed()
        self.artefact_outcome = self.refresh.last_outcome
        return super().run(state)
