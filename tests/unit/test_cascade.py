"""The cascade composes stages and thresholds: it stops at the first confident stage and records all."""

from __future__ import annotations

from gifcat.config import LabelPolicy, Thresholds
from gifcat.domain.cascade import Cascade, Step, labels_for, passes
from gifcat.domain.model import Candidate, Classification, GifItem, StageName, StageOutput, Status
from gifcat.domain.stages import Stage


class Scripted(Stage):
    def __init__(
        self, name: StageName, scores: dict[str, float], error: str | None = None, cost: float = 0.0
    ):
        self.name = name
        self.scores = scores
        self.error = error
        self.cost = cost
        self.calls = 0

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        self.calls += 1
        if self.error == "raise":
            raise RuntimeError("model file missing")
        cands = [
            Candidate(category=c, score=s, evidence=[f"{self.name.value}:{c}"])
            for c, s in self.scores.items()
        ]
        return StageOutput(stage=self.name, candidates=cands, error=self.error, cost_usd=self.cost)


T = Thresholds(min_score=0.5, min_margin=0.2)


def cascade(*stages: Scripted) -> Cascade:
    return Cascade([Step(s, T) for s in stages], LabelPolicy(ratio=0.6, max=3), "v1")


def test_passes_needs_score_and_margin() -> None:
    cands = [Candidate(category="a", score=0.7), Candidate(category="b", score=0.55)]
    assert not passes(cands, T)
    assert passes(cands[:1], T)
    assert not passes([], T)


def test_labels_follow_the_ratio_and_cap() -> None:
    cands = [Candidate(category=c, score=s) for c, s in [("a", 1.0), ("b", 0.7), ("c", 0.61), ("d", 0.6)]]
    assert labels_for(cands, LabelPolicy(ratio=0.6, max=3)) == ["a", "b", "c"]
    assert labels_for(cands, LabelPolicy(ratio=0.65, max=5)) == ["a", "b"]


def test_stops_at_first_confident_stage() -> None:
    first = Scripted(StageName.TAGS, {"a": 0.6, "b": 0.5})
    second = Scripted(StageName.EMBEDDING, {"b": 0.9, "a": 0.1}, cost=0.001)
    third = Scripted(StageName.LLM, {"a": 1.0})
    result = cascade(first, second, third).run(GifItem(id="x"))
    assert (result.status, result.primary, result.decided_by) == (Status.CLASSIFIED, "b", StageName.EMBEDDING)
    assert third.calls == 0
    assert [t.stage for t in result.stages] == [StageName.TAGS, StageName.EMBEDDING]
    assert [t.decided for t in result.stages] == [False, True]
    assert result.cost_usd == 0.001
    assert result.evidence == ["embedding:b"]


def test_a_failing_stage_is_recorded_and_the_next_still_runs() -> None:
    broken = Scripted(StageName.EMBEDDING, {}, error="raise")
    llm = Scripted(StageName.LLM, {"a": 0.9})
    result = cascade(broken, llm).run(GifItem(id="x"))
    assert result.decided_by is StageName.LLM
    assert result.stages[0].error == "RuntimeError: model file missing"


def test_last_stage_error_leaves_a_failed_status_with_reason() -> None:
    result = cascade(Scripted(StageName.LLM, {}, error="invalid JSON twice")).run(GifItem(id="x"))
    assert result.status is Status.FAILED
    assert result.reason == "llm stage: invalid JSON twice"


def test_only_runs_the_named_stages_and_continues_from_so_far() -> None:
    tags = Scripted(StageName.TAGS, {"a": 0.4})
    emb = Scripted(StageName.EMBEDDING, {"a": 0.8})
    c = cascade(tags, emb)
    so_far = c.run(GifItem(id="x"), only=[StageName.TAGS])
    assert so_far.status is Status.UNDECIDED and emb.calls == 0
    final = c.run(GifItem(id="x"), so_far, only=[StageName.EMBEDDING])
    assert tags.calls == 1 and final.decided_by is StageName.EMBEDDING
    assert [t.stage for t in final.stages] == [StageName.TAGS, StageName.EMBEDDING]


def test_prepare_runs_before_a_stage_scores_and_a_failure_there_is_the_stage_error() -> None:
    events: list[str] = []

    class Loading(Scripted):
        def prepare(self) -> None:
            events.append("prepare")
            if self.error == "load":
                raise OSError("server did not start")

        def score(self, item: GifItem, so_far: Classification) -> StageOutput:
            events.append("score")
            return super().score(item, so_far)

    loaded = Loading(StageName.EMBEDDING, {"a": 0.9})
    assert cascade(loaded).run(GifItem(id="x")).decided_by is StageName.EMBEDDING
    assert events == ["prepare", "score"]
    unloadable = Loading(StageName.LLM, {"a": 0.9}, error="load")
    result = cascade(Scripted(StageName.TAGS, {}), unloadable).run(GifItem(id="x"))
    assert result.status is Status.FAILED and unloadable.calls == 0
    assert result.stages[-1].error == "OSError: server did not start"


class Skipping(Stage):
    """A stage that finds nothing it can read (no text, no image model)."""

    def __init__(self, name: StageName) -> None:
        self.name = name

    def score(self, item: GifItem, so_far: Classification) -> StageOutput:
        return StageOutput(stage=self.name, skipped="no text and no image model")


def test_a_skipping_stage_ends_the_cascade_as_skipped_with_its_reason() -> None:
    later = Scripted(StageName.LLM, {"a": 1.0})
    result = cascade(Scripted(StageName.TAGS, {}), Skipping(StageName.EMBEDDING), later).run(GifItem(id="x"))
    assert (result.status, result.reason, result.decided_by) == (
        Status.SKIPPED,
        "no text and no image model",
        None,
    )
    assert later.calls == 0  # no later stage is asked (no LLM call)
    assert [(t.stage, t.decided, t.abstained) for t in result.stages][-1] == (
        StageName.EMBEDDING,
        False,
        "no text and no image model",
    )
    # A skipped result is final: running the cascade on from it asks nothing more.
    assert cascade(later).run(GifItem(id="x"), result) == result and later.calls == 0
