"""Evaluation on labelled metadata: does the cascade pay?

Per stage: coverage, accuracy on what it decided, micro-F1 and latency; overall accuracy and micro-F1;
a confusion matrix; cost per 1,000 GIFs (LLM tokens at the configured prices plus Lambda GB-seconds and
Step Functions transitions); and the operating curve, accuracy against the LLM's share, swept over the
embedding stage's margin.

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
from gifcat.costs import item_cost
from gifcat.model import Classification, StageName, StageTrace
from gifcat.records import LabelledRecord

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
    """What the run would cost on AWS, per 1,000 GIFs, from what was recorded (gifcat.costs per item).

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


def operating_curve(
    report: Report,
    llm_correct: dict[str, bool],
    min_score: float,
    chosen_margin: float,
    margins: Sequence[float] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Accuracy against the LLM's share as the embedding margin moves: what each threshold would buy.

    Items triage decided keep their answer; the rest are decided by the embedding stage when its margin
    clears the threshold and by the LLM otherwise (`llm_correct`: the LLM's answer was right, per id).
    """
    margins = sorted({*(margins or [round(i * 0.02, 2) for i in range(51)]), chosen_margin})
    rows: list[tuple[bool | None, float, float, bool]] = []  # triage correct, top, margin, embedding correct
    for p in report.predictions:
        emb = p.trace(StageName.EMBEDDING)
        triage_decided = p.result.decided_by in (StageName.TAGS, StageName.RULES)
        if triage_decided or emb is None or not emb.candidates:
            rows.append((p.correct if triage_decided else None, -1.0, -1.0, False))
            continue
        top = emb.candidates[0].score
        second = emb.candidates[1].score if len(emb.candidates) > 1 else 0.0
        rows.append((None, top, round(top - second, 6), emb.candidates[0].category in p.record.labels))
    n = max(len(rows), 1)
    curve = []
    for m in margins:
        correct = to_llm = 0
        for (triage_ok, top, margin, emb_ok), p in zip(rows, report.predictions, strict=True):
            if triage_ok is not None:
                correct += triage_ok
            elif top >= min_score and margin >= m:
                correct += emb_ok
            else:
                to_llm += 1
                correct += llm_correct.get(p.record.id, False)
        curve.append(
            {
                "threshold": m,
                "llm_share": round(to_llm / n, 4),
                "accuracy": round(correct / n, 4),
                "chosen": m == chosen_margin,
            }
        )
    chosen = next(c for c in curve if c["chosen"])
    return curve, {k: chosen[k] for k in ("threshold", "llm_share", "accuracy")}
