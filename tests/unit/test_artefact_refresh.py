"""The embed step keeps its stage on the newest published artefact: it asks the store at most once per
`stages.embedding.refresh_s` (an injected monotonic clock), swaps in a new version with the thresholds
calibrated with it, refuses one made for another encoder or taxonomy, and never fails an item because
the store or the file is broken. Each result says which artefact version the embedding stage used."""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gifcat.adapters.dynamodb import record_request
from gifcat.application.artefacts import RefreshingStageStep, embedding_refresh
from gifcat.application.ports import SourceUnavailable
from gifcat.application.service import StepState
from gifcat.config import Settings, load_settings
from gifcat.domain.artefact import BUNDLED, ArtefactManifest, PublishedArtefact
from gifcat.domain.cascade import Cascade
from gifcat.domain.memory import Learned
from gifcat.domain.model import GifMetadata, StageName, Status
from gifcat.domain.records import LabelledRecord
from gifcat.domain.result import ObjectRef, classification_fields
from gifcat.domain.stages.embedding import EmbeddingStage
from gifcat.domain.taxonomy import Category, Taxonomy

ENCODER = "bag-of-words@test"
TAXONOMY = Taxonomy(
    version="t-1",
    categories=(
        Category(name="food", description="food pizza burger cooking eating",
                 examples=("pizza with cheese", "burger and fries")),
        Category(name="animals", description="animals cat dog wildlife",
                 examples=("a cat sleeping", "a dog running")),
    ),
)
RECORDS = [
    LabelledRecord(id="l1", title="pizza slice", labels=["food"], primary="food"),
    LabelledRecord(id="l2", title="dog running", labels=["animals"], primary="animals"),
]
REF = ObjectRef(bucket="uploads", key="uploads/pizza.gif", etag="e1", size=0)
PIZZA = GifMetadata(title="pizza", tags=("pizza", "cheese"))


class BagOfWords:
    """A deterministic text encoder: each word hashed to one of 64 dimensions, rows normalised."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().replace(",", " ").replace(".", " ").split():
                out[i, zlib.crc32(word.encode()) % 64] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-6)
        return out

    def known_words(self, text: str) -> list[tuple[str, bool]]:
        return [(word, True) for word in text.lower().split()]  # reads every word: never "unreadable"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store:
    """An in-memory ArtefactStore: versions in order, each a file's bytes and its manifest."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.manifests: dict[str, ArtefactManifest] = {}
        self.current_calls = 0
        self.fetches: list[str] = []
        self.failure: Exception | None = None  # raised by current() while set
        self.fetch_failure: Exception | None = None

    def current(self) -> PublishedArtefact | None:
        self.current_calls += 1
        if self.failure is not None:
            raise self.failure
        if not self.manifests:
            return None
        version = max(self.manifests)
        return PublishedArtefact(version=version, manifest=self.manifests[version])

    def fetch(self, version: str, into: Path) -> Path:
        self.fetches.append(version)
        if self.fetch_failure is not None:
            raise self.fetch_failure
        into.mkdir(parents=True, exist_ok=True)
        path = into / f"{version}-memory.npz"
        path.write_bytes(self.files[version])
        return path

    def publish(self, artefact: Path, manifest: ArtefactManifest) -> PublishedArtefact:
        version = f"v{len(self.manifests) + 1:06d}"
        manifest = manifest.model_copy(update={"version": version})
        self.files[version] = artefact.read_bytes()
        self.manifests[version] = manifest
        return PublishedArtefact(version=version, manifest=manifest)


def settings_for(**embedding: Any) -> Settings:
    data = load_settings().model_dump(by_alias=True)
    data["stages"]["embedding"].update(
        {
            # The shipped margin never decides here, so a published artefact's margin shows in the result.
            "min_score": 0.0,
            "min_margin": 1.0,
            "require_agreement": False,
            "require_field_agreement": False,
            "labelled": None,
            "memory": "none",
            "refresh_s": 300,
            **embedding,
        }
    )
    return Settings.model_validate(data)


def make_stage(settings: Settings) -> EmbeddingStage:
    from gifcat.domain.stages.embedding import EmbeddingOptions

    options = settings.options("embedding", EmbeddingOptions)
    return EmbeddingStage(TAXONOMY, BagOfWords(), ENCODER, labelled=RECORDS, options=options)


def artefact(tmp_path: Path, stage: EmbeddingStage, *, encoder: str = ENCODER, taxonomy: str = "t-1",
             labels: Sequence[str] | None = None) -> Path:
    memory = stage.embed_labelled(RECORDS)
    if labels is not None:
        memory = type(memory)(memory.ids, memory.texts, [(lbl,) for lbl in labels], list(labels),
                              memory.vectors)
    learned = Learned(memory, None, encoder, taxonomy, {})
    path = tmp_path / f"{hashlib.sha256(f'{encoder}{taxonomy}{labels}'.encode()).hexdigest()[:8]}.npz"
    learned.save(path)
    return path


def manifest(*, encoder: str = ENCODER, taxonomy: str = "t-1", margin: float = 0.0,
             thresholds: dict[str, dict[str, float]] | None = None) -> ArtefactManifest:
    return ArtefactManifest(
        version="draft", created_at=datetime(2026, 12, 2, tzinfo=UTC), encoder=encoder,
        taxonomy_version=taxonomy,
        thresholds=thresholds if thresholds is not None else {"embedding": {"min_margin": margin}},
    )


def make_step(store: Store, clock: Clock, tmp_path: Path, **embedding: Any) -> RefreshingStageStep:
    settings = settings_for(**embedding)
    stage = make_stage(settings)
    refresh = embedding_refresh(store, settings, stage, clock=clock, workdir=tmp_path / "work")
    return RefreshingStageStep(refresh, None, settings, record_request)  # type: ignore[arg-type]


def classify(step: RefreshingStageStep) -> StepState:
    state = StepState(object=REF, metadata=PIZZA, classification=Cascade([], settings_for().labels,
                      TAXONOMY.version).start(), execution="exec-1")
    return step.run(state)


def embedding_version(state: StepState) -> str | None:
    return classification_fields(state.classification).artefact_version


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_nothing_published_keeps_the_bundled_artefact_and_asks_once_per_interval(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    step = make_step(store, clock, tmp_path)
    assert store.current_calls == 0  # built without asking: a cold start reads nothing from the store

    first = classify(step)
    assert embedding_version(first) == BUNDLED and store.current_calls == 1
    assert step.artefact_outcome is None  # nothing published: nothing to count
    assert first.classification.status is Status.UNDECIDED  # the shipped margin (1.0) never decides

    clock.now += 299.9
    classify(step)
    assert store.current_calls == 1
    clock.now += 0.1
    classify(step)
    assert store.current_calls == 2


def test_a_new_version_is_picked_up_after_the_interval_with_its_thresholds(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    step = make_step(store, clock, tmp_path)
    classify(step)
    store.publish(artefact(tmp_path, make_stage(settings_for())), manifest(margin=0.0))

    clock.now += 10
    before = classify(step)
    assert embedding_version(before) == BUNDLED and before.classification.status is Status.UNDECIDED

    clock.now += 300
    after = classify(step)
    assert embedding_version(after) == "v000001" and step.artefact_outcome == "loaded"
    assert (after.classification.decided_by, after.classification.primary) == (StageName.EMBEDDING, "food")
    assert after.classification.stages[-1].artefact_version == "v000001"
    # The Record state's write sets it on the item.
    assert after.record is not None
    names = after.record["ExpressionAttributeNames"]
    (name,) = [k for k, v in names.items() if v == "artefact_version"]
    assert after.record["ExpressionAttributeValues"][":" + name[1:]] == {"S": "v000001"}

    clock.now += 300
    classify(step)
    assert store.fetches == ["v000001"]  # the same version again is not fetched again
    assert step.artefact_outcome is None


def test_refresh_s_zero_asks_on_every_invocation(store: Store, clock: Clock, tmp_path: Path) -> None:
    step = make_step(store, clock, tmp_path, refresh_s=0)
    classify(step)
    store.publish(artefact(tmp_path, make_stage(settings_for())), manifest())
    assert embedding_version(classify(step)) == "v000001"
    assert store.current_calls == 2


@pytest.mark.parametrize(
    ("published", "reason"),
    [
        ({"manifest": {"encoder": "minilm-other@1"}}, "encoder"),
        ({"manifest": {"taxonomy": "t-0"}}, "taxonomy"),
        # The manifest says the right encoder, the vectors in the file were made with another one.
        ({"file": {"encoder": "minilm-other@1"}}, "encoder"),
        ({"file": {"taxonomy": "t-0"}}, "taxonomy"),
        ({"file": {"labels": ["food", "space"]}}, "space"),
        ({"manifest": {"thresholds": {"embedding": {"k": 3.0}}}}, "k"),
        ({"manifest": {"thresholds": {"embedding": {"min_margin": 2.0}}}}, "min_margin"),
        ({"manifest": {"thresholds": {"nope": {"min_margin": 0.0}}}}, "nope"),
    ],
)
def test_an_artefact_for_another_encoder_or_taxonomy_is_refused_and_the_current_kept(
    store: Store, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    published: dict[str, dict[str, Any]], reason: str,
) -> None:
    step = make_step(store, clock, tmp_path, refresh_s=0)
    store.publish(artefact(tmp_path, make_stage(settings_for()), **published.get("file", {})),
                  manifest(**published.get("manifest", {})))
    with caplog.at_level(logging.WARNING, logger="gifcat.application.artefacts"):
        state = classify(step)
    assert embedding_version(state) == BUNDLED and step.artefact_outcome == "refused"
    assert state.classification.status is Status.UNDECIDED  # the shipped thresholds still apply
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "v000001" in warning.getMessage() and reason in warning.getMessage()


def test_a_refused_version_leaves_the_loaded_published_one_in_place(
    store: Store, clock: Clock, tmp_path: Path
) -> None:
    step = make_step(store, clock, tmp_path, refresh_s=0)
    store.publish(artefact(tmp_path, make_stage(settings_for())), manifest())
    assert embedding_version(classify(step)) == "v000001"
    store.publish(artefact(tmp_path, make_stage(settings_for())), manifest(taxonomy="t-0"))
    state = classify(step)
    assert embedding_version(state) == "v000001" and state.classification.decided


@pytest.mark.parametrize(
    "failure",
    [
        SourceUnavailable("artefacts s3://a/embedding: SlowDown"),
        ValueError("s3://a/embedding/current.json is not an artefact manifest"),
        OSError("connection reset"),
    ],
)
def test_a_store_that_fails_keeps_the_current_and_is_asked_again_after_the_interval(
    store: Store, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture, failure: Exception
) -> None:
    step = make_step(store, clock, tmp_path)
    store.publish(artefact(tmp_path, make_stage(settings_for())), manifest())
    store.failure = failure
    with caplog.at_level(logging.WARNING, logger="gifcat.application.artefacts"):
        state = classify(step)
    assert embedding_version(state) == BUNDLED and state.classification.status is Status.UNDECIDED
    assert str(failure) in caplog.text and step.artefact_outcome == "failed"

    store.failure = None
    clock.now += 100
    assert embedding_version(classify(step)) == BUNDLED  # not before the interval
    clock.now += 200
    assert embedding_version(classify(step)) == "v000001"


def test_a_corrupt_or_unfetchable_file_keeps_the_current_and_is_tried_again(
    store: Store, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    step = make_step(store, clock, tmp_path)
    good = artefact(tmp_path, make_stage(settings_for()))
    store.publish(good, manifest())
    store.files["v000001"] = good.read_bytes()[:200]  # torn
    with caplog.at_level(logging.WARNING, logger="gifcat.application.artefacts"):
        assert embedding_version(classify(step)) == BUNDLED
    assert "v000001" in caplog.text

    store.files["v000001"] = good.read_bytes()
    store.fetch_failure = SourceUnavailable("artefacts: fetch v000001: 503")
    clock.now += 300
    assert embedding_version(classify(step)) == BUNDLED
    store.fetch_failure = None
    clock.now += 300
    assert embedding_version(classify(step)) == "v000001"
    assert store.fetches == ["v000001"] * 3
    assert not list((tmp_path / "work").rglob("*.npz"))  # nothing left in /tmp


def test_a_result_the_embedding_stage_did_not_reach_names_no_artefact(settings: Settings) -> None:
    decided = Cascade([], settings.labels, "t-1").start()
    assert classification_fields(decided).artefact_version is None


def test_eval_predictions_name_the_artefact_the_embedding_stage_used() -> None:
    from gifcat.domain.model import Classification, StageTrace
    from gifcat_tooling.evaluation import Prediction

    embedding = StageTrace(
        stage=StageName.EMBEDDING, decided=False, elapsed_ms=1.0, artefact_version="v000002"
    )
    result = Classification(status=Status.UNDECIDED, stages=[embedding])
    record = LabelledRecord(id="r1", title="t", labels=["food"], primary="food")
    assert Prediction(record, result, 1.0).line()["artefact_version"] == "v000002"
    assert Prediction(record, Classification(status=Status.UNDECIDED), 1.0).line()["artefact_version"] is None
