"""gifcat learn's job (gifcat.application.learn): what it gathers from result items, the gate on LLM
answers, the per-category rule, and when it publishes.

The results table and the artefact store are in memory; a bag-of-words encoder stands in for MiniLM
(tests/unit/test_stream.py); the fitting and the comparison are the real code (scikit-learn).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from gifcat.adapters.training import EmbeddingTrainer
from gifcat.application.learn import LearnJob, LearnReport, gather, memory_examples
from gifcat.application.ports import PublishConflict
from gifcat.config import LearnSettings, Settings, load_settings
from gifcat.domain.artefact import ArtefactManifest, PublishedArtefact
from gifcat.domain.learning import Fitted, Gate, GatePair, Scorecard, held_out, split_held_out
from gifcat.domain.memory import Learned, Memory
from gifcat.domain.model import (
    Candidate,
    Classification,
    GifItem,
    StageName,
    StageOutput,
    StageTrace,
    Status,
)
from gifcat.domain.records import LabelledRecord
from gifcat.domain.result import MachineAnswer, ResultItem
from gifcat.domain.stages.embedding import EmbeddingStage
from tests.unit.test_stream import TAXONOMY, BagOfWords

CATS = ("animals", "food", "sports")
# Words no taxonomy phrase or alias has: only what is learned can tell the categories apart.
SIGNAL = {"animals": "whiskers", "food": "crumbs", "sports": "stadium"}
AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
OPTIONS = LearnSettings(min_examples=10, min_per_category=5, holdout=0.25, seed=0)


def trace(stage: StageName, *candidates: tuple[str, float]) -> StageTrace:
    return StageTrace(stage=stage, decided=False, elapsed_ms=1.0,
                      candidates=[Candidate(category=c, score=s) for c, s in candidates])


def result(
    key: str,
    category: str,
    *,
    text: str | None = None,
    decided_by: str = "human",
    status: Status = Status.CLASSIFIED,
    version: str = TAXONOMY.version,
    stages: Sequence[StageTrace] = (),
    corrected_from: MachineAnswer | None = None,
) -> ResultItem:
    words = text if text is not None else f"{SIGNAL[category]} clip {key}"
    return ResultItem(
        pk=f"s3://uploads/{key}.gif", bucket="uploads", key=f"{key}.gif", object_seq="-", status=status,
        primary=category if status is Status.CLASSIFIED else None,
        labels=[category] if status is Status.CLASSIFIED else [],
        decided_by=decided_by if status is Status.CLASSIFIED else None,  # type: ignore[arg-type]
        taxonomy_version=version, title=words or None, stages=list(stages), corrected_from=corrected_from,
        updated_at=AT,
    )


def humans(prefix: str, n: int, label: dict[str, str] | None = None) -> list[ResultItem]:
    """n human answers, categories in turn; `label` maps a true category to the one the person gave."""
    out = []
    for i in range(n):
        true = CATS[i % 3]
        item = result(f"{prefix}{i}", true)
        given = (label or {}).get(true, true)
        out.append(item.model_copy(update={"primary": given, "labels": [given]}))
    return out


class Results:
    """The RecentResults port in memory (the table's index: one taxonomy version, newest first)."""

    def __init__(self, items: Iterable[ResultItem]) -> None:
        self.list = list(items)

    def newest(self, taxonomy_version: str, limit: int) -> Iterable[ResultItem]:
        mine = [i for i in self.list if i.taxonomy_version == taxonomy_version]
        return sorted(mine, key=lambda i: i.updated_at, reverse=True)[:limit]

    def corrected(self, taxonomy_version: str) -> Iterable[ResultItem]:
        mine = [i for i in self.list if i.taxonomy_version == taxonomy_version and i.corrected_at]
        return sorted(mine, key=lambda i: i.corrected_at or AT, reverse=True)


class Store:
    """The ArtefactStore port in memory: numbered versions, the newest current."""

    def __init__(self) -> None:
        self.versions: dict[str, tuple[bytes, ArtefactManifest]] = {}

    def current(self) -> PublishedArtefact | None:
        if not self.versions:
            return None
        version = max(self.versions)
        return PublishedArtefact(version=version, manifest=self.versions[version][1])

    def fetch(self, version: str, into: Path) -> Path:
        into.mkdir(parents=True, exist_ok=True)
        path = into / f"{version}.npz"
        path.write_bytes(self.versions[version][0])
        return path

    def publish(self, artefact: Path, manifest: ArtefactManifest) -> PublishedArtefact:
        version = f"v{len(self.versions) + 1:06d}"
        manifest = manifest.model_copy(update={"version": version})
        self.versions[version] = (artefact.read_bytes(), manifest)
        return PublishedArtefact(version=version, manifest=manifest)

    def learned(self, version: str, tmp: Path) -> Learned:
        return Learned.load(self.fetch(version, tmp))


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings().model_copy(update={"learn": OPTIONS})


def bundled(records: Sequence[LabelledRecord]) -> EmbeddingStage:
    """An embedding stage whose shipped memory is `records` (the artefact to beat)."""
    return EmbeddingStage(TAXONOMY, BagOfWords(), "bag-of-words", labelled=records)  # type: ignore[arg-type]


def records(prefix: str, n: int, label: dict[str, str] | None = None) -> list[LabelledRecord]:
    out = []
    for i in range(n):
        true = CATS[i % 3]
        given = (label or {}).get(true, true)
        out.append(LabelledRecord(id=f"{prefix}{i}", title=f"{SIGNAL[true]} shipped {i}", labels=[given],
                                  primary=given))
    return out


def job(settings: Settings, items: Iterable[ResultItem], store: Store, stage: EmbeddingStage) -> LearnJob:
    return LearnJob(settings, TAXONOMY, Results(items), store, EmbeddingTrainer(settings, TAXONOMY, stage),
                    clock=lambda: AT)


def prior_gate(pairs: Sequence[GatePair]) -> Gate:
    from gifcat.adapters.training import choose_gate

    return choose_gate(pairs, target=OPTIONS.gate_target, confidence=OPTIONS.gate_confidence,
                       min_pairs=OPTIONS.gate_min_pairs)


# -- gathering ----------------------------------------------------------------------------------------
def test_people_always_triage_as_configured_and_llm_answers_through_the_gate() -> None:
    agreeing = [trace(StageName.EMBEDDING, ("food", 0.6), ("animals", 0.3)),
                trace(StageName.LLM, ("food", 1.0))]
    disagreeing = [trace(StageName.EMBEDDING, ("sports", 0.6)), trace(StageName.LLM, ("food", 1.0))]
    items = [
        *humans("h", 3),
        result("t0", "food", decided_by="tags"), result("r0", "sports", decided_by="rules"),
        result("l0", "food", decided_by="llm", stages=agreeing),
        result("l1", "food", decided_by="llm", stages=disagreeing),
        result("e0", "animals", decided_by="embedding"),
    ]
    got = gather(items, TAXONOMY, OPTIONS, prior_gate)
    assert got.gate.rule == "agreement" and got.gate.pairs == 0  # no person checked the LLM: the prior
    assert got.by_source() == {"human": 3, "llm": 1, "tags": 1, "rules": 1}
    assert {e.id for e in got.examples if e.difficulty == "learned:llm"} == {"s3://uploads/l0.gif"}
    assert got.refused_llm == 1 and got.skipped == {"embedding": 1}
    example = next(e for e in got.examples if e.id == "s3://uploads/h0.gif")
    assert (example.title, example.primary, example.labels) == ("whiskers clip h0", "animals", ["animals"])

    no_triage = gather(items, TAXONOMY, OPTIONS.model_copy(update={"triage_examples": False}), prior_gate)
    assert no_triage.by_source() == {"human": 3, "llm": 1, "tags": 0, "rules": 0}
    assert no_triage.skipped["triage_not_learned"] == 2


def test_other_taxonomies_unfinished_and_empty_results_teach_nothing() -> None:
    items = [
        result("ok", "food"),
        result("old", "food", version="older-taxonomy"),
        result("p", "food", status=Status.PENDING), result("f", "food", status=Status.FAILED),
        result("s", "food", status=Status.SKIPPED),
        result("blank", "food", text=""),
        result("alien", "food").model_copy(update={"primary": "space", "labels": ["space"]}),
    ]
    got = gather(items, TAXONOMY, OPTIONS, prior_gate)
    assert [e.id for e in got.examples] == ["s3://uploads/ok.gif"]
    assert got.items == 7
    assert got.skipped == {"other_taxonomy": 1, "unfinished": 2, "no_answer": 2, "no_text": 1}


def test_an_answer_taken_from_an_upload_of_the_same_content_is_learned_once_from_that_upload() -> None:
    person = humans("h", 1)[0]
    copies = [person.model_copy(update={"pk": f"s3://uploads/copy{i}.gif", "reused_from": person.pk})
              for i in range(3)]
    got = gather([person, *copies], TAXONOMY, OPTIONS, prior_gate)
    assert [e.id for e in got.examples] == [person.pk] and got.skipped == {"reused": 3}


def test_a_category_keeps_at_most_its_cap_people_first_then_the_llm_then_the_newest() -> None:
    # Months of traffic, every example embedded at each run and shipped to the embed function: the run
    # outgrew its 900 s and its /tmp. The cap keeps what the cheap stages could not decide first.
    agreeing = [trace(StageName.EMBEDDING, ("food", 0.6)), trace(StageName.LLM, ("food", 1.0))]
    items = [
        *[result(f"t{i}", "food", decided_by="tags").model_copy(update={"updated_at": AT.replace(day=i + 1)})
          for i in range(4)],
        result("l0", "food", decided_by="llm", stages=agreeing),
        result("h0", "food"),
        *[result(f"s{i}", "sports", decided_by="tags") for i in range(2)],
    ]
    got = gather(items, TAXONOMY, OPTIONS.model_copy(update={"max_per_category": 3}), prior_gate)
    food = [e.id.removeprefix("s3://uploads/") for e in got.examples if e.primary == "food"]
    assert food == ["h0.gif", "l0.gif", "t3.gif"]  # the person's, the LLM's, the newest tag example
    assert sum(e.primary == "sports" for e in got.examples) == 2  # under the cap: all of them
    assert got.skipped["over_category_cap"] == 3
    unbounded = gather(items, TAXONOMY, OPTIONS.model_copy(update={"max_per_category": None}), prior_gate)
    assert len(unbounded.examples) == len(items) and "over_category_cap" not in unbounded.skipped


def corrected_llm(key: str, llm: str, person: str, support: float) -> ResultItem:
    """An LLM answer (which the embedding stage also ranked first, at `support`) a person then gave."""
    stages = [trace(StageName.EMBEDDING, (llm, support)), trace(StageName.LLM, (llm, 1.0))]
    machine = MachineAnswer(status=Status.CLASSIFIED, primary=llm, labels=[llm], decided_by=StageName.LLM)
    return result(key, person, decided_by="human", stages=stages, corrected_from=machine)


def test_the_gate_is_chosen_on_llm_answers_people_corrected_or_confirmed() -> None:
    # 12 confirmed LLM answers with high support, 12 corrected ones with low: every one agreed with the
    # embedding stage, so agreement is no evidence; a support threshold is.
    checked = [corrected_llm(f"c{i}", "food", "food", 0.9) for i in range(12)]
    checked += [corrected_llm(f"w{i}", "food", "sports", 0.3) for i in range(12)]
    sure = [trace(StageName.EMBEDDING, ("animals", 0.95)), trace(StageName.LLM, ("animals", 1.0))]
    weak = [trace(StageName.EMBEDDING, ("animals", 0.3)), trace(StageName.LLM, ("animals", 1.0))]
    unreviewed = [result("sure", "animals", decided_by="llm", stages=sure),
                  result("weak", "animals", decided_by="llm", stages=weak)]
    got = gather([*checked, *unreviewed], TAXONOMY, OPTIONS, prior_gate)
    assert got.gate.rule == "threshold" and got.gate.pairs == 24
    assert got.gate.threshold == pytest.approx(0.9) and got.gate.admitted_errors == 0
    llm = [e.id for e in got.examples if e.difficulty == "learned:llm"]
    assert llm == ["s3://uploads/sure.gif"] and got.refused_llm == 1
    # the corrected answers are learned as the people gave them
    assert got.by_source()["human"] == 24
    assert {e.primary for e in got.examples if e.id.startswith("s3://uploads/w")} == {"sports"}


# -- publish or keep ----------------------------------------------------------------------------------
def test_too_few_examples_keep_the_current_artefact_and_say_so(settings: Settings, tmp_path: Path) -> None:
    store = Store()
    report = job(settings, humans("h", 6), store, bundled(records("b", 9))).run()
    assert report.outcome == "kept" and store.versions == {}
    assert report.reason == "too few examples: 6 in 3 categories (at least 10 in 2 needed); bundled stays"
    assert report.version == "bundled" and report.examples["human"] == 6


def test_a_better_artefact_is_published_with_a_sound_manifest(settings: Settings, tmp_path: Path) -> None:
    # The shipped memory learned the words the wrong way round; people's answers have them right.
    wrong = {"animals": "food", "food": "sports", "sports": "animals"}
    store = Store()
    report = job(settings, humans("h", 36), store, bundled(records("b", 9, wrong))).run()
    assert report.outcome == "published" and report.version == "v000001", report.reason
    assert report.reason.startswith("not worse than bundled on ")
    assert report.scorecards["new"]["accuracy"] > report.scorecards["current"]["accuracy"]
    held = sum(held_out(f"s3://uploads/h{i}.gif", OPTIONS.holdout, OPTIONS.seed) for i in range(36))
    assert report.examples == {"human": 36, "llm": 0, "tags": 0, "rules": 0, "total": 36,
                               "train": 36 - held, "shipped": 9, "held_out": held, "judged": held}
    manifest = store.versions["v000001"][1]
    assert manifest.parent is None and manifest.encoder == "bag-of-words"
    assert manifest.taxonomy_version == TAXONOMY.version and manifest.created_at == AT
    assert set(manifest.thresholds) == {"embedding"}
    assert manifest.thresholds == report.thresholds
    assert manifest.report["examples"]["held_out"] == held and manifest.report["gate"]["rule"] == "agreement"
    learned = store.learned("v000001", tmp_path)
    held_ids = {f"s3://uploads/h{i}.gif" for i in range(36)
                if held_out(f"s3://uploads/h{i}.gif", OPTIONS.holdout, OPTIONS.seed)}
    assert held_ids and not held_ids & set(learned.memory.ids)  # never trained on what judged it


def test_an_artefact_trained_on_wrong_answers_is_kept_out(settings: Settings) -> None:
    # People answered the training share wrongly (rotated); the held-out share is right: the new
    # artefact is worse there than the shipped one, which is kept, with the figures.
    rotated = {"animals": "food", "food": "sports", "sports": "animals"}
    items = []
    for item in humans("h", 36):
        if not held_out(item.pk, OPTIONS.holdout, OPTIONS.seed):
            given = rotated[item.primary or ""]
            item = item.model_copy(update={"primary": given, "labels": [given]})
        items.append(item)
    store = Store()
    report = job(settings, items, store, bundled(records("b", 9))).run()
    assert report.outcome == "kept" and store.versions == {}
    assert report.reason.startswith("the new artefact is worse than bundled on ")
    assert "top-1" in report.reason and report.reason.endswith("bundled stays")
    assert report.scorecards["new"]["accuracy"] < report.scorecards["current"]["accuracy"]


def test_a_relearned_margin_that_certifies_nothing_is_kept_out(settings: Settings) -> None:
    # The new artefact ranks as well as the shipped one, but its calibration falls short of its bound
    # (here a target that no sample this small can certify), so it would decide nothing and send every
    # item to the LLM. The shipped one, at its configured margin, decides the held-out examples, all
    # right: it stays.
    strict = settings.model_copy(deep=True)
    strict.stages["embedding"] = strict.stages["embedding"].model_copy(
        update={"target": 0.001, "min_margin": 0.05})
    store = Store()
    report = job(strict, humans("h", 36), store, bundled(records("b", 9))).run()
    assert report.thresholds["embedding"]["min_margin"] == 1.0
    new, current = report.scorecards["new"], report.scorecards["current"]
    assert new["decided"] == 0 and new["accuracy"] >= current["accuracy"]
    assert current["right"] > 0 and current["errors"] == 0
    assert report.outcome == "kept" and store.versions == {}
    assert f"decided right 0 against {current['right']}; bundled stays" in report.reason


def test_deciding_less_is_worse_unless_the_current_artefact_errs_above_its_target() -> None:
    current = Scorecard(n=20, top1=15, decided=10, errors=0)
    silent = Scorecard(n=20, top1=15, decided=0, errors=0)
    assert not silent.not_worse_than(current, target=0.10)
    assert silent.not_worse_than(current, target=0.10, tolerance=0.5)  # a share of the held-out records
    sloppy = Scorecard(n=20, top1=15, decided=10, errors=3)  # wrong on 30% of what it decides
    assert silent.not_worse_than(sloppy, target=0.10)
    careful = Scorecard(n=20, top1=15, decided=6, errors=0)
    assert not careful.not_worse_than(current, target=0.10) and careful.not_worse_than(sloppy, target=0.10)


def test_held_out_examples_the_current_memory_holds_do_not_judge(settings: Settings) -> None:
    """Results describing the GIFs the bundled memory was made from (the dev set) would score it
    in-sample: those held-out examples are left out of the comparison."""
    items = humans("h", 36)
    same = [LabelledRecord(id=f"dev-{i}", title=item.title or "", labels=item.labels, primary=item.primary)
            for i, item in enumerate(items)]
    store = Store()
    report = job(settings, items, store, bundled(same)).run()
    assert report.outcome == "kept" and store.versions == {} and report.examples["judged"] == 0
    held = report.examples["held_out"]
    assert report.reason == (f"all {held} held-out examples are in the new or bundled's memory: nothing "
                             "unseen to compare on; bundled stays")
    half = job(settings, items, Store(), bundled(same[:18])).run()
    unseen = sum(held_out(i.pk, OPTIONS.holdout, OPTIONS.seed) for i in items[18:])
    assert half.examples["judged"] == unseen and half.scorecards["current"]["n"] == unseen


def test_held_out_examples_the_new_memory_holds_do_not_judge(settings: Settings) -> None:
    """The shipped examples kept beside the learned ones may repeat a held-out result (the same GIF,
    another id): judged on it, the new artefact would score in-sample against a published one that
    lacks them."""
    items = humans("h", 36)
    store = Store()
    alone = settings.model_copy(update={"learn": settings.learn.model_copy(update={"keep_shipped": False})})
    assert job(alone, items, store, bundled(records("b", 9))).run().outcome == "published"
    same = [LabelledRecord(id=f"dev-{i}", title=item.title or "", labels=item.labels, primary=item.primary)
            for i, item in enumerate(items)]
    more = humans("n", 12)
    report = job(settings, items + more, store, bundled(same)).run()
    unseen = sum(held_out(i.pk, OPTIONS.holdout, OPTIONS.seed) for i in more)
    assert report.examples["judged"] == unseen < report.examples["held_out"]


@pytest.mark.parametrize("keep_shipped", [True, False])
def test_a_sparse_category_keeps_the_current_examples_of_it(
    settings: Settings, tmp_path: Path, keep_shipped: bool
) -> None:
    items = [i for i in humans("h", 36) if i.primary != "sports"] + humans("x", 3)[2:]  # one sports answer
    store = Store()
    shipped = records("b", 9)
    learn = settings.learn.model_copy(update={"keep_shipped": keep_shipped})
    tuned = settings.model_copy(update={"learn": learn})
    report = job(tuned, items, store, bundled(shipped)).run()
    assert report.outcome == "published", report.reason
    sports = report.categories["sports"]
    assert sports <= 1
    assert report.kept_categories == [f"kept current examples for sports: {sports} < 5 (3 from bundled)"]
    learned = store.learned("v000001", tmp_path)
    kept = {r.id for r in shipped if r.primary == "sports"}
    assert kept <= set(learned.memory.ids)
    others = {r.id for r in shipped if r.primary != "sports"}
    # By default the shipped examples stay beside the learned ones, every category's (each once);
    # with keep_shipped off, a category with enough new examples has only them.
    assert (others <= set(learned.memory.ids)) if keep_shipped else not others & set(learned.memory.ids)
    assert len(learned.memory.ids) == len(set(learned.memory.ids))
    assert report.examples["shipped"] == (len(others) if keep_shipped else 0)


def test_nothing_new_keeps_the_published_version_and_news_is_compared_with_it(
    settings: Settings, tmp_path: Path
) -> None:
    store = Store()
    items = humans("h", 36)
    first = job(settings, items, store, bundled([])).run()
    assert first.outcome == "published" and first.version == "v000001" and first.parent == "bundled"
    again = job(settings, items, store, bundled([])).run()
    assert again.outcome == "kept" and again.version == "v000001"
    assert again.reason == "nothing new since v000001: the same 36 examples"
    more = job(settings, [*items, *humans("n", 9)], store, bundled([])).run()
    assert more.parent == "v000001" and "current" in more.scorecards
    if more.outcome == "published":
        assert store.versions[more.version or ""][1].parent == "v000001"


def test_an_artefact_made_before_memories_kept_fields_is_refitted_though_nothing_is_new(
    settings: Settings, tmp_path: Path
) -> None:
    # Its margin was calibrated on its examples' texts alone, which the tag stage could not read.
    store = Store()
    items = humans("h", 36)
    assert job(settings, items, store, bundled([])).run().outcome == "published"
    old = store.learned("v000001", tmp_path)
    path = tmp_path / "old.npz"
    without = replace(old.memory, fields=None)
    Learned(without, old.head, old.encoder, old.taxonomy_version, old.meta).save(path)
    store.versions["v000001"] = (path.read_bytes(), store.versions["v000001"][1])
    again = job(settings, items, store, bundled([])).run()
    assert not again.reason.startswith("nothing new"), again.reason
    assert "current" in again.scorecards


def test_after_a_taxonomy_change_the_artefact_to_beat_is_the_shipped_one(settings: Settings) -> None:
    # v000001 was made for the taxonomy before: the embed function refuses it and runs the shipped
    # memory. Learning again from the same examples (now of the new version) publishes for the new
    # taxonomy, where "nothing new since v000001" kept the refused one in force for ever.
    store = Store()
    items = humans("h", 36)
    assert job(settings, items, store, bundled([])).run().version == "v000001"
    newer = TAXONOMY.model_copy(update={"version": f"{TAXONOMY.version}+1"})
    moved = [i.model_copy(update={"taxonomy_version": newer.version}) for i in items]
    stage = EmbeddingStage(newer, BagOfWords(), "bag-of-words", labelled=[])  # type: ignore[arg-type]
    report = LearnJob(settings, newer, Results(moved), store, EmbeddingTrainer(settings, newer, stage),
                      clock=lambda: AT).run()
    assert report.parent == "bundled" and report.outcome == "published", report.reason
    assert store.versions[report.version or ""][1].taxonomy_version == newer.version


def test_after_the_encoder_changed_the_artefact_to_beat_is_the_shipped_one(settings: Settings) -> None:
    # A rebuilt image's MiniLM (its ONNX export made by a newer onnxruntime) has another identity: the
    # embed function refuses v000001, and learning failed at every run loading it for the comparison.
    store = Store()
    items = humans("h", 36)
    assert job(settings, items, store, bundled([])).run().version == "v000001"
    stage = EmbeddingStage(TAXONOMY, BagOfWords(), "bag-of-words@rebuilt", labelled=[])  # type: ignore[arg-type]
    report = LearnJob(settings, TAXONOMY, Results(items), store, EmbeddingTrainer(settings, TAXONOMY, stage),
                      clock=lambda: AT).run()
    assert report.parent == "bundled" and report.outcome == "published", report.reason
    assert store.versions[report.version or ""][1].encoder == "bag-of-words@rebuilt"


def test_people_s_answers_are_learned_however_old_and_the_rest_only_the_newest(settings: Settings) -> None:
    # A run reads the newest `max_items` results, and every person's answer (the table's sparse index
    # of corrections) however old, each once.
    def run(items: list[ResultItem]) -> LearnReport:
        options = OPTIONS.model_copy(update={"max_items": 12})
        return LearnJob(settings.model_copy(update={"learn": options}), TAXONOMY, Results(items), Store(),
                        EmbeddingTrainer(settings, TAXONOMY, bundled([])), clock=lambda: AT).run(dry_run=True)

    last_year = AT.replace(year=2025)
    corrected = [h.model_copy(update={"updated_at": last_year, "corrected_at": last_year})
                 for h in humans("old", 12)]
    report = run([*corrected, *humans("new", 12)])
    assert report.items == 24 and report.examples["human"] == 24
    written = [h.model_copy(update={"updated_at": last_year}) for h in humans("old", 12)]
    assert run([*written, *humans("new", 12)]).items == 12  # older results: past the newest 12


def test_a_dry_run_publishes_nothing(settings: Settings) -> None:
    store = Store()
    report = job(settings, humans("h", 36), store, bundled([])).run(dry_run=True)
    assert report.outcome == "kept" and report.dry_run and store.versions == {}
    assert report.reason.startswith("dry run: ")


def test_a_lost_race_for_the_version_is_an_error_not_a_publication(settings: Settings) -> None:
    class Raced(Store):
        def publish(self, artefact: Path, manifest: ArtefactManifest) -> PublishedArtefact:
            raise PublishConflict("v000001 was published by someone else meanwhile")

    with pytest.raises(PublishConflict):
        job(settings, humans("h", 36), Raced(), bundled([])).run()


class Scripted:
    """A stage whose outputs are given per record title: the scorecard's arithmetic, nothing else."""

    def __init__(self, outputs: dict[str, StageOutput]) -> None:
        self.outputs = outputs

    def with_learned(self, learned: Learned) -> Scripted:
        return self

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        return self.outputs[item.metadata.title]


def test_the_scorecard_judges_the_ranking_whether_or_not_the_stage_would_decide() -> None:
    """Top-1 is the ranking's (what the LLM step chooses from), abstaining or not; the decided part is
    what clears the margin without abstaining. Counting abstentions as wrong would compare how often two
    artefacts abstain, not how well they rank."""
    from gifcat.adapters.training import scorecard

    def out(first: str, second: str, margin: float, abstained: str | None = None) -> StageOutput:
        return StageOutput(stage=StageName.EMBEDDING, abstained=abstained, candidates=[
            Candidate(category=first, score=0.5 + margin / 2),
            Candidate(category=second, score=0.5 - margin / 2),
        ])

    stage = Scripted({
        "a": out("animals", "food", 0.6),  # right, decided
        "b": out("food", "animals", 0.6),  # wrong, decided
        "c": out("animals", "food", 0.6, abstained="fields disagree"),  # right, not decided
        "d": out("animals", "food", 0.1),  # right, under the margin
        "e": StageOutput(stage=StageName.EMBEDDING, error="nothing to embed"),  # no ranking: wrong
    })
    records = [LabelledRecord(id=t, title=t, labels=["animals"], primary="animals") for t in "abcde"]
    fitted = Fitted(Learned.__new__(Learned), {"embedding": {"min_margin": 0.5}})
    card = scorecard(stage, fitted, records)  # type: ignore[arg-type]
    assert (card.n, card.top1, card.decided, card.errors) == (5, 3, 2, 1)


def test_a_repost_of_a_held_out_example_is_not_trained_on() -> None:
    examples = [LabelledRecord(id=f"s3://uploads/e{i}.gif", title=f"title {i}", labels=["funny"])
                for i in range(40)]
    held_before = [e for e in examples if held_out(e.id, 0.2, 0)]
    trained_before = [e for e in examples if not held_out(e.id, 0.2, 0)]
    # Reposts under keys that the draw itself trains on: only their content can keep one out.
    keys = (f"s3://reposts/r{i}.gif" for i in range(100))
    free = [k for k in keys if not held_out(k, 0.2, 0)][:2]
    repost_of_held = held_before[0].model_copy(update={"id": free[0]})
    repost_of_trained = trained_before[0].model_copy(update={"id": free[1]})
    train, held = split_held_out([*examples, repost_of_held, repost_of_trained], 0.2, 0)
    assert held == held_before
    assert [e.id for e in train] == [*(e.id for e in trained_before), repost_of_trained.id]
    assert split_held_out(examples, 0.0, 0) == (examples, [])


def test_the_shipped_examples_are_fitted_on_with_their_fields(settings: Settings) -> None:
    # The memory's text folds the tags in. Fitted on that text alone, a shipped example had no tags for
    # the tag stage: `fit` counted every one as an example triage leaves, the easy ones the tag stage
    # decides among them, and calibrated a permissive margin on them.
    shipped = [r.model_copy(update={"tags": ["puppy", "puppy love"] if r.primary == "animals" else ["match"],
                                    "description": "seen from the stands"}) for r in records("b", 9)]

    class Trainer(EmbeddingTrainer):
        fitted_on: ClassVar[list[LabelledRecord]] = []

        def fit(self, examples: Sequence[LabelledRecord], *, seed: int, min_examples: int) -> Fitted | None:
            Trainer.fitted_on = list(examples)
            return super().fit(examples, seed=seed, min_examples=min_examples)

    stage = bundled(shipped)
    LearnJob(settings, TAXONOMY, Results(humans("h", 36)), Store(), Trainer(settings, TAXONOMY, stage),
             clock=lambda: AT).run()
    kept = {e.id: e for e in Trainer.fitted_on if e.difficulty == "kept"}
    assert set(kept) == {r.id for r in shipped}
    for r in shipped:
        assert (kept[r.id].title, kept[r.id].tags, kept[r.id].description) == (r.title, r.tags, r.description)
        assert kept[r.id].labels == r.labels and kept[r.id].primary == r.primary


def test_an_artefact_made_before_memories_kept_fields_borrows_the_shipped_ones() -> None:
    shipped = bundled([r.model_copy(update={"tags": ["match"]}) for r in records("b", 3)]).labelled
    learned = bundled(records("h", 3)).labelled
    assert shipped is not None and learned is not None and shipped.fields is not None
    both = Memory(ids=shipped.ids + learned.ids, texts=shipped.texts + learned.texts,
                  labels=shipped.labels + learned.labels, primaries=shipped.primaries + learned.primaries,
                  vectors=np.vstack([shipped.vectors, learned.vectors]))  # fields: None, as an old artefact
    old = Learned(both, None, "bag-of-words", TAXONOMY.version, {})
    fallback = dict(zip(shipped.ids, shipped.fields, strict=True))
    got = {e.id: e for cat in CATS for e in memory_examples(old, cat, fallback)}
    assert [got[i].tags for i in shipped.ids] == [["match"]] * 3
    # An example of its own traffic: the text MiniLM saw, as a title.
    assert [(got[i].title, got[i].tags) for i in learned.ids] == [(t, []) for t in learned.texts]
