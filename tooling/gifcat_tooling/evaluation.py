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

from gifcat.config import Settings
from gifcat.domain.costs import item_cost
from gifcat.domain.model import Classification, StageName, StageTrace
from gifcat.domain.records import LabelledRecord

UNDECIDED = "undecided"


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

    def line(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
            "primary": self.result.primary,
            "labels": self.result.labels,
            "decided_by": self.result.decided_by.value if self.result.decided_by else None,
            "confidence": self.result.confidence,
            "status": self.result.status.value,
        }


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def _latency(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0}

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": pct(0.5), "p95": pct(0.95)}


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

    def summary(self, settings: Settings | None = None) -> dict[str, Any]:
        preds = self.predictions
        n = len(preds)
        by_stage: dict[str, list[Prediction]] = defaultdict(list)
        for p in preds:
            if p.result.decided and p.result.decided_by:
                by_stage[p.result.decided_by.value].append(p)
        stages = {}
        for name in StageName:
            decided = by_stage.get(name.value, [])
            ran = [t.elapsed_ms for p in preds if (t := p.trace(name))]
            if not ran:
                continue
            stages[name.value] = {
                "decided": len(decided),
                "share": _ratio(len(decided), n),
                "reached": len(ran),
                "accuracy": _ratio(sum(p.correct for p in decided), len(decided)),
                "micro_f1": micro_f1(decided),
                "latency_ms": _latency(ran),
            }
        reached_llm = sum(p.trace(StageName.LLM) is not None for p in preds)
        summary: dict[str, Any] = {
            "n": n,
            "accuracy": _ratio(sum(p.correct for p in preds), n),
            "micro_f1": micro_f1(preds),
            "stages": stages,
            "undecided": n - sum(len(v) for v in by_stage.values()),
            "statuses": dict(Counter(p.result.status.value for p in preds)),
            "llm_share": _ratio(reached_llm, n),
            "latency_ms": _latency(p.elapsed_ms for p in preds),
            "confusion": self.confusion(),
            "kinds": self.kinds(),
            "reliability": reliability(self),
        }
        if settings is not None:
            summary["cost"] = cost_summary(preds, settings)
            summary["cost_per_1000_usd"] = summary["cost"]["per_1000_usd"]
        return summary

    def kinds(self) -> dict[str, Any]:
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
                    stages[name.value] = {
                        "decided": len(decided),
                        "accuracy": _ratio(sum(p.correct for p in decided), len(decided)),
                    }
            out[kind] = {"n": len(preds), "accuracy": _ratio(sum(p.correct for p in preds), len(preds)),
                         "stages": stages}
        return out

    def confusion(self) -> dict[str, Any]:
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
        return {"labels": labels, "matrix": matrix}

    def write_predictions(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as fh:
            for p in self.predictions:
                fh.write(json.dumps(p.line(), ensure_ascii=False) + "\n")


def fold_spread(folds: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean, standard deviation, min and max of the folds' accuracy and of each stage's accuracy."""

    def spread(values: list[float]) -> dict[str, float]:
        if not values:
            return {}
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)
        return {"mean": round(mean, 4), "std": round(var**0.5, 4), "min": min(values), "max": max(values)}

    out: dict[str, Any] = {"accuracy": spread([f["accuracy"] for f in folds]), "stages": {}}
    names = {name for f in folds for name in f["stages"]}
    for name in sorted(names):
        out["stages"][name] = {
            "accuracy": spread([f["stages"][name]["accuracy"] for f in folds
                                if name in f["stages"] and f["stages"][name]["decided"]]),
            "share": spread([f["stages"][name]["share"] for f in folds if name in f["stages"]]),
        }
    return out


def cost_summary(preds: Sequence[Prediction], settings: Settings) -> dict[str, Any]:
    """What the run would cost on AWS, per 1,000 GIFs, from what was recorded (gifcat.domain.costs per item).

    LLM tokens are also priced as every configured model, to compare endpoints without re-running.
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
    return {
        "per_1000_usd": round(totals["total_usd"] * per_1000, 6),
        "llm_per_1000_usd": round(totals["llm_usd"] * per_1000, 6),
        "lambda_per_1000_usd": round(totals["lambda_usd"] * per_1000, 6),
        "stepfunctions_per_1000_usd": round(totals["stepfunctions_usd"] * per_1000, 6),
        "llm_tokens": {"prompt": tokens_in, "completion": tokens_out},
        "by_model_per_1000_usd": by_model,
    }


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


def _bins(points: Sequence[tuple[float, bool]], bins: int = RELIABILITY_BINS) -> dict[str, Any]:
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
        out.append({"lo": round(i / bins, 4), "hi": round((i + 1) / bins, 4), "n": len(group),
                    "confidence": round(conf, 4), "accuracy": round(acc, 4)})
    return {"n": len(points), "ece": round(gap / len(points), 4) if points else None, "bins": out}


def reliability(report: Report, bins: int = RELIABILITY_BINS) -> dict[str, Any]:
    """Per stage, is its confidence a probability? What it decided, binned by `Classification.confidence`
    against whether the answer was right (bins, n, ece); and under `reached`, every item the stage scored,
    decided or not, by its best candidate: the decided ones alone only show scores above the threshold."""
    out: dict[str, Any] = {}
    for name in StageName:
        decided = [(p.result.confidence, p.correct) for p in report.predictions
                   if p.result.decided and p.result.decided_by is name]
        reached = [
            (t.candidates[0].score, t.candidates[0].category in p.record.labels)
            for p in report.predictions
            if (t := p.trace(name)) is not None and t.candidates and t.error is None
        ]
        if decided or reached:
            out[name.value] = {**_bins(decided, bins), "reached": _bins(reached, bins)}
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


def _sweep_point(rows: Sequence[_CurveRow], thresholds: Sequence[tuple[float, float]]) -> dict[str, float]:
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
    return {"llm_share": round(to_llm / n, 4), "accuracy": round(correct / n, 4)}


def _margins(extra: Iterable[float], margins: Sequence[float] | None) -> list[float]:
    return sorted({*(margins or [round(i * 0.02, 2) for i in range(51)]), *extra})


def operating_curve(
    report: Report,
    llm_correct: dict[str, bool],
    min_score: float,
    chosen_margin: float,
    margins: Sequence[float] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Accuracy against the LLM's share as the embedding margin moves: what each threshold would buy.

    Items triage decided keep their answer; the rest are decided by the embedding stage when its margin
    clears the threshold (and it neither failed nor abstained) and by the LLM otherwise (`llm_correct`:
    the LLM's answer was right, per id).
    """
    rows = _curve_rows(report, llm_correct)
    curve = [
        {"threshold": m, **_sweep_point(rows, [(min_score, m)] * len(rows)), "chosen": m == chosen_margin}
        for m in _margins([chosen_margin], margins)
    ]
    chosen = next(c for c in curve if c["chosen"])
    return curve, {k: chosen[k] for k in ("threshold", "llm_share", "accuracy")}


def cv_operating_curve(
    report: Report,
    llm_correct: dict[str, bool],
    folds: Sequence[dict[str, Any]],
    margins: Sequence[float] | None = None,
) -> dict[str, Any]:
    """The operating curve of a cross-validated (or --train) run, as summary keys.

    `report` holds the out-of-fold predictions fold after fold and `folds` the summary's folds in the
    same order (each with `n` and its fitted `thresholds`). The curve sweeps one margin over every
    out-of-fold item; `operating_folds` are the points of the curve at each fold's fitted margin, and
    `operating_point` is the run itself, each fold's items judged at their own fold's margin.
    """
    if sum(f["n"] for f in folds) != len(report.predictions):
        raise ValueError(
            f"folds cover {sum(f['n'] for f in folds)} records, the report has {len(report.predictions)} "
            "predictions"
        )
    rows = _curve_rows(report, llm_correct)
    embedding = [f["thresholds"]["embedding"] for f in folds]
    fitted = [(float(t["min_score"]), float(t["min_margin"])) for t in embedding]
    own = [t for f, t in zip(folds, fitted, strict=True) for _ in range(f["n"])]
    curve = []
    for m in _margins((margin for _, margin in fitted), margins):
        chosen_by = [f["fold"] for f, (_, margin) in zip(folds, fitted, strict=True) if margin == m]
        # the sweep keeps each fold's own min_score and moves the margin only
        point = _sweep_point(rows, [(score, m) for score, _ in own])
        curve.append({"threshold": m, **point, "chosen": bool(chosen_by), "folds": chosen_by})
    at = {c["threshold"]: c for c in curve}
    marks = [{"fold": f["fold"], "threshold": margin, "llm_share": at[margin]["llm_share"],
              "accuracy": at[margin]["accuracy"]} for f, (_, margin) in zip(folds, fitted, strict=True)]
    point = {"fold_thresholds": [margin for _, margin in fitted], **_sweep_point(rows, own)}
    return {"operating_curve": curve, "operating_point": point, "operating_folds": marks}
