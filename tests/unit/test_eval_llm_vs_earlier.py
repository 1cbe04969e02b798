"""`gifcat eval`'s LLM step beside the earlier stages' first candidate (`llm_vs_earlier`): how often the
LLM only confirmed it, and whether it added accuracy on the records it answered."""

from __future__ import annotations

from gifcat.domain.model import Candidate, Classification, StageName, StageTrace, Status
from gifcat.domain.records import LabelledRecord
from gifcat_tooling.evaluation import Prediction, Report


def prediction(
    gold: str, earlier: list[str], answer: str, decided_by: StageName = StageName.LLM
) -> Prediction:
    stages = [StageTrace(stage=StageName.TAGS, decided=False, elapsed_ms=0.1)]  # ranked nothing
    if earlier:
        ranked = [Candidate(category=c, score=0.5 - i / 10) for i, c in enumerate(earlier)]
        stages.append(StageTrace(stage=StageName.EMBEDDING, decided=decided_by is StageName.EMBEDDING,
                                 elapsed_ms=2.0, candidates=ranked))
    if decided_by is StageName.LLM:
        stages.append(StageTrace(stage=StageName.LLM, decided=True, elapsed_ms=900.0,
                                 candidates=[Candidate(category=answer, score=1.0)]))
    result = Classification(status=Status.CLASSIFIED, primary=answer, decided_by=decided_by, stages=stages)
    record = LabelledRecord(id=f"{gold}-{answer}", title="t", labels=[gold], primary=gold)
    return Prediction(record, result, 1.0)


def test_the_llm_is_compared_with_the_candidate_it_was_shown_on_what_it_answered() -> None:
    report = Report(predictions=[
        prediction("funny", ["funny", "cute"], "funny"),  # echoed, right
        prediction("sad", ["funny", "sad"], "funny"),  # echoed, wrong
        prediction("sad", ["funny", "sad"], "sad"),  # overruled the candidate, right
        prediction("love", ["love", "cute"], "cute"),  # overruled the candidate, wrong
        prediction("cute", ["cute"], "cute", decided_by=StageName.EMBEDDING),  # not the LLM's
        prediction("food", [], "food"),  # nothing ranked before the LLM: nothing to compare with
    ])
    v = report.summary().llm_vs_earlier
    assert v is not None
    assert (v.answered, v.same_as_earlier_top) == (4, 2)
    assert v.accuracy == 0.5 and v.earlier_top_accuracy == 0.5  # it added nothing here
    assert v.accuracy_when_same == 0.5 and v.accuracy_when_different == 0.5


def test_no_llm_answers_no_comparison() -> None:
    report = Report(predictions=[prediction("cute", ["cute"], "cute", decided_by=StageName.EMBEDDING)])
    assert report.summary().llm_vs_earlier is None


def test_the_handoff_is_what_the_cheap_stages_left_and_how_often_their_first_candidate_is_right() -> None:
    undecided = prediction("sad", ["sad", "funny"], "sad", decided_by=StageName.EMBEDDING)
    undecided.result = undecided.result.model_copy(update={"status": Status.UNDECIDED, "primary": None,
                                                           "decided_by": None})
    report = Report(predictions=[
        prediction("funny", ["funny", "cute"], "cute"),  # the LLM's: the candidate was right
        prediction("sad", ["funny", "sad"], "sad"),  # the LLM's: the candidate was wrong
        undecided,  # left undecided (--until embedding): the candidate was right
        prediction("food", [], "food"),  # the LLM's, nothing ranked before it
        prediction("cute", ["cute"], "cute", decided_by=StageName.EMBEDDING),  # a cheap stage decided
    ])
    h = report.summary().handoff
    assert h is not None
    assert (h.left, h.ranked, h.top_right) == (4, 3, 2)
    assert h.top_accuracy == round(2 / 3, 4)


def test_the_handoff_counts_where_the_gold_label_stands_in_the_ranking() -> None:
    # What an LLM held to the earlier stages' top k (stages.llm.choose_from_top) can get right at most.
    report = Report(predictions=[
        prediction("funny", ["funny", "cute"], "funny"),  # first
        prediction("sad", ["funny", "cute", "sad"], "sad"),  # third
        prediction("love", ["funny", "cute", "sad"], "funny"),  # not ranked at all
        prediction("food", [], "food"),  # nothing ranked: not counted
        prediction("cute", ["cute"], "cute", decided_by=StageName.EMBEDDING),  # a cheap stage decided
    ])
    h = report.summary().handoff
    assert h is not None and h.ranked == 3
    assert h.gold_rank == [1, 0, 1, 1]  # ranks 1, 2, 3, then none
    assert [h.within(k) for k in (1, 2, 3, 4, 14)] == [1, 1, 2, 2, 2]


def test_nothing_left_no_handoff() -> None:
    report = Report(predictions=[prediction("cute", ["cute"], "cute", decided_by=StageName.EMBEDDING)])
    assert report.summary().handoff is None
