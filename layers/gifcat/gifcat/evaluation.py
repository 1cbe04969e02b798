"""Evaluation on labelled metadata: coverage and accuracy per stage, overall accuracy and micro-F1.

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

from gifcat.model import Classification, StageName
from gifcat.records import LabelledRecord


@dataclass
class Prediction:
    record: LabelledRecord
    result: Classification
    elapsed_ms: float

    @property
    def correct(self) -> bool:
        return self.result.decided and self.result.primary in self.record.labels

    def line(self) -> dict[str, Any]:
        return {
            "id": self.record.id,
            "primary": self.result.primary,
            "labels": self.result.labels,
            "decided_by": self.result.decided_by.value if self.result.decided_by else None,
            "confidence": self.result.confidence,
            "status": self.result.status.value,
        }


@dataclass
class Report:
    predictions: list[Prediction] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        preds = self.predictions
        n = len(preds)
        by_stage: dict[str, list[Prediction]] = defaultdict(list)
        for p in preds:
            if p.result.decided and p.result.decided_by:
                by_stage[p.result.decided_by.value].append(p)
        stages = {
            name.value: {
                "decided": len(by_stage[name.value]),
                "share": round(len(by_stage[name.value]) / n, 4) if n else 0.0,
                "accuracy": _ratio(sum(p.correct for p in by_stage[name.value]), len(by_stage[name.value])),
            }
            for name in StageName
            if by_stage.get(name.value)
        }
        reached_llm = sum(any(t.stage is StageName.LLM for t in p.result.stages) for p in preds)
        tp = fp = fn = 0
        for p in preds:
            predicted = set(p.result.labels) if p.result.decided else set()
            gold = set(p.record.labels)
            tp += len(predicted & gold)
            fp += len(predicted - gold)
            fn += len(gold - predicted)
        precision = _ratio(tp, tp + fp)
        recall = _ratio(tp, tp + fn)
        micro_f1 = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
        statuses = Counter(p.result.status.value for p in preds)
        return {
            "n": n,
            "accuracy": _ratio(sum(p.correct for p in preds), n),
            "micro_f1": micro_f1,
            "stages": stages,
            "undecided": n - sum(len(v) for v in by_stage.values()),
            "statuses": dict(statuses),
            "llm_share": _ratio(reached_llm, n),
            "latency_ms": _latency(p.elapsed_ms for p in preds),
        }

    def write_predictions(self, path: Path) -> None:
        with path.open("w", encoding="utf-8") as fh:
            for p in self.predictions:
                fh.write(json.dumps(p.line(), ensure_ascii=False) + "\n")


def _ratio(a: float, b: float) -> float:
    return round(a / b, 4) if b else 0.0


def _latency(values: Iterable[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0}

    def pct(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": pct(0.5), "p95": pct(0.95)}


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
