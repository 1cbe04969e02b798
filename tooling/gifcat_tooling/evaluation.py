"""Evaluation on labelled metadata: does the cascade pay?

Per stage: coverage, accuracy on what it decided, micro-F1 and latency; overall accuracy and micro-F1;
a confusion matrix; cost per 1,000 GIFs (LLM tokens at the configured prices plus Lambda GB-seconds and
Step Functions transitions); accuracy by record kind; a reliability table per stage (confidence against
observed accuracy, and the expected calibration error); and the operating curve, accuracy against the
LLM's share, swept over the embedding stage's margin (pooled over the folds under cross-validation).

A prediction's primary is correct when it is any of the gold labels (TAXONOMY.md); undecided counts as
wrong. micro-F1 compares predicted label sets with gold label sets.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from gifcat.config import Settings
from gifcat.domain.costs import item_cost
from gifcat.domain.model import Candidate, Classification, StageName, StageTrace
from gifcat.domain.records import LabelledRecord

UNDECIDED = "undecided"
SIDES = ("cascade", "all_llm")


# -- the summary: what `gifcat eval` prints with --json and writes to report.json ---------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_serializer(mode="wrap")
    def _leave_out_absent_parts(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An optional part the run did not make (default None) is left out; a field that is always
        there says null when it has no value (a threshold no margin met, the ECE of nothing)."""
        data: dict[str, Any] = handler(self)
        fields = type(self).model_fields
        return {k: v for k, v in data.items() if v is not None or k not in fields or fields[k].is_required()}


def _empty_is_none(value: Any) -> Any:
    return None if value == {} else value  # summaries written before None replaced {} (docs/results)


class Latency(_Model):
    p50: float
    p95: float


class StageSummary(_Model):
    decided: int
    share: float
    reached: int
    accuracy: float  # on what the stage decided
    micro_f1: float
    latency_ms: Latency


class KindStage(_Model):
    decided: int
    accuracy: float


class Handoff(_Model):
    """What the cheap stages hand the last step: the records they left (the LLM's, or undecided under
    --until embedding) and how often their first candidate is right there. A model that echoes that
    candidate answers exactly this well; a better one has to beat it."""

    left: int
    ranked: int  # of those, the ones an earlier stage ranked candidates for
    top_right: int
    top_accuracy: float  # top_right / ranked
    # gold_rank[i]: ranked records whose best-placed gold label is the earlier stages' (i+1)-th
    # candidate; the last entry: those with no gold label among the candidates recorded (a trace keeps
    # the top 5). An LLM held to their top k (`stages.llm.choose_from_top`) is right on at most within(k).
    gold_rank: list[int] = Field(default_factory=list)

    def within(self, k: int) -> int:
        """Ranked records with a gold label among the earlier stages' first k candidates."""
        return sum(self.gold_rank[:-1][:k])


class KindSummary(_Model):
    n: int
    accuracy: float
    stages: dict[str, KindStage]
    handoff: Handoff | None = None  # the kind's records the cheap stages left; None when they left none


class Confusion(_Model):
    """Gold primary (rows, the gold categories first) against predicted primary (columns)."""

    labels: list[str]  # the columns: every gold and predicted category, then "undecided"
    matrix: list[list[int]]


class ReliabilityBin(_Model):
    lo: float
    hi: float
    n: int
    confidence: float  # mean confidence in the bin
    accuracy: float  # observed


class Reliability(_Model):
    n: int
    ece: float | None  # None when there is nothing to bin
    bins: list[ReliabilityBin]


class StageReliability(Reliability):
    reached: Reliability  # every item the stage scored, decided or not, by its best candidate


class TokenCount(_Model):
    prompt: int
    completion: int


class LlmCall(_Model):
    """One LLM call as this run measured it, or as `prices.llm_call` projects it."""

    basis: str
    calls: int
    tokens_per_char: float
    prompt_tokens: float
    completion_tokens: float
    latency_ms: float


class SideCost(_Model):
    """One side of the comparison (the cascade, or the LLM alone), per 1,000 GIFs."""

    llm_per_1000_usd: float
    lambda_per_1000_usd: float
    stepfunctions_per_1000_usd: float
    per_1000_usd: float


class ModelVsAllLlm(_Model):
    cascade: SideCost
    all_llm: SideCost
    ratio: float | None  # the cascade's cost over the LLM alone's; null when the LLM alone costs nothing


class VsAllLlm(_Model):
    """The cascade beside sending every GIF to the LLM alone, priced the same way, per priced model."""

    llm_call: LlmCall
    prompts: str  # how prompts were sized: each record's own, or the typical call's mean
    share_reaching_llm: float
    prompt_tokens_per_1000: dict[str, int]  # side -> prompt tokens per 1,000 GIFs
    by_model: dict[str, ModelVsAllLlm]


class CostSummary(_Model):
    per_1000_usd: float
    llm_per_1000_usd: float
    lambda_per_1000_usd: float
    stepfunctions_per_1000_usd: float
    llm_tokens: TokenCount
    by_model_per_1000_usd: dict[str, float]  # the same LLM tokens priced as every configured model
    vs_all_llm: VsAllLlm | None = None  # None in summaries written before it


class CurvePoint(_Model):
    threshold: float
    llm_share: float
    accuracy: float
    chosen: bool
    folds: list[int] | None = None  # cross-validated: the folds whose fitted margin this is


class OperatingPoint(_Model):
    llm_share: float
    accuracy: float
    threshold: float | None = None  # the margin of a run with one threshold
    fold_thresholds: list[float] | None = None  # cross-validated or --train: each fold's fitted margin


class FoldMark(_Model):
    fold: int
    threshold: float
    llm_share: float
    accuracy: float


class Calibration(_Model):
    """A stage's fitted threshold and what it decides on the training records
    (gifcat.domain.learning.ThresholdChoice)."""

    threshold: float | None
    decided: int
    errors: int
    n: int
    coverage: float
    error_upper_bound: float
    target: float
    met: bool
    search: str = "lowest"  # summaries saved before the search was a setting used this one


class FoldSummary(_Model):
    fold: int
    n: int
    accuracy: float
    stages: dict[str, StageSummary]
    thresholds: dict[str, dict[str, float]]  # stage -> {min_score, min_margin} fitted on the other folds
    calibration: dict[str, Calibration] = Field(default_factory=dict)


class Spread(_Model):
    mean: float
    std: float
    min: float
    max: float


class StageSpread(_Model):
    accuracy: Spread | None = None  # None: the stage decided nothing in any fold
    share: Spread | None = None

    _empty = field_validator("accuracy", "share", mode="before")(_empty_is_none)


class FoldSpread(_Model):
    accuracy: Spread | None = None
    stages: dict[str, StageSpread] = Field(default_factory=dict)

    _empty = field_validator("accuracy", mode="before")(_empty_is_none)


class SeedStage(_Model):
    decided: int
    right: int


class SeedRun(_Model):
    """One seed's evaluation under `--repeats`: its accuracy and what each stage decided and got right."""

    seed: int
    accuracy: float
    stages: dict[str, SeedStage]


class RepeatStage(_Model):
    decided: Spread
    accuracy: Spread | None = None  # None: the stage decided nothing under any seed
    pooled_decided: int
    pooled_right: int
    pooled_accuracy: float | None = None

    _empty = field_validator("accuracy", mode="before")(_empty_is_none)


class Repeats(_Model):
    """`--repeats R`: the same evaluation under R seeds (the draw of the folds, and of the inner folds
    whose out-of-fold scores calibrate the thresholds). A stage whose threshold a record or two decide
    moves with the draw; here is how far, each seed's figures, and the figures pooled over the seeds."""

    seeds: list[SeedRun]
    accuracy: Spread
    stages: dict[str, RepeatStage]


class Fitting(_Model):
    cv: int | None = None
    seed: int | None = None
    train: str | None = None
    n_train: int | None = None
    # --train: ids of evaluated records that a training record repeats (same content): in-sample
    also_in_train: list[str] | None = None


class BaselineSummary(_Model):
    accuracy: float
    micro_f1: float
    llm_share: float
    cost_per_1000_usd: float | None = None
    cost: CostSummary | None = None


class LlmVsEarlier(_Model):
    """The LLM step beside the earlier stages' first candidate, on the records the LLM answered: how
    often it only confirmed that candidate, and what it added (its accuracy against the candidate's).
    A weak model that echoes the candidate costs a call and adds nothing."""

    answered: int
    same_as_earlier_top: int
    accuracy: float
    earlier_top_accuracy: float  # the earlier stages' first candidate, on the same records
    accuracy_when_same: float
    accuracy_when_different: float


class EvalSummary(_Model):
    """One evaluation run. Optional parts are there when the run made them: cost with settings, the
    curve with --until llm and --report, folds under --cv/--train, baselines with --report."""

    n: int
    accuracy: float
    micro_f1: float
    stages: dict[str, StageSummary]
    undecided: int
    statuses: dict[str, int]
    llm_share: float
    latency_ms: Latency
    confusion: Confusion
    kinds: dict[str, KindSummary]
    reliability: dict[str, StageReliability]
    llm_vs_earlier: LlmVsEarlier | None = None  # when the LLM answered and an earlier stage ranked
    handoff: Handoff | None = None  # when the cheap stages left any record
    cost: CostSummary | None = None
    cost_per_1000_usd: float | None = None
    baseline: str | None = None  # this summary is of that single-model baseline, not the cascade
    baselines: dict[str, BaselineSummary] | None = None
    operating_curve: list[CurvePoint] | None = None
    operating_point: OperatingPoint | None = None
    operating_folds: list[FoldMark] | None = None
    fitting: Fitting | None = None
    folds: list[FoldSummary] | None = None
    fold_spread: FoldSpread | None = None
    repeats: Repeats | None = None  # --repeats: the run under each seed; the figures above are the first's
    command: str | None = None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


@dataclass
class Prediction:
    record: LabelledRecord
    result: Classification
    elapsed_ms: float

    @property
    def correct(self) -> bool:
        return self.result.decided and self.result.primary in self.record.labels

    def trace(self, stage: StageName) -> StageTrace | None:
        return next((t for t in self.result.stages if t.stage is stage), None)

    @property
    def left_by_cheap_stages(self) -> bool:
        """Not decided by tags, rules or embedding: the LLM's, or undecided."""
        return not (self.result.decided and self.result.decided_by is not StageName.LLM)

    def earlier_candidates(self) -> list[Candidate]:
        """The candidates of the last stage before the LLM that ranked any, best first: what the LLM
        was shown as the earlier stages' candidates (empty when no stage ranked any)."""
        for t in reversed(self.result.stages):
            if t.stage is not StageName.LLM and t.candidates:
                return list(t.candidates)
        return []

    def earlier_ranking(self) -> list[str]:
        return [c.category for c in self.earlier_candidates()]

    def earlier_top(self) -> str | None:
        """The earlier stages' best guess, as the LLM was shown it."""
        ranked = self.earlier_ranking()
        return ranked[0] if ranked else None

    def gold_rank(self) -> int | None:
        """Where the best-placed gold label stands among the earlier stages' candidates (1: first);
        None when none of them is a gold label."""
        ranked = self.earlier_ranking()
        return next((i for i, c in enumerate(ranked, 1) if c in self.record.labels), None)

    def line(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
            "primary": self.result.primary,
            "labels": self.result.labels,
            "decided_by": self.result.decided_by.value if self.result.decided_by else None,
            "confidence": self.result.confidence,
            "status": self.result.status.value,
            # The embedding stage's memory: "bundled", a published "v000003", "in-process" (--cv folds).
            "artefact_version": self.result.artefact_version,
            # What the cheap stages would have answered where they left the item (the LLM's first
            # candidate): scores a stronger last step against the same run.
            "earlier_top": self.earlier_top() if self.left_by_cheap_stages else None,
            # ...and their candidates with scores (the top ones a trace keeps): another last step, or
            # another way of reading them, can be scored offline (scripts/measure_llm_scoring.py).
            "earlier_candidates": [
                {"category": c.category, "score": round(c.score, 6)} for c in self.earlier_candidates()
            ] if self.left_by_cheap_stages else None,
        }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def _latency(values: Iterable[float]) -> Latency:
    ordered = sorted(values)
    if not ordered:
        return Latency(p50=0.0, p95=0.0)

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return Latency(p50=pct(0.5), p95=pct(0.95))


def micro_f1(preds: Sequence[Prediction]) -> float:
    tp = fp = fn = 0
    for p in preds:
        predicted = set(p.result.labels) if p.result.decided else set()
        gold = set(p.record.labels)
        tp += len(predicted & gold)
        fp += len(predicted - gold)
        fn += len(gold - predicted)
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0


@dataclass
class Report:
    predictions: list[Prediction] = field(default_factory=list)
    prompt_sizes: PromptSizes | None = None  # set by `gifcat eval` for the cost beside the LLM alone

    def summary(self, settings: Settings | None = None) -> EvalSummary:
        preds = self.predictions
        n = len(preds)
        by_stage: dict[str, list[Prediction]] = defaultdict(list)
        for p in preds:
            if p.result.decided and p.result.decided_by:
                by_stage[p.result.decided_by.value].append(p)
        stages: dict[str, StageSummary] = {}
        for name in StageName:
            decided = by_stage.get(name.value, [])
            ran = [t.elapsed_ms for p in preds if (t := p.trace(name))]
            if not ran:
                continue
            stages[name.value] = StageSummary(
                decided=len(decided),
                share=_ratio(len(decided), n),
                reached=len(ran),
                accuracy=_ratio(sum(p.correct for p in decided), len(decided)),
                micro_f1=micro_f1(decided),
                latency_ms=_latency(ran),
            )
        reached_llm = sum(p.trace(StageName.LLM) is not None for p in preds)
        cost = cost_summary(preds, settings, self.prompt_sizes) if settings is not None else None
        return EvalSummary(
            n=n,
            accuracy=_ratio(sum(p.correct for p in preds), n),
            micro_f1=micro_f1(preds),
            stages=stages,
            undecided=n - sum(len(v) for v in by_stage.values()),
            statuses=dict(Counter(p.result.status.value for p in preds)),
            llm_share=_ratio(reached_llm, n),
            latency_ms=_latency(p.elapsed_ms for p in preds),
            confusion=self.confusion(),
            kinds=self.kinds(),
            reliability=reliability(self),
            llm_vs_earlier=self.llm_vs_earlier(),
            handoff=self.handoff(),
            cost=cost,
            cost_per_1000_usd=cost.per_1000_usd if cost else None,
        )

    def llm_vs_earlier(self) -> LlmVsEarlier | None:
        pairs = [(p, top) for p in self.predictions
                 if p.result.decided and p.result.decided_by is StageName.LLM and (top := p.earlier_top())]
        if not pairs:
            return None
        same = [p for p, top in pairs if p.result.primary == top]
        different = [p for p, top in pairs if p.result.primary != top]
        return LlmVsEarlier(
            answered=len(pairs),
            same_as_earlier_top=len(same),
            accuracy=_ratio(sum(p.correct for p, _ in pairs), len(pairs)),
            earlier_top_accuracy=_ratio(sum(top in p.record.labels for p, top in pairs), len(pairs)),
            accuracy_when_same=_ratio(sum(p.correct for p in same), len(same)),
            accuracy_when_different=_ratio(sum(p.correct for p in different), len(different)),
        )

    def handoff(self) -> Handoff | None:
        return _handoff(self.predictions)

    def kinds(self) -> dict[str, KindSummary]:
        """Accuracy and per-stage decided/accuracy for each value of the records' `kind` field."""
        groups: dict[str, list[Prediction]] = defaultdict(list)
        for p in self.predictions:
            if p.record.kind:
                groups[p.record.kind].append(p)
        out = {}
        for kind, preds in sorted(groups.items()):
            stages = {}
            for name in StageName:
                decided = [p for p in preds if p.result.decided and p.result.decided_by is name]
                if decided:
                    stages[name.value] = KindStage(
                        decided=len(decided), accuracy=_ratio(sum(p.correct for p in decided), len(decided))
                    )
            out[kind] = KindSummary(
                n=len(preds), accuracy=_ratio(sum(p.correct for p in preds), len(preds)), stages=stages,
                handoff=_handoff(preds),
            )
        return out

    def confusion(self) -> Confusion:
        """Gold primary (rows) against predicted primary (columns), undecided as its own column."""
        gold = sorted({p.record.primary or p.record.labels[0] for p in self.predictions})
        predicted = {p.result.primary for p in self.predictions if p.result.decided and p.result.primary}
        labels = [*sorted(set(gold) | predicted), UNDECIDED]
        index = {name: i for i, name in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for p in self.predictions:
            row = index[p.record.primary or p.record.labels[0]]
            col = index[p.result.primary] if p.result.decided and p.result.primary else index[UNDECIDED]
            matrix[row][col] += 1
        return Confusion(labels=labels, matrix=matrix)

    def write_predictions(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as fh:
            for p in self.predictions:
                fh.write(json.dumps(p.line(), ensure_ascii=False) + "\n")


def _handoff(preds: Sequence[Prediction]) -> Handoff | None:
    left = [p for p in preds if p.left_by_cheap_stages]
    if not left:
        return None
    tops = [(p, top) for p in left if (top := p.earlier_top())]
    right = sum(top in p.record.labels for p, top in tops)
    ranks = [p.gold_rank() for p, _ in tops]
    deepest = max((r for r in ranks if r is not None), default=1)
    gold_rank = [sum(r == i for r in ranks) for i in range(1, deepest + 1)] + [ranks.count(None)]
    return Handoff(left=len(left), ranked=len(tops), top_right=right, top_accuracy=_ratio(right, len(tops)),
                   gold_rank=gold_rank)


def _spread(values: Sequence[float]) -> Spread | None:
    """Mean, (sample) standard deviation, min and max; None for no values."""
    if not values:
        return None
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
    return Spread(mean=round(mean, 4), std=round(var**0.5, 4), min=min(values), max=max(values))


def fold_spread(folds: Sequence[FoldSummary]) -> FoldSpread:
    """Mean, standard deviation, min and max of the folds' accuracy and of each stage's accuracy."""
    stages = {}
    for name in sorted({name for f in folds for name in f.stages}):
        ran = [f.stages[name] for f in folds if name in f.stages]
        stages[name] = StageSpread(
            accuracy=_spread([s.accuracy for s in ran if s.decided]), share=_spread([s.share for s in ran])
        )
    return FoldSpread(accuracy=_spread([f.accuracy for f in folds]), stages=stages)


def repeat_summary(runs: Sequence[tuple[int, EvalSummary]]) -> Repeats:
    """Each seed's run of one evaluation (`--repeats`), their spread, and each stage pooled over them."""
    seeds = [
        SeedRun(
            seed=seed,
            accuracy=summary.accuracy,
            # accuracy is rounded to 4 places: decided x accuracy is the count for any run under 5,000
            stages={k: SeedStage(decided=s.decided, right=round(s.decided * s.accuracy))
                    for k, s in summary.stages.items()},
        )
        for seed, summary in runs
    ]
    stages = {}
    for name in seeds[0].stages:
        ran = [r.stages[name] for r in seeds if name in r.stages]
        decided, right = sum(s.decided for s in ran), sum(s.right for s in ran)
        counts = _spread([float(s.decided) for s in ran])
        assert counts is not None  # the first seed ran this stage
        stages[name] = RepeatStage(
            decided=counts,
            accuracy=_spread([s.right / s.decided for s in ran if s.decided]),
            pooled_decided=decided,
            pooled_right=right,
            pooled_accuracy=round(right / decided, 4) if decided else None,
        )
    accuracy = _spread([r.accuracy for r in seeds])
    assert accuracy is not None  # runs is never empty
    return Repeats(seeds=seeds, accuracy=accuracy, stages=stages)


def cost_summary(
    preds: Sequence[Prediction], settings: Settings, sizes: PromptSizes | None = None
) -> CostSummary:
    """What the run would cost on AWS, per 1,000 GIFs, from what was recorded (gifcat.domain.costs per item).

    LLM tokens are also priced as every configured model, to compare endpoints without re-running; and
    the cascade is set beside sending every GIF to the LLM alone, priced the same way (`vs_all_llm`).
    """
    n = max(len(preds), 1)
    prices = settings.prices
    totals = {"llm_usd": 0.0, "lambda_usd": 0.0, "stepfunctions_usd": 0.0, "total_usd": 0.0}
    tokens_in = tokens_out = 0
    for p in preds:
        for key, value in item_cost(p.result.stages, prices).items():
            totals[key] += value
        for t in p.result.stages:
            if t.stage is StageName.LLM:
                tokens_in += t.usage.get("prompt_tokens", 0)
                tokens_out += t.usage.get("completion_tokens", 0)
    per_1000 = 1000.0 / n
    by_model = {
        model: round(
            (tokens_in * price.input_per_million + tokens_out * price.output_per_million) / 1e6 * per_1000, 6
        )
        for model, price in prices.llm.items()
    }
    return CostSummary(
        per_1000_usd=round(totals["total_usd"] * per_1000, 6),
        llm_per_1000_usd=round(totals["llm_usd"] * per_1000, 6),
        lambda_per_1000_usd=round(totals["lambda_usd"] * per_1000, 6),
        stepfunctions_per_1000_usd=round(totals["stepfunctions_usd"] * per_1000, 6),
        llm_tokens=TokenCount(prompt=tokens_in, completion=tokens_out),
        by_model_per_1000_usd=by_model,
        vs_all_llm=vs_all_llm(preds, settings, sizes),
    )


@dataclass
class PromptSizes:
    """Characters of the LLM prompt per record id, built by the configured prompt: `alone`, what the LLM
    alone would be sent (no earlier stage, any category); `cascade`, what the cascade's LLM step sends
    or, in a run that stopped before it, would send the records the embedding stage left."""

    alone: dict[str, int] = field(default_factory=dict)
    cascade: dict[str, int] = field(default_factory=dict)


def _llm_calls(preds: Sequence[Prediction]) -> list[StageTrace]:
    return [t for p in preds if (t := p.trace(StageName.LLM)) is not None and t.usage.get("calls", 0) > 0]


def typical_llm_call(preds: Sequence[Prediction], settings: Settings) -> LlmCall:
    """What one LLM call costs in this run: tokens per prompt character (so that any prompt can be
    priced), completion tokens and latency, the means of this run's calls (latency of those not
    replayed from the call cache); what the run cannot tell comes from `prices.llm_call`."""
    ref = settings.prices.llm_call
    calls = _llm_calls(preds)
    sized = [t for t in calls if t.usage.get("prompt_chars", 0) > 0]
    live = [t for t in calls if not t.usage.get("cached_calls", 0)]
    k = len(calls)

    def mean(traces: list[StageTrace], value: Callable[[StageTrace], float]) -> float:
        return sum(value(t) for t in traces) / len(traces)

    return LlmCall(
        basis=(f"measured: this run's {k} LLM calls" if calls else "projected: no LLM call in this run")
        + ("" if sized and live else f"; from prices.llm_call: {ref.source}"),
        calls=k,
        tokens_per_char=round(
            sum(t.usage["prompt_tokens"] for t in sized) / sum(t.usage["prompt_chars"] for t in sized), 4
        ) if sized else ref.tokens_per_char,
        prompt_tokens=round(mean(calls, lambda t: t.usage.get("prompt_tokens", 0)), 1)
        if calls else ref.prompt_tokens,
        completion_tokens=round(mean(calls, lambda t: t.usage.get("completion_tokens", 0)), 1)
        if calls else ref.completion_tokens,
        latency_ms=round(mean(live, lambda t: t.elapsed_ms), 1) if live else ref.latency_ms,
    )


def vs_all_llm(
    preds: Sequence[Prediction], settings: Settings, sizes: PromptSizes | None = None
) -> VsAllLlm:
    """Per priced LLM model: the cascade's cost per 1,000 GIFs and that of sending every GIF to the LLM
    alone, both priced by gifcat.costs (tokens at that model's prices, Lambda, the state machine run),
    and their ratio.

    The cascade's LLM calls are priced by their recorded tokens. The LLM alone is priced one call per
    record, its prompt's characters (`sizes.alone`) times this run's tokens per character; in a run
    that stopped before the LLM, each record the embedding stage left is given the call the cascade
    would make (`sizes.cascade`). Without sizes, the typical call's mean prompt serves.
    """
    n = max(len(preds), 1)
    prices = settings.prices
    call = typical_llm_call(preds, settings)
    projected = call.calls == 0
    per_char = call.tokens_per_char

    def prompt_tokens(chars: dict[str, int] | None, record_id: str) -> float:
        if chars is not None and record_id in chars:
            return chars[record_id] * per_char
        return float(call.prompt_tokens)

    def llm_trace(cost: float) -> StageTrace:  # a priced call (its tokens priced apart, unrounded)
        return StageTrace(stage=StageName.LLM, decided=True, elapsed_ms=call.latency_ms, cost_usd=cost)

    reached = 0
    tokens = {"cascade": 0.0, "all_llm": 0.0}
    out: dict[str, ModelVsAllLlm] = {}
    for model, price in prices.llm.items():

        def priced(prompt: float, completion: float, price: Any = price) -> float:
            return (prompt * price.input_per_million + completion * price.output_per_million) / 1e6

        sides = {side: {"llm_usd": 0.0, "lambda_usd": 0.0, "stepfunctions_usd": 0.0} for side in SIDES}
        reached = 0
        tokens = {"cascade": 0.0, "all_llm": 0.0}
        for p in preds:
            rid = p.record.id
            stages = list(p.result.stages)
            asked = [t for t in stages if t.stage is StageName.LLM]
            llm = sum(priced(t.usage.get("prompt_tokens", 0), t.usage.get("completion_tokens", 0))
                      for t in asked)
            tokens["cascade"] += sum(t.usage.get("prompt_tokens", 0) for t in asked)
            if projected and p.result.status.value == UNDECIDED and p.trace(StageName.EMBEDDING) is not None:
                prompt = prompt_tokens(sizes.cascade if sizes else None, rid)
                extra = priced(prompt, call.completion_tokens)
                stages.append(llm_trace(extra))
                llm += extra
                tokens["cascade"] += prompt
            cost = item_cost(stages, prices)
            reached += any(t.stage is StageName.LLM for t in stages)
            sides["cascade"]["llm_usd"] += llm
            sides["cascade"]["lambda_usd"] += cost["lambda_usd"]
            sides["cascade"]["stepfunctions_usd"] += cost["stepfunctions_usd"]
            prompt = prompt_tokens(sizes.alone if sizes else None, rid)
            alone_llm = priced(prompt, call.completion_tokens)
            alone = item_cost([llm_trace(alone_llm)], prices)
            tokens["all_llm"] += prompt
            sides["all_llm"]["llm_usd"] += alone_llm
            sides["all_llm"]["lambda_usd"] += alone["lambda_usd"]
            sides["all_llm"]["stepfunctions_usd"] += alone["stepfunctions_usd"]
        figures: dict[str, SideCost] = {}
        for side, parts in sides.items():
            figures[side] = SideCost(
                **{k.replace("_usd", "_per_1000_usd"): round(v * 1000.0 / n, 6) for k, v in parts.items()},
                per_1000_usd=round(sum(parts.values()) * 1000.0 / n, 6),
            )
        cascade, alone_total = figures["cascade"].per_1000_usd, figures["all_llm"].per_1000_usd
        out[model] = ModelVsAllLlm(
            cascade=figures["cascade"],
            all_llm=figures["all_llm"],
            ratio=round(cascade / alone_total, 4) if alone_total else None,
        )
    return VsAllLlm(
        llm_call=call,
        prompts="each record's own prompt" if sizes else "the typical call's mean prompt",
        share_reaching_llm=_ratio(reached, n),
        prompt_tokens_per_1000={side: round(v * 1000.0 / n) for side, v in tokens.items()},
        by_model=out,
    )

def evaluate(
    records: Sequence[LabelledRecord],
    classify: Callable[[LabelledRecord], Classification],
    progress: Callable[[Iterable[LabelledRecord]], Iterable[LabelledRecord]] | None = None,
) -> Report:
    report = Report()
    for record in progress(records) if progress else records:
        started = time.perf_counter()
        result = classify(record)
        report.predictions.append(Prediction(record, result, (time.perf_counter() - started) * 1000.0))
    return report


RELIABILITY_BINS = 10


def _bins(points: Sequence[tuple[float, bool]], bins: int = RELIABILITY_BINS) -> Reliability:
    """Equal-width confidence bins over [0, 1]: per non-empty bin its count, mean confidence and observed
    accuracy; and the expected calibration error, the count-weighted mean gap between the two."""
    groups: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for conf, ok in points:
        c = min(max(conf, 0.0), 1.0)
        # the epsilon keeps 0.7 in [0.7, 0.8) although 0.7 * 10 may land a hair under 7
        groups[min(int(c * bins + 1e-9), bins - 1)].append((c, ok))
    out, gap = [], 0.0
    for i in sorted(groups):
        group = groups[i]
        conf = sum(c for c, _ in group) / len(group)
        acc = sum(ok for _, ok in group) / len(group)
        gap += len(group) * abs(acc - conf)
        out.append(ReliabilityBin(lo=round(i / bins, 4), hi=round((i + 1) / bins, 4), n=len(group),
                                  confidence=round(conf, 4), accuracy=round(acc, 4)))
    return Reliability(n=len(points), ece=round(gap / len(points), 4) if points else None, bins=out)


def reliability(report: Report, bins: int = RELIABILITY_BINS) -> dict[str, StageReliability]:
    """Per stage, is its confidence a probability? What it decided, binned by `Classification.confidence`
    against whether the answer was right (bins, n, ece); and under `reached`, every item the stage scored,
    decided or not, by its best candidate: the decided ones alone only show scores above the threshold."""
    out: dict[str, StageReliability] = {}
    for name in StageName:
        decided = [(p.result.confidence, p.correct) for p in report.predictions
                   if p.result.decided and p.result.decided_by is name]
        reached = [
            (t.candidates[0].score, t.candidates[0].category in p.record.labels)
            for p in report.predictions
            if (t := p.trace(name)) is not None and t.candidates and t.error is None
        ]
        if decided or reached:
            out[name.value] = StageReliability(**dict(_bins(decided, bins)), reached=_bins(reached, bins))
    return out


@dataclass(frozen=True)
class _CurveRow:
    """One prediction as the margin sweep sees it."""

    triage: bool | None  # triage decided it: was it right (None: triage left it)
    top: float | None  # the embedding stage's best score; None when it cannot decide whatever the margin
    margin: float
    embedding_ok: bool
    llm_ok: bool


def _curve_rows(report: Report, llm_correct: dict[str, bool]) -> list[_CurveRow]:
    rows = []
    for p in report.predictions:
        emb = p.trace(StageName.EMBEDDING)
        triage_decided = p.result.decided_by in (StageName.TAGS, StageName.RULES)
        llm_ok = llm_correct.get(p.record.id, False)
        # An error or an abstention decides nothing, as in the cascade: the item goes on to the LLM.
        if triage_decided or emb is None or not emb.candidates or emb.error or emb.abstained:
            rows.append(_CurveRow(p.correct if triage_decided else None, None, 0.0, False, llm_ok))
            continue
        top = emb.candidates[0].score
        second = emb.candidates[1].score if len(emb.candidates) > 1 else 0.0
        # unrounded, as cascade.passes compares it
        rows.append(_CurveRow(None, top, top - second, emb.candidates[0].category in p.record.labels, llm_ok))
    return rows


def _sweep_point(rows: Sequence[_CurveRow], thresholds: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Accuracy and LLM share when row i is judged by thresholds[i] = (min_score, min_margin)."""
    correct = to_llm = 0
    for row, (min_score, min_margin) in zip(rows, thresholds, strict=True):
        if row.triage is not None:
            correct += row.triage
        elif row.top is not None and row.top >= min_score and row.margin >= min_margin:
            correct += row.embedding_ok
        else:
            to_llm += 1
            correct += row.llm_ok
    n = max(len(rows), 1)
    return round(to_llm / n, 4), round(correct / n, 4)  # (llm_share, accuracy)


def _margins(extra: Iterable[float], margins: Sequence[float] | None) -> list[float]:
    return sorted({*(margins or [round(i * 0.02, 2) for i in range(51)]), *extra})


def operating_curve(
    report: Report,
    llm_correct: dict[str, bool],
    min_score: float,
    chosen_margin: float,
    margins: Sequence[float] | None = None,
) -> tuple[list[CurvePoint], OperatingPoint]:
    """Accuracy against the LLM's share as the embedding margin moves: what each threshold would buy.

    Items triage decided keep their answer; the rest are decided by the embedding stage when its margin
    clears the threshold (and it neither failed nor abstained) and by the LLM otherwise (`llm_correct`:
    the LLM's answer was right, per id).
    """
    rows = _curve_rows(report, llm_correct)
    curve = []
    for m in _margins([chosen_margin], margins):
        share, accuracy = _sweep_point(rows, [(min_score, m)] * len(rows))
        curve.append(CurvePoint(threshold=m, llm_share=share, accuracy=accuracy, chosen=m == chosen_margin))
    chosen = next(c for c in curve if c.chosen)
    point = OperatingPoint(threshold=chosen.threshold, llm_share=chosen.llm_share, accuracy=chosen.accuracy)
    return curve, point


def cv_operating_curve(
    report: Report,
    llm_correct: dict[str, bool],
    folds: Sequence[FoldSummary],
    margins: Sequence[float] | None = None,
) -> tuple[list[CurvePoint], OperatingPoint, list[FoldMark]]:
    """The operating curve of a cross-validated (or --train) run: the curve, the run's point and each
    fold's mark on the curve (the summary's operating_curve, operating_point and operating_folds).

    `report` holds the out-of-fold predictions fold after fold and `folds` the summary's folds in the
    same order (each with `n` and its fitted `thresholds`). The curve sweeps one margin over every
    out-of-fold item; the marks are the points of the curve at each fold's fitted margin, and the
    point is the run itself, each fold's items judged at their own fold's margin.
    """
    if sum(f.n for f in folds) != len(report.predictions):
        raise ValueError(
            f"folds cover {sum(f.n for f in folds)} records, the report has {len(report.predictions)} "
            "predictions"
        )
    rows = _curve_rows(report, llm_correct)
    embedding = [f.thresholds["embedding"] for f in folds]
    fitted = [(float(t["min_score"]), float(t["min_margin"])) for t in embedding]
    own = [t for f, t in zip(folds, fitted, strict=True) for _ in range(f.n)]
    curve = []
    for m in _margins((margin for _, margin in fitted), margins):
        chosen_by = [f.fold for f, (_, margin) in zip(folds, fitted, strict=True) if margin == m]
        # the sweep keeps each fold's own min_score and moves the margin only
        share, accuracy = _sweep_point(rows, [(score, m) for score, _ in own])
        curve.append(
            CurvePoint(
                threshold=m, llm_share=share, accuracy=accuracy, chosen=bool(chosen_by), folds=chosen_by
            )
        )
    at = {c.threshold: c for c in curve}
    marks = [
        FoldMark(fold=f.fold, threshold=margin, llm_share=at[margin].llm_share, accuracy=at[margin].accuracy)
        for f, (_, margin) in zip(folds, fitted, strict=True)
    ]
    share, accuracy = _sweep_point(rows, own)
    margins_used = [margin for _, margin in fitted]
    point = OperatingPoint(llm_share=share, accuracy=accuracy, fold_thresholds=margins_used)
    return curve, point, marks
