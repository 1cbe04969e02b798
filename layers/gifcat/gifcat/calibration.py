"""`gifcat calibrate`: pick a stage's min_score/min_margin from labelled records.

The embedding stage is scored once per record, then thresholds are swept over the stored outputs: the
chosen pair maximises coverage (share of records decided) subject to accuracy on the decided records
reaching a target. When the records are also the stage's kNN examples, the stage leaves each record out
of its own vote (it never counts a labelled example with the item's id), so the numbers stay honest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gifcat.model import Classification, GifItem, GifMetadata, Status
from gifcat.stages import Stage


def record_item(record: Mapping[str, Any]) -> GifItem:
    """A dev.jsonl-style record as the item the stages see (no GIF bytes)."""
    return GifItem(
        id=str(record["id"]),
        metadata=GifMetadata(
            title=record.get("title") or "",
            tags=tuple(record.get("tags") or ()),
            description=record.get("description") or "",
        ),
    )


def _grid(start: float, stop: float, step: float) -> list[float]:
    n = round((stop - start) / step)
    return [round(start + i * step, 4) for i in range(n + 1)]


def sweep(
    outcomes: Sequence[tuple[float, float, bool]], min_score: float, margins: Sequence[float]
) -> list[dict[str, float]]:
    """Coverage and accuracy-on-decided for each margin, given (top score, margin, correct) per record."""
    n = len(outcomes)
    curve = []
    for m in margins:
        decided = [ok for top, margin, ok in outcomes if top >= min_score and margin >= m]
        curve.append({
            "threshold": m,
            "coverage": round(len(decided) / n, 4) if n else 0.0,
            "accuracy": round(sum(decided) / len(decided), 4) if decided else 1.0,
            "decided": len(decided),
        })
    return curve


def calibrate_embedding(
    records: Iterable[Mapping[str, Any]],
    stage: Stage,
    target: float = 0.90,
    margins: Sequence[float] | None = None,
    min_scores: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Thresholds for the embedding stage (or any stage) that decide the most records at `target` accuracy.

    A prediction is correct when the top candidate is any of the record's gold `labels`. Returns
    {"min_score", "min_margin", "coverage", "accuracy", "target", "n", "top1_accuracy", "met_target",
    "curve": [{threshold, coverage, accuracy, decided}, ...]} with the curve swept over min_margin at the
    chosen min_score. When no pair reaches the target, the most accurate non-empty pair is returned and
    met_target is False.
    """
    margins = list(margins) if margins is not None else _grid(0.0, 0.9, 0.01)
    min_scores = list(min_scores) if min_scores is not None else _grid(0.0, 0.9, 0.05)
    so_far = Classification(status=Status.PENDING)
    outcomes: list[tuple[float, float, bool]] = []
    for record in records:
        out = stage.score(record_item(record), so_far)
        ranked = sorted(out.candidates, key=lambda c: c.score, reverse=True)
        if not ranked:  # the stage could not score: counts as never decided
            outcomes.append((-1.0, -1.0, False))
            continue
        runner_up = ranked[1].score if len(ranked) > 1 else 0.0
        margin = round(ranked[0].score - runner_up, 6)  # 0.5 - 0.4 must count as a 0.1 margin
        outcomes.append((ranked[0].score, margin, ranked[0].category in record["labels"]))
    n = len(outcomes)
    if n == 0:
        raise ValueError("calibrate_embedding: no records")

    best: tuple[float, float, float, float] | None = None  # (coverage, accuracy, min_score, margin)
    fallback: tuple[float, float, float, float] | None = None
    for s in min_scores:
        for point in sweep(outcomes, s, margins):
            key = (point["coverage"], point["accuracy"], s, point["threshold"])
            if point["decided"] and point["accuracy"] >= target and (best is None or key[:2] > best[:2]):
                best = key
            if point["decided"] and (fallback is None or (key[1], key[0]) > (fallback[1], fallback[0])):
                fallback = key
    chosen = best or fallback
    assert chosen is not None
    coverage, accuracy, min_score, min_margin = chosen
    return {
        "stage": "embedding",
        "min_score": min_score,
        "min_margin": min_margin,
        "coverage": coverage,
        "accuracy": accuracy,
        "target": target,
        "met_target": best is not None,
        "n": n,
        "top1_accuracy": round(sum(ok for _, _, ok in outcomes) / n, 4),
        "curve": sweep(outcomes, min_score, margins),
    }
