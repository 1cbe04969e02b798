"""calibrate_embedding's sweep on a stub stage with known outputs."""

from __future__ import annotations

from gifcat.calibration import calibrate_embedding
from gifcat.model import Candidate, Classification, GifItem, StageName, StageOutput


class StubStage:
    """Scores from a table: record id -> (top category, top score, runner-up score)."""

    name = StageName.EMBEDDING

    def __init__(self, table: dict[str, tuple[str, float, float]]) -> None:
        self.table = table

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        cat, top, second = self.table[item.id]
        other = "b" if cat == "a" else "a"
        return StageOutput(
            stage=self.name,
            candidates=[Candidate(category=cat, score=top), Candidate(category=other, score=second)],
        )


def records(n_right_confident: int, n_wrong_unsure: int) -> tuple[list[dict], dict]:
    recs, table = [], {}
    for i in range(n_right_confident):
        recs.append({"id": f"r{i}", "labels": ["a"]})
        table[f"r{i}"] = ("a", 0.8, 0.1)  # margin 0.7, right
    for i in range(n_wrong_unsure):
        recs.append({"id": f"w{i}", "labels": ["a"]})
        table[f"w{i}"] = ("b", 0.5, 0.4)  # margin 0.1, wrong
    return recs, table


def test_picks_the_margin_that_drops_unsure_errors() -> None:
    recs, table = records(8, 2)
    result = calibrate_embedding(recs, StubStage(table), target=0.9)
    assert result["met_target"] and result["accuracy"] == 1.0 and result["coverage"] == 0.8
    assert result["min_margin"] > 0.1 or result["min_score"] > 0.5  # the unsure errors are left undecided
    assert result["top1_accuracy"] == 0.8
    curve = result["curve"]
    assert curve[0] == {"threshold": 0.0, "coverage": 1.0, "accuracy": 0.8, "decided": 10}
    assert all(set(p) == {"threshold", "coverage", "accuracy", "decided"} for p in curve)


def test_lower_target_keeps_full_coverage() -> None:
    recs, table = records(8, 2)
    result = calibrate_embedding(recs, StubStage(table), target=0.75)
    assert result["coverage"] == 1.0 and result["min_margin"] == 0.0 and result["min_score"] == 0.0


def test_unreachable_target_is_reported() -> None:
    recs, table = records(0, 3)
    result = calibrate_embedding(recs, StubStage(table), target=0.9)
    assert result["met_target"] is False
