"""The learning curve: labelled records replayed in file order as uploads would arrive, through the real
cascade, in-process (no AWS), the embedding stage relearned every window from what has been seen.

What it learns from (`examples`), recomputed at every window's end as `gifcat learn` would gather them
from the results table:
- the tag and rule stages' answers (`learn_triage`, on by default): decided under a certified 3% error
  bound, they are the most reliable machine answers there are;
- human answers, always. `corrections=RATE` has a person review a RATE share of the records the cheap
  stages left (the LLM-bound ones: the LLM answers first, then the person answers with the gold label);
  the stored result is then `decided_by: human`;
- the LLM's answers admitted by a gate (`choose_gate`): a weak LLM's mistakes would otherwise be learned.

What it relearns (`learn_from`, i.e. `gifcat.adapters.training.fit` on the examples): the embedding
stage's kNN memory, its classifier head and its margin threshold (out of fold, error bound under the
stage's target).
The tag and rule thresholds stay as configured: triage learns nothing from examples, and the examples
are by construction the records triage left, so they cannot calibrate it.

`start="empty"` (the default) starts with no memory, no head and an embedding stage that decides nothing
until a relearn certifies a margin: the bundled memory is the dev set itself, so replaying dev from it
would measure in-sample. `start="bundled"` starts from the shipped memory, settings and examples.

Tooling; the relearning pieces it shares with `gifcat learn` are gifcat.adapters.training's (the gate,
`learn_from`, `not_worse`) and gifcat.domain.learning's (the values and the split).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gifcat.adapters.training import choose_gate, learn_from, not_worse
from gifcat.config import Settings
from gifcat.domain.cascade import TRIAGE
from gifcat.domain.learning import (
    GATE_TARGET,
    MIN_EXAMPLES,
    Fitted,
    Gate,
    GatePair,
    llm_agrees,
    llm_answer,
    llm_support,
    split_held_out,
)
from gifcat.domain.model import Classification, StageName
from gifcat.domain.records import LabelledRecord
from gifcat.domain.result import HUMAN  # decided_by of a person's answer
from gifcat.domain.stages import Stage
from gifcat.domain.stages.embedding import EmbeddingStage
from gifcat.domain.taxonomy import Taxonomy
from gifcat_tooling.operations.review import Reviewable, review_queue
from gifcat_tooling.pipeline import LocalPipeline

UNDECIDED = "undecided"
CHEAP = (*TRIAGE, StageName.EMBEDDING)
NEVER = 1.0  # an embedding margin of 1.0 is never reached by a softmax mix: the stage decides nothing


# -- the replay -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamOptions:
    window: int = 50
    learn: bool = True
    corrections: float = 0.0  # share of LLM-bound records a person answers with the gold label
    # Which of them: "random" (a draw as each arrives) or "queue" (at each window's end, the window's
    # first in `gifcat review`'s order: gifcat_tooling.operations.review).
    review: str = "random"
    seed: int = 0
    start: str = "empty"  # "empty" | "bundled"
    until: StageName = StageName.LLM  # EMBEDDING: no LLM calls (the LLM-bound records stay undecided)
    holdout: float = 0.0  # share of examples held out to check a new artefact with not_worse (0: none)
    gate_target: float = GATE_TARGET
    min_examples: int = MIN_EXAMPLES
    # Also learn the tag and rule stages' answers (decided under a certified 3% error bound). Without
    # them, even with a person answering every LLM-bound record, the memory holds only hard records
    # and no margin is certified before record 250 of dev (docs/results/README.md "The learning curve").
    learn_triage: bool = True

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")
        if not 0.0 <= self.corrections <= 1.0:
            raise ValueError(f"corrections is a share from 0 to 1, got {self.corrections}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout is a share from 0 to below 1, got {self.holdout}")
        if self.review not in ("random", "queue"):
            raise ValueError(f"review is 'random' or 'queue', got {self.review!r}")
        if self.start not in ("empty", "bundled"):
            raise ValueError(f"start is 'empty' or 'bundled', got {self.start!r}")
        if self.until not in (StageName.EMBEDDING, StageName.LLM):
            raise ValueError("until is the embedding or the llm stage")


@dataclass(frozen=True)
class Seen:
    """One replayed record: what the cascade answered, and whether a person answered too."""

    index: int
    window: int
    record: LabelledRecord
    result: Classification
    corrected: bool

    @property
    def gold(self) -> str:
        return self.record.primary or self.record.labels[0]

    @property
    def llm_bound(self) -> bool:
        """The cheap stages did not decide it: it reached the LLM (or would have, without one)."""
        return not (self.result.decided and self.result.decided_by in CHEAP)

    @property
    def llm_answer(self) -> str | None:
        """The LLM's primary, when it answered (it fails, or is not there: None)."""
        decided_by = self.result.decided_by.value if self.result.decided and self.result.decided_by else None
        return llm_answer(self.result.stages, decided_by, self.result.primary)

    @property
    def support(self) -> float:
        """The gate's score (gifcat.domain.learning.llm_support)."""
        return llm_support(self.result.stages, self.llm_answer)

    @property
    def agrees(self) -> bool:
        """The LLM named the embedding stage's top candidate."""
        return llm_agrees(self.result.stages, self.llm_answer)

    @property
    def correct(self) -> bool:
        """The cascade's own answer (before any person saw it) is right."""
        return self.result.decided and self.result.primary in self.record.labels

    @property
    def decided_by(self) -> str:
        """Who the stored result names: a person when one answered, else the stage that decided."""
        if self.corrected:
            return HUMAN
        if self.result.decided and self.result.decided_by is not None:
            return self.result.decided_by.value
        return UNDECIDED

    @property
    def correct_stored(self) -> bool:
        """The stored answer is right (a person's answer always is: it is the gold label)."""
        return self.corrected or self.correct

    def line(self) -> dict[str, Any]:
        """One line of `--predictions`: what was answered, by whom, and what the gate saw."""
        answer = self.llm_answer
        return {
            "index": self.index, "window": self.window, "id": self.record.id, "gold": self.record.labels,
            "primary": self.result.primary if self.result.decided else None,
            "decided_by": self.decided_by, "correct": self.correct, "llm_bound": self.llm_bound,
            "llm_answer": answer, "support": round(self.support, 4) if answer else None,
            "agrees": self.agrees if answer else None, "corrected": self.corrected,
        }

    def pair(self) -> GatePair | None:
        """The gate's evidence: an LLM answer a person also answered."""
        if not self.corrected or self.llm_answer is None:
            return None
        return GatePair(self.support, self.agrees, self.llm_answer in self.record.labels)

    def example(self, gate: Gate, triage: bool = False) -> LabelledRecord | None:
        """What this record teaches: the person's answer, else the LLM's when the gate admits it (and,
        with `triage`, the tag or rule stage's answer: certified under its error target)."""
        if self.corrected:
            return self.record.model_copy(update={"difficulty": f"learned:{HUMAN}"})
        if triage and self.result.decided and self.result.decided_by in TRIAGE:
            return self.record.model_copy(update={
                "labels": list(self.result.labels) or [self.result.primary],
                "primary": self.result.primary, "difficulty": f"learned:{self.result.decided_by.value}",
            })
        answer = self.llm_answer
        if answer is None or not gate.admits(self.support, self.agrees):
            return None
        labels = [answer]
        if self.result.decided_by is StageName.LLM:  # the LLM's secondary labels, as the result has them
            labels = list(self.result.labels) or labels
        return self.record.model_copy(
            update={"labels": labels, "primary": answer, "difficulty": "learned:llm"}
        )


@dataclass
class Window:
    start: int
    seen: list[Seen] = field(default_factory=list)
    margin: float = NEVER  # the embedding margin in force
    examples: int = 0  # examples the artefact in force was fitted on
    relearn: dict[str, Any] = field(default_factory=dict)  # what the relearn after this window did

    def as_dict(self) -> dict[str, Any]:
        n = len(self.seen)
        answered = [s for s in self.seen if s.llm_answer is not None]
        return {
            "start": self.start,
            "n": n,
            "accuracy": _ratio(sum(s.correct for s in self.seen), n),
            "llm_share": _ratio(sum(s.llm_bound for s in self.seen), n),
            "accuracy_stored": _ratio(sum(s.correct_stored for s in self.seen), n),
            "decided_by": dict(sorted(Counter(s.decided_by for s in self.seen).items())),
            "corrections": sum(s.corrected for s in self.seen),
            "llm_answers": len(answered),
            "llm_accuracy": _ratio(sum(s.llm_answer in s.record.labels for s in answered), len(answered))
            if answered else None,
            "embedding_margin": round(self.margin, 6),
            "examples": self.examples,
            "relearn": self.relearn,
        }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def _with_margin(settings: Settings, thresholds: dict[str, float]) -> Settings:
    emb = settings.stages["embedding"].model_copy(update=thresholds)
    return settings.model_copy(update={"stages": {**settings.stages, "embedding": emb}})


def check_unique_ids(records: Sequence[LabelledRecord]) -> None:
    """A stream's ids must be unique: the kNN vote leaves out examples with the item's own id, so a
    repeated id would silently hide what was learned from its first appearance."""
    seen: set[str] = set()
    for i, r in enumerate(records):
        if r.id in seen:
            raise ValueError(f"record {i + 1} repeats the id {r.id!r}: ids in a stream must be unique")
        seen.add(r.id)


@dataclass
class StreamRun:
    options: StreamOptions
    windows: list[Window]
    gate: Gate | None = None  # the last gate chosen

    @property
    def seen(self) -> list[Seen]:
        return [s for w in self.windows for s in w.seen]

    def summary(self) -> dict[str, Any]:
        seen = self.seen
        n = len(seen)
        windows = [w.as_dict() for w in self.windows]
        out: dict[str, Any] = {
            "windows": windows,
            "n": n,
            "accuracy": _ratio(sum(s.correct for s in seen), n),
            "llm_share": _ratio(sum(s.llm_bound for s in seen), n),
            "accuracy_stored": _ratio(sum(s.correct_stored for s in seen), n),
            "decided_by": dict(sorted(Counter(s.decided_by for s in seen).items())),
            "corrections": sum(s.corrected for s in seen),
            "options": {
                "window": self.options.window, "learn": self.options.learn,
                "corrections": self.options.corrections, "review": self.options.review,
                "seed": self.options.seed,
                "start": self.options.start, "until": self.options.until.value,
                "holdout": self.options.holdout, "gate_target": self.options.gate_target,
                "learn_triage": self.options.learn_triage,
            },
        }
        if self.gate is not None:
            out["gate"] = self.gate.as_dict()
            out["gate_precision"] = self._gate_precision(self.gate)
        if len(windows) >= 2:
            first, last = windows[0], windows[-1]
            ratio = last["llm_share"] / first["llm_share"] if first["llm_share"] else None
            drop = round(first["accuracy"] - last["accuracy"], 4)
            out["goal"] = {
                "llm_share_ratio": None if ratio is None else round(ratio, 4),
                "accuracy_drop": drop,
                "met": ratio is not None and ratio <= 0.6 and drop <= 0.02,
            }
        return out

    def _gate_precision(self, gate: Gate) -> dict[str, Any]:
        """Of the LLM answers (no person answered them) the last gate admits, how many are right by the
        gold labels: a figure the stream can measure and a deployment cannot."""
        admitted = [s for s in self.seen if not s.corrected and s.llm_answer is not None
                    and gate.admits(s.support, s.agrees)]
        right = sum(s.llm_answer in s.record.labels for s in admitted)
        answered = [s for s in self.seen if not s.corrected and s.llm_answer is not None]
        return {"admitted": len(admitted), "of": len(answered), "right": right,
                "precision": _ratio(right, len(admitted)) if admitted else None}


def run_stream(
    records: Sequence[LabelledRecord],
    settings: Settings,
    taxonomy: Taxonomy,
    stage: EmbeddingStage,
    llm: Stage | None,
    options: StreamOptions = StreamOptions(),
    *,
    base_examples: Sequence[LabelledRecord] = (),
    progress: Callable[[Iterable[LabelledRecord], str], Iterable[LabelledRecord]] | None = None,
) -> StreamRun:
    """Replay `records` in order through triage, `stage` and `llm` (None only with until=embedding),
    relearning the embedding stage after every window when `options.learn`.

    `stage` is the embedding stage to start from: with `start="empty"`, one with no memory and no head
    (its margin threshold is set to never decide until a relearn certifies one); with "bundled", the
    shipped one, with `base_examples` the records its memory was made from (relearning adds to them).
    """
    check_unique_ids(records)
    if options.until is StageName.LLM and llm is None:
        raise ValueError("an LLM stage is needed unless until is the embedding stage")
    base_examples = list(base_examples)
    current: Fitted | None = None
    current_stage = stage
    run_settings = settings
    if options.start == "empty":
        run_settings = _with_margin(settings, {"min_score": 0.0, "min_margin": NEVER})
    rng = np.random.default_rng(options.seed)
    run = StreamRun(options, [])
    examples_in_force = len(base_examples)
    carry = 0.0  # with review "queue": the share of a correction the windows so far have not spent
    for start in range(0, len(records), options.window):
        chunk = records[start : start + options.window]
        window = Window(start, margin=float(run_settings.stages["embedding"].min_margin),
                        examples=examples_in_force)
        pipeline = LocalPipeline(
            run_settings, taxonomy, options.until, embedding=current_stage,
            llm=llm if options.until is StageName.LLM else None,
        )
        with pipeline:
            rows = progress(chunk, f"window {len(run.windows) + 1}") if progress else chunk
            for offset, record in enumerate(rows):
                result = pipeline.classify(record.item())
                seen = Seen(start + offset, len(run.windows), record, result, corrected=False)
                # One draw per LLM-bound record: the sequence depends on the seed only.
                if seen.llm_bound and options.review == "random" and rng.random() < options.corrections:
                    seen = Seen(seen.index, seen.window, record, result, corrected=True)
                window.seen.append(seen)
        if options.review == "queue":
            carry = _review_window(window, run, options, carry)
        run.windows.append(window)
        last = start + options.window >= len(records)
        if not options.learn or last:
            continue
        # Relearn from everything seen so far, as `gifcat learn` would from the results table.
        pairs = [p for s in run.seen if (p := s.pair()) is not None]
        gate = choose_gate(pairs, target=options.gate_target)
        run.gate = gate
        learned = [e for s in run.seen if (e := s.example(gate, options.learn_triage)) is not None]
        examples = [*base_examples, *learned]
        train, held = split_held_out(examples, options.holdout, options.seed)
        sources = Counter((e.difficulty or "").removeprefix("learned:") for e in learned)
        window.relearn = {"gate": gate.as_dict(), "examples": len(examples), "human": sources[HUMAN],
                          "llm": sources["llm"], "triage": sources["tags"] + sources["rules"],
                          "held_out": len(held)}
        fitted = learn_from(train, settings, taxonomy, stage, seed=options.seed,
                            min_examples=options.min_examples)
        if fitted is None:
            window.relearn["kept"] = f"too few examples to fit ({len(train)}); the current artefact stays"
            continue
        if held and current is not None and not not_worse(fitted, current, held, stage):
            window.relearn["kept"] = "the new artefact is worse on the held-out examples; the current stays"
            continue
        current = fitted
        current_stage = stage.with_learned(fitted.learned)
        run_settings = _with_margin(settings, fitted.thresholds["embedding"])
        examples_in_force = len(train)
        window.relearn["adopted"] = {
            "embedding_margin": fitted.thresholds["embedding"]["min_margin"],
            "calibration": fitted.choices["embedding"].as_dict(),
        }
    if options.learn and run.gate is None:
        run.gate = choose_gate([p for s in run.seen if (p := s.pair()) is not None],
                               target=options.gate_target)
    return run


def _review_window(window: Window, run: StreamRun, options: StreamOptions, carry: float) -> float:
    """A person answers the window's first LLM-bound records in review order (`corrections` of them,
    the fractions carried over between windows), under the gate the answers so far choose; the carry."""
    bound = [s for s in window.seen if s.llm_bound]
    want = options.corrections * len(bound) + carry
    budget = int(want)
    gate = choose_gate([p for s in run.seen if (p := s.pair()) is not None], target=options.gate_target)
    items = [Reviewable(s.record.id, s.llm_answer, s.support, s.llm_answer is not None
                        and gate.admits(s.support, s.agrees)) for s in bound]
    chosen = {e.item.key for e in review_queue(items, limit=budget, seed=options.seed)}
    window.seen = [Seen(s.index, s.window, s.record, s.result, corrected=True) if s.record.id in chosen else s
                   for s in window.seen]
    return want - budget


def plot_stream(summary: dict[str, Any], path: Any) -> Any:
    """LLM share and accuracy per window (PNG), with the goal's lines from the first window."""
    from pathlib import Path

    from matplotlib.ticker import PercentFormatter

    from gifcat_tooling.report import _figure

    path = Path(path)
    windows = summary["windows"]
    x = [w["start"] for w in windows]
    with _figure(path, 1, 1, figsize=(7.5, 4.2)) as (_fig, ax):
        ax.plot(x, [w["llm_share"] for w in windows], "o-", color="#9467bd", label="LLM share")
        ax.plot(x, [w["accuracy"] for w in windows], "s-", color="#2ca02c", label="accuracy (cascade)")
        if any(w["corrections"] for w in windows):
            ax.plot(x, [w["accuracy_stored"] for w in windows], "s--", color="#2ca02c", alpha=0.5,
                    label="accuracy with corrections")
        if windows:
            first = windows[0]
            ax.axhline(0.6 * first["llm_share"], color="#9467bd", ls=":", lw=1,
                       label="goal: 60% of the first LLM share")
            ax.axhline(first["accuracy"] - 0.02, color="#2ca02c", ls=":", lw=1,
                       label="goal: first accuracy - 2 points")
        for part in summary.get("data") or []:  # where each data file begins (dev-hard after dev...)
            if isinstance(part, dict) and part.get("start"):
                ax.axvline(part["start"], color="#888", ls="--", lw=1)
                ax.text(part["start"], 0.02, f" {Path(part['path']).name} →", fontsize=8, color="#555")
        ax.set_ylim(0, 1.02)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_xlabel(f"window start (record; windows of {summary['options']['window']})")
        opts = summary["options"]
        ax.set_title(f"gifcat stream: learn={opts['learn']}, corrections={opts['corrections']}, "
                     f"start={opts['start']}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    return path
