"""`gifcat eval`'s cost accounting: the cascade beside sending every record to the LLM alone, both priced
by gifcat.domain.costs, from the run's own LLM calls or, in a run that made none, from the reference call."""

from __future__ import annotations

import pytest

from gifcat.config import Settings
from gifcat.domain.costs import item_cost
from gifcat.domain.model import Classification, StageName, StageTrace, Status
from gifcat.domain.records import LabelledRecord
from gifcat_tooling.evaluation import Prediction, PromptSizes, Report, cost_summary


def trace(stage: StageName, ms: float, **extra: object) -> StageTrace:
    return StageTrace(stage=stage, decided=False, elapsed_ms=ms, **extra)  # type: ignore[arg-type]


def prediction(i: int, status: Status, stages: list[StageTrace]) -> Prediction:
    record = LabelledRecord(id=f"r{i}", title="t", labels=["funny"], primary="funny")
    result = Classification(status=status, primary="funny" if status is Status.CLASSIFIED else None,
                            stages=stages)
    return Prediction(record, result, 1.0)


TRIAGE = [trace(StageName.TAGS, 0.3), trace(StageName.RULES, 0.2)]
EMBED = trace(StageName.EMBEDDING, 30.0)


def llm(prompt: int, completion: int, ms: float, chars: int = 0, cached: int = 0) -> StageTrace:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "calls": 1, "prompt_chars": chars,
             "cached_calls": cached}
    return trace(StageName.LLM, ms, usage=usage, cost_usd=0.0, model="local")


def test_the_cascade_against_every_record_to_the_llm_from_the_runs_own_calls(settings: Settings) -> None:
    preds = [
        prediction(0, Status.CLASSIFIED, [*TRIAGE]),  # tags decided
        prediction(1, Status.CLASSIFIED, [*TRIAGE, EMBED]),  # embedding decided
        prediction(2, Status.CLASSIFIED, [*TRIAGE, EMBED, llm(1000, 10, 3000.0)]),
        prediction(3, Status.CLASSIFIED, [*TRIAGE, EMBED, llm(800, 6, 1000.0)]),
    ]
    vs = cost_summary(preds, settings).vs_all_llm
    call = vs.llm_call
    assert (call.calls, call.prompt_tokens, call.completion_tokens, call.latency_ms) == (
        2, 900.0, 8.0, 2000.0
    )
    assert vs.share_reaching_llm == 0.5
    mini = settings.prices.llm["gpt-4o-mini"]
    figures = vs.by_model["gpt-4o-mini"]
    # Every record: one typical call at gpt-4o-mini's prices, the LLM function, one run of the machine.
    per_call = (900 * mini.input_per_million + 8 * mini.output_per_million) / 1e6
    alone = item_cost([trace(StageName.LLM, 2000.0, cost_usd=per_call)], settings.prices)
    assert figures.all_llm.per_1000_usd == pytest.approx(alone["total_usd"] * 1000, rel=1e-4)
    # The cascade: its own calls' tokens at gpt-4o-mini's prices, and what its stages cost besides.
    tokens = ((1000 + 800) * mini.input_per_million + 16 * mini.output_per_million) / 1e6
    others = sum(item_cost(p.result.stages, settings.prices)["total_usd"] for p in preds)
    assert figures.cascade.llm_per_1000_usd == pytest.approx(tokens / 4 * 1000, rel=1e-4)
    assert figures.cascade.per_1000_usd == pytest.approx((tokens + others) / 4 * 1000, rel=1e-4)
    cascade, all_llm = figures.cascade.per_1000_usd, figures.all_llm.per_1000_usd
    assert figures.ratio == pytest.approx(cascade / all_llm, abs=1e-4)
    assert 0.4 < figures.ratio < 0.6  # half the records reached the LLM, with cheap orchestration


def test_a_run_without_llm_calls_projects_them_with_the_reference_call(settings: Settings) -> None:
    preds = [
        prediction(0, Status.CLASSIFIED, [*TRIAGE]),
        prediction(1, Status.UNDECIDED, [*TRIAGE, EMBED]),  # would go on to the LLM
        prediction(2, Status.UNDECIDED, [*TRIAGE, EMBED]),
        prediction(3, Status.CLASSIFIED, [*TRIAGE, EMBED]),
    ]
    vs = cost_summary(preds, settings).vs_all_llm
    ref = settings.prices.llm_call
    assert vs.llm_call.calls == 0 and vs.llm_call.basis.startswith("projected")
    assert vs.share_reaching_llm == 0.5
    mini = settings.prices.llm["gpt-4o-mini"]
    tokens = ref.prompt_tokens * mini.input_per_million + ref.completion_tokens * mini.output_per_million
    per_call = tokens / 1e6
    figures = vs.by_model["gpt-4o-mini"]
    assert figures.cascade.llm_per_1000_usd == pytest.approx(per_call * 2 / 4 * 1000, rel=1e-4)
    assert figures.all_llm.llm_per_1000_usd == pytest.approx(per_call * 1000, rel=1e-4)
    # The projected calls also run the LLM function and lengthen those runs.
    with_call = item_cost([*TRIAGE, EMBED, trace(StageName.LLM, ref.latency_ms)], settings.prices)
    without = item_cost([*TRIAGE, EMBED], settings.prices)
    assert figures.cascade.stepfunctions_per_1000_usd == pytest.approx(
        (2 * with_call["stepfunctions_usd"] + without["stepfunctions_usd"]) / 4 * 1000, rel=1e-4
    )
    assert Report(preds).summary(settings).cost.vs_all_llm == vs


def test_each_side_is_priced_by_its_own_prompts_at_the_runs_tokens_per_character(settings: Settings) -> None:
    # A cascade call held to 4 categories is shorter than the call the LLM alone gets: pricing the LLM
    # alone with the cascade's mean call would flatter or wrong the ratio.
    preds = [
        prediction(0, Status.CLASSIFIED, [*TRIAGE]),
        prediction(1, Status.CLASSIFIED, [*TRIAGE, EMBED, llm(600, 8, 2000.0, chars=2400)]),
        prediction(2, Status.CLASSIFIED, [*TRIAGE, EMBED, llm(400, 8, 1.0, chars=1600, cached=1)]),
    ]
    sizes = PromptSizes(alone={"r0": 4000, "r1": 3600, "r2": 4400})
    vs = cost_summary(preds, settings, sizes).vs_all_llm
    call = vs.llm_call
    assert call.tokens_per_char == 0.25  # 1,000 tokens for 4,000 characters
    assert call.latency_ms == 2000.0  # a call replayed from the cache says nothing of latency
    assert vs.prompts == "each record's own prompt"
    assert vs.prompt_tokens_per_1000 == {"cascade": round(1000 * 1000 / 3), "all_llm": 1_000_000}
    mini = settings.prices.llm["gpt-4o-mini"]
    alone_llm = (3000 * mini.input_per_million + 3 * 8 * mini.output_per_million) / 1e6
    assert vs.by_model["gpt-4o-mini"].all_llm.llm_per_1000_usd == pytest.approx(alone_llm / 3 * 1000)
    # Without a record's size, the typical call's mean prompt serves.
    fallback = cost_summary(preds, settings).vs_all_llm
    assert fallback.prompt_tokens_per_1000["all_llm"] == round(3 * 500 * 1000 / 3)


def test_a_projection_prices_what_the_cascade_would_send(settings: Settings) -> None:
    preds = [prediction(0, Status.UNDECIDED, [*TRIAGE, EMBED]), prediction(1, Status.CLASSIFIED, [*TRIAGE])]
    sizes = PromptSizes(alone={"r0": 4000, "r1": 4000}, cascade={"r0": 2000})
    vs = cost_summary(preds, settings, sizes).vs_all_llm
    per_char = settings.prices.llm_call.tokens_per_char
    assert vs.prompt_tokens_per_1000 == {
        "cascade": round(2000 * per_char * 1000 / 2), "all_llm": round(8000 * per_char * 1000 / 2)
    }


def test_the_eval_prints_the_ratio_at_each_priced_models_prices(settings: Settings) -> None:
    from gifcat_tooling.cli.evaluate import vs_all_llm_lines

    preds = [prediction(0, Status.CLASSIFIED, [*TRIAGE]),
             prediction(1, Status.CLASSIFIED, [*TRIAGE, EMBED, llm(1000, 10, 3000.0, chars=4000)])]
    vs = cost_summary(preds, settings, PromptSizes(alone={"r0": 4000, "r1": 4000})).vs_all_llm
    text = vs_all_llm_lines(vs, settings)
    mini = vs.by_model["gpt-4o-mini"]
    assert "measured; 50.0% reach it" in text
    assert f"gpt-4o-mini    cascade ${mini.cascade.per_1000_usd:.4f}" in text
    assert f"ratio {mini.ratio:.3f}" in text
    assert "gemma" not in text  # free models have no ratio worth printing
