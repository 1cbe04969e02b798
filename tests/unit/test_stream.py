"""gifcat stream: windows, corrections, the gate on LLM answers, relearning, not_worse.

A bag-of-words encoder stands in for MiniLM and a scripted stage for the LLM: the replay, the gate and
the relearning (gifcat.adapters.training.fit, scikit-learn) are the real code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from gifcat.adapters.training import choose_gate, clopper_pearson_upper, fit, learn_from, not_worse
from gifcat.config import Settings, load_settings
from gifcat.domain.learning import Gate, GatePair
from gifcat.domain.model import Candidate, Classification, GifItem, StageName, StageOutput
from gifcat.domain.records import LabelledRecord
from gifcat.domain.stages.embedding import EmbeddingOptions, EmbeddingStage
from gifcat.domain.taxonomy import Category, Taxonomy
from gifcat_tooling.stream import HUMAN, Seen, StreamOptions, run_stream

TAXONOMY = Taxonomy(
    version="test-1",
    categories=(
        Category(name="animals", description="animals cat dog", examples=("a cat", "a dog"),
                 aliases=("puppy",)),
        Category(name="food", description="food pizza pasta", examples=("a pizza", "some pasta"),
                 aliases=("pizza", "lasagne")),
        Category(name="sports", description="sports goal match", examples=("a goal", "a match")),
    ),
)
WORDS = {"animals": "cat", "food": "pasta", "sports": "goal"}


class BagOfWords:
    """A deterministic stand-in for MiniLM: hashed word counts, L2-normalised."""

    dim = 4096  # wide enough that no made-up word collides with a taxonomy phrase's

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def known_words(self, text: str) -> list[tuple[str, bool]]:
        return [(word, True) for word in text.lower().split()]  # reads every word: never "unreadable"


class ScriptedLlm:
    """The LLM step: answers from a table (default: the gold label), counting its calls."""

    name = StageName.LLM

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def prepare(self) -> None:
        return None

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        self.calls.append(item.id)
        answer = self.answers[item.id]
        candidates = [Candidate(category=answer, score=1.0)]
        return StageOutput(stage=self.name, candidates=candidates, model="scripted")


def stage() -> EmbeddingStage:
    return EmbeddingStage(TAXONOMY, BagOfWords(), "bag-of-words", labelled=[])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def record(rid: str, category: str, text: str, tags: Sequence[str] = ()) -> LabelledRecord:
    return LabelledRecord(id=rid, title=text, tags=list(tags), labels=[category], primary=category)


def topical(prefix: str, n: int) -> list[LabelledRecord]:
    """n records, categories in turn, each a category word among words of its own."""
    cats = list(WORDS)
    return [
        record(f"{prefix}-{i}", cats[i % 3], f"{WORDS[cats[i % 3]]} scene number{i} extra{i % 7}")
        for i in range(n)
    ]


def gold_llm(records: Sequence[LabelledRecord]) -> ScriptedLlm:
    return ScriptedLlm({r.id: r.labels[0] for r in records})


# -- windows ----------------------------------------------------------------------------------------
def test_windows_cover_every_record_once_in_file_order(settings: Settings) -> None:
    records = topical("r", 7)
    llm = gold_llm(records)
    run = run_stream(records, settings, TAXONOMY, stage(), llm, StreamOptions(window=3, learn=False))
    summary = run.summary()
    assert [(w["start"], w["n"]) for w in summary["windows"]] == [(0, 3), (3, 3), (6, 1)]
    assert [s.record.id for s in run.seen] == [r.id for r in records]
    assert [s.window for s in run.seen] == [0, 0, 0, 1, 1, 1, 2]
    assert {"start", "n", "accuracy", "llm_share"} <= set(summary["windows"][0])
    # From nothing nothing is certified: every record goes to the LLM, which is right every time.
    assert summary["llm_share"] == 1.0 and summary["accuracy"] == 1.0
    assert llm.calls == [r.id for r in records]


def test_overall_figures_are_the_windows_weighted(settings: Settings) -> None:
    records = topical("r", 10)
    answers = {r.id: ("food" if i % 2 else r.labels[0]) for i, r in enumerate(records)}  # half wrong
    # the tag stage decides this one: two aliases
    records[0] = record("r-0", "food", "pizza party", tags=["pizza", "lasagne"])
    answers["r-0"] = "food"
    run = run_stream(records, settings, TAXONOMY, stage(), ScriptedLlm(answers),
                     StreamOptions(window=4, learn=False))
    summary = run.summary()
    for key in ("accuracy", "llm_share"):
        weighted = sum(w[key] * w["n"] for w in summary["windows"]) / summary["n"]
        assert summary[key] == pytest.approx(weighted, abs=1e-3)
    assert summary["decided_by"]["tags"] == 1 and summary["windows"][0]["llm_share"] == 0.75


def test_repeated_ids_are_refused(settings: Settings) -> None:
    records = topical("r", 3) + topical("r", 1)
    with pytest.raises(ValueError, match="repeats the id 'r-0'"):
        run_stream(records, settings, TAXONOMY, stage(), gold_llm(records), StreamOptions())


@pytest.mark.parametrize(
    ("options", "message"),
    [({"window": 0}, "window"), ({"corrections": 1.5}, "corrections"), ({"start": "warm"}, "start"),
     ({"holdout": 1.0}, "holdout"), ({"until": StageName.TAGS}, "until"), ({"review": "best"}, "review")],
)
def test_bad_options_are_clear_errors(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamOptions(**options)


# -- corrections --------------------------------------------------------------------------------------
def test_corrections_answer_llm_bound_records_only_and_are_counted_apart(settings: Settings) -> None:
    records = [record("t-0", "food", "pizza night", tags=["pizza", "lasagne"]), *topical("r", 8)]
    wrong = ScriptedLlm({r.id: "sports" if r.labels[0] != "sports" else "food" for r in records})
    run = run_stream(records, settings, TAXONOMY, stage(), wrong,
                     StreamOptions(window=50, learn=False, corrections=1.0))
    by_id = {s.record.id: s for s in run.seen}
    assert by_id["t-0"].decided_by == "tags" and not by_id["t-0"].corrected  # triage decided: no review
    llm_bound = [s for s in run.seen if s.llm_bound]
    assert len(llm_bound) == 8 and all(s.corrected and s.decided_by == HUMAN for s in llm_bound)
    summary = run.summary()
    # The LLM answered first (a person reviews its answer), so every LLM-bound record still cost a call;
    # the cascade's accuracy is its own (all wrong here), the stored one counts the person's answers.
    assert len(wrong.calls) == 8 and summary["llm_share"] == round(8 / 9, 4)
    assert summary["accuracy"] == round(1 / 9, 4) and summary["accuracy_stored"] == 1.0
    assert summary["corrections"] == 8 and summary["decided_by"] == {"human": 8, "tags": 1}


def test_each_relearn_counts_its_examples_by_source(settings: Settings) -> None:
    tagged = [record(f"t-{i}", "food", f"pizza night {i}", tags=["pizza", "lasagne"]) for i in range(4)]
    records = [*tagged, *topical("r", 8), *topical("s", 2)]
    run = run_stream(records, settings, TAXONOMY, stage(), gold_llm(records),
                     StreamOptions(window=12, corrections=0.5, seed=2))
    relearn = run.windows[0].relearn
    corrected = sum(s.corrected for s in run.windows[0].seen)
    assert 0 < corrected < 8
    assert (relearn["triage"], relearn["human"]) == (4, corrected)
    assert relearn["llm"] == sum(s.agrees for s in run.windows[0].seen if not s.corrected and s.llm_bound)
    assert relearn["examples"] == 4 + corrected + relearn["llm"]
    no_triage = run_stream(records, settings, TAXONOMY, stage(), gold_llm(records),
                           StreamOptions(window=12, corrections=0.5, seed=2, learn_triage=False))
    assert no_triage.windows[0].relearn["triage"] == 0


def test_a_correction_rate_is_a_seeded_share_of_llm_bound_records(settings: Settings) -> None:
    records = topical("r", 200)

    def corrected(rate: float, seed: int) -> list[str]:
        run = run_stream(records, settings, TAXONOMY, stage(), gold_llm(records),
                         StreamOptions(window=200, learn=False, corrections=rate, seed=seed))
        return [s.record.id for s in run.seen if s.corrected]

    none, some, again, other = corrected(0.0, 0), corrected(0.3, 0), corrected(0.3, 0), corrected(0.3, 1)
    assert none == [] and some == again and some != other
    assert 40 <= len(some) <= 80  # 0.3 of 200 LLM-bound records, binomial spread



def test_a_review_queue_spends_the_same_share_on_the_least_supported_refused_answers(
    settings: Settings,
) -> None:
    records = topical("r", 20)
    # Wrong on every other record: those answers disagree with the embedding stage's first candidate,
    # so the prior gate (agreement) refuses them.
    answers = {r.id: ("sports" if r.labels[0] != "sports" else "food") if i % 2 else r.labels[0]
               for i, r in enumerate(records)}
    run = run_stream(records, settings, TAXONOMY, stage(), ScriptedLlm(answers),
                     StreamOptions(window=10, learn=False, corrections=0.3, review="queue"))
    for window in run.windows:
        bound = [s for s in window.seen if s.llm_bound]
        corrected = [s for s in bound if s.corrected]
        refused = [s for s in bound if not s.agrees]
        assert len(bound) == 10 and len(corrected) == 3  # 0.3 of each window's LLM-bound records
        assert len(refused) >= 3 and all(not s.agrees for s in corrected)
        assert max(s.support for s in corrected) <= min(s.support for s in refused if not s.corrected)
    # The share carries over between windows: 0.25 of 10 is 2, 3, 2, 3 corrections.
    quarter = run_stream(topical("q", 40), settings, TAXONOMY, stage(), gold_llm(topical("q", 40)),
                         StreamOptions(window=10, learn=False, corrections=0.25, review="queue"))
    assert [sum(s.corrected for s in w.seen) for w in quarter.windows] == [2, 3, 2, 3]
    assert run.summary()["options"]["review"] == "queue"


# -- the gate -----------------------------------------------------------------------------------------
def test_without_human_answers_the_gate_is_agreement() -> None:
    gate = choose_gate([])
    assert gate.rule == "agreement" and gate.pairs == 0
    assert gate.admits(0.1, agrees=True) and not gate.admits(0.99, agrees=False)


def test_the_gate_threshold_is_chosen_on_human_checked_answers() -> None:
    # The LLM is right when the cheap stage backs its answer (support >= 0.6) and mostly wrong below.
    pairs = [GatePair(0.6 + i / 100, agrees=i % 2 == 0, correct=True) for i in range(30)]
    pairs += [GatePair(0.1 + i / 100, agrees=True, correct=i % 4 == 0) for i in range(30)]
    gate = choose_gate(pairs, target=0.15, confidence=0.8)
    assert gate.rule == "threshold" and gate.threshold is not None and 0.1 < gate.threshold <= 0.6
    admitted = [p for p in pairs if gate.admits(p.support, p.agrees)]
    errors = sum(not p.correct for p in admitted)
    assert (len(admitted), errors) == (gate.admitted_pairs, gate.admitted_errors)
    assert gate.upper_bound is not None and gate.upper_bound <= 0.15
    assert gate.upper_bound == pytest.approx(clopper_pearson_upper(errors, len(admitted), 0.8))
    # The most admitting such threshold: one step lower breaks the bound.
    lower = [p for p in pairs if p.support >= max(p.support for p in pairs if p.support < gate.threshold)]
    assert clopper_pearson_upper(sum(not p.correct for p in lower), len(lower), 0.8) > 0.15
    assert gate.admits(0.7, agrees=False) and not gate.admits(0.2, agrees=True)


def test_agreement_wins_when_it_keeps_the_bound_on_more_answers() -> None:
    # Support says nothing here; agreeing with the embedding stage's top candidate says everything.
    pairs = [GatePair(0.5, agrees=i % 3 != 0, correct=i % 3 != 0) for i in range(60)]
    gate = choose_gate(pairs, target=0.15)
    assert gate.rule == "agreement" and gate.admitted_pairs == 40 and gate.admitted_errors == 0


def test_a_wrong_llm_closes_the_gate_once_people_have_said_so() -> None:
    wrong = [GatePair(0.9, agrees=True, correct=i % 2 == 0) for i in range(40)]  # half wrong everywhere
    assert choose_gate(wrong).rule == "closed"
    assert not choose_gate(wrong).admits(1.0, agrees=True)
    # Too few human answers to overturn the prior: agreement stays, with its measured record.
    few = choose_gate(wrong[:6])
    assert few.rule == "agreement" and few.admitted_errors == 3 and few.pairs == 6


def test_only_admitted_llm_answers_and_every_human_answer_are_examples(settings: Settings) -> None:
    r = record("r-1", "food", "pasta dinner")
    llm_said_sports = ScriptedLlm({"r-1": "sports"})
    run = run_stream([r], settings, TAXONOMY, stage(), llm_said_sports, StreamOptions(learn=False))
    seen = run.seen[0]
    assert seen.llm_answer == "sports" and not seen.agrees  # the text prototypes say food
    assert seen.example(Gate("agreement")) is None
    taught = seen.example(Gate("threshold", threshold=0.0))
    assert taught is not None and taught.primary == "sports" and taught.labels == ["sports"]
    assert seen.example(Gate("closed")) is None
    reviewed = Seen(seen.index, seen.window, seen.record, seen.result, corrected=True)
    human = reviewed.example(Gate("closed"))
    assert human is not None and human.primary == "food"  # the person's answer, whatever the gate
    pair = reviewed.pair()
    assert pair is not None and not pair.correct and pair.support == pytest.approx(
        next(c.score for c in seen.result.stages[-2].candidates if c.category == "sports")
    )


# -- relearning ----------------------------------------------------------------------------------------
MADE_UP = {"animals": "wuzzle", "food": "kribble", "sports": "flonk"}  # words no taxonomy phrase has


def test_a_learned_record_decides_a_later_identical_one(settings: Settings) -> None:
    cats = list(MADE_UP)
    first = [record(f"a-{i}", cats[i % 3], f"{MADE_UP[cats[i % 3]]} clip{i} take{i % 7}") for i in range(60)]
    again = [r.model_copy(update={"id": r.id.replace("a-", "b-")}) for r in first]  # same texts, new ids
    records = first + again
    # The text prototypes know none of these words; only what is learned can tell them apart.
    blind = EmbeddingStage(TAXONOMY, BagOfWords(), "bag-of-words", labelled=[],  # type: ignore[arg-type]
                           options=EmbeddingOptions(require_agreement=False))

    def replay(learn: bool) -> tuple[list[Seen], ScriptedLlm]:
        llm = gold_llm(records)
        run = run_stream(records, settings, TAXONOMY, blind, llm,
                         StreamOptions(window=60, learn=learn, corrections=1.0))
        return run.seen, llm

    learned, llm = replay(learn=True)
    assert all(s.llm_bound for s in learned[:60])  # nothing certified before the first relearn
    later = learned[60:]
    decided = [s for s in later if s.decided_by == "embedding"]
    assert len(decided) >= 45 and all(s.correct for s in decided)
    assert len(llm.calls) == 120 - len(decided)
    for before, after in zip(learned[:60], later, strict=True):  # the same text scores its gold higher
        scores = [{c.category: c.score for c in t.candidates} for t in (before.result.stages[2],
                                                                         after.result.stages[2])]
        assert scores[0][before.gold] == pytest.approx(1 / 3, abs=0.01)  # blind before
        assert scores[1][before.gold] > 0.5
    unlearned, llm = replay(learn=False)
    assert all(s.llm_bound for s in unlearned) and len(llm.calls) == 120


def test_llm_answers_the_gate_admits_are_learned_without_any_person(settings: Settings) -> None:
    records = topical("a", 60) + topical("b", 60)
    llm = gold_llm(records)
    run = run_stream(records, settings, TAXONOMY, stage(), llm, StreamOptions(window=60, corrections=0.0))
    relearn = run.windows[0].relearn
    # No person answered: the gate is agreement, and the LLM agreed with the text prototypes throughout.
    assert relearn["gate"]["rule"] == "agreement" and relearn["human"] == 0 and relearn["llm"] >= 55
    assert "adopted" in relearn
    assert sum(s.decided_by == "embedding" for s in run.windows[1].seen) >= 45


def test_a_holdout_keeps_the_current_artefact_when_not_worse_says_so(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gifcat_tooling.stream as stream

    verdicts: list[int] = []

    def refuse(new: Any, current: Any, held_out: Sequence[LabelledRecord], *args: Any, **kw: Any) -> bool:
        verdicts.append(len(held_out))
        return False

    monkeypatch.setattr(stream, "not_worse", refuse)
    records = topical("a", 60) + topical("b", 60) + topical("c", 60)
    run = run_stream(records, settings, TAXONOMY, stage(), gold_llm(records),
                     StreamOptions(window=60, holdout=0.25, seed=3))
    first, second = (w.relearn for w in run.windows[:2])
    # The first artefact has nothing to be worse than; it is fitted without the held-out examples.
    assert "adopted" in first and 0 < first["held_out"] < 30
    assert run.windows[1].examples == first["examples"] - first["held_out"]
    assert second["kept"].startswith("the new artefact is worse") and len(verdicts) == 1
    assert run.windows[2].margin == run.windows[1].margin


def test_learn_from_needs_enough_examples(settings: Settings) -> None:
    assert learn_from(topical("r", 6), settings, TAXONOMY, stage()) is None
    one_category = [record(f"r-{i}", "food", f"pasta {i}") for i in range(20)]
    assert learn_from(one_category, settings, TAXONOMY, stage()) is None
    fitted = learn_from(topical("r", 45), settings, TAXONOMY, stage())
    assert fitted is not None and set(fitted.thresholds) == {"embedding"}
    assert len(fitted.learned.memory) == 45


def test_not_worse_compares_artefacts_on_held_out_records(settings: Settings) -> None:
    good = learn_from(topical("g", 45), settings, TAXONOMY, stage())
    cats = list(WORDS)
    shuffled = [r.model_copy(update={"labels": [cats[(i + 1) % 3]], "primary": cats[(i + 1) % 3]})
                for i, r in enumerate(topical("s", 45))]  # every label wrong
    bad = learn_from(shuffled, settings, TAXONOMY, stage())
    assert good is not None and bad is not None
    held_out = topical("h", 15)
    assert not_worse(good, bad, held_out, stage())
    assert not not_worse(bad, good, held_out, stage())
    assert not_worse(bad, None, held_out, stage())  # nothing to be worse than
    with pytest.raises(ValueError, match="held-out"):
        not_worse(good, bad, [], stage())


def test_fit_keeps_given_triage_thresholds_and_calibrates_on_what_they_leave(settings: Settings) -> None:
    # Examples a stream learns from include what the tag stage decided (its own answers, so never
    # "wrong"): choosing triage thresholds on them would certify one and leave the embedding stage
    # almost nothing to be calibrated on. Given thresholds are kept, the residue is what they leave.
    from threadpoolctl import threadpool_limits

    tagged = [record(f"t-{i}", "food", f"pizza night {i}", tags=["pizza", "lasagne"]) for i in range(30)]
    records = tagged + topical("r", 45)
    configured = {name: {"min_score": settings.stages[name].min_score, "min_margin": 0.0}
                  for name in ("tags", "rules")}
    with threadpool_limits(limits=1):  # small matrices: threaded BLAS only contends (see learn_from)
        fitted = fit(records, settings, TAXONOMY, stage(), triage=configured)
        chosen = fit(records, settings, TAXONOMY, stage())  # the default still chooses them on the records
    assert {k: fitted.thresholds[k] for k in ("tags", "rules")} == configured
    assert set(fitted.choices) == {"embedding"} and fitted.choices["embedding"].n == 45
    assert chosen.choices["tags"].n == len(records)
