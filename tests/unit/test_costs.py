"""The cost model: the state machine run priced as deployed (Express) or as Standard, and what old
settings files still mean."""

from __future__ import annotations

import pytest

from gifcat.config import ConfigError, Prices, Settings, load_settings
from gifcat.domain.costs import item_cost, orchestration_usd
from gifcat.domain.model import StageName, StageTrace


def trace(stage: StageName, ms: float, cost: float = 0.0) -> StageTrace:
    return StageTrace(stage=stage, decided=False, elapsed_ms=ms, cost_usd=cost)


TRIAGED = [trace(StageName.TAGS, 0.3), trace(StageName.RULES, 0.2)]


def express_only(settings: Settings, **changes: object) -> Prices:
    sfn = settings.prices.stepfunctions
    assert sfn is not None and sfn.express is not None
    express = sfn.express.model_copy(update=changes)
    return settings.prices.model_copy(update={"stepfunctions": sfn.model_copy(update={"express": express})})


def test_express_is_a_request_and_the_later_stages_time_in_100_ms_steps_of_64_mb(settings: Settings) -> None:
    prices = express_only(settings, overhead_ms=80.0, log_bytes_per_execution=0)
    sfn = prices.stepfunctions
    assert sfn is not None and sfn.workflow == "express" and sfn.express is not None
    step = 0.1 * 64 / 1024 * sfn.express.gb_second_usd  # one 100 ms step at 64 MB
    # Embedding 15 ms + 80 ms overhead: one step. Triage's time is the triage function's, not the run's.
    embedded = [*TRIAGED, trace(StageName.EMBEDDING, 15.0)]
    assert orchestration_usd(embedded, sfn) == pytest.approx(sfn.express.request_usd + step)
    # ...and 3.2 s of LLM call on top: 3,295 ms is 33 steps.
    escalated = [*embedded, trace(StageName.LLM, 3200.0)]
    assert orchestration_usd(escalated, sfn) == pytest.approx(sfn.express.request_usd + 33 * step)
    assert orchestration_usd(TRIAGED, sfn) == 0.0  # decided by triage: no run at all


def test_express_logging_is_priced_per_run(settings: Settings) -> None:
    quiet = express_only(settings, log_bytes_per_execution=0).stepfunctions
    logged = express_only(settings, log_bytes_per_execution=10_000, log_ingest_per_gb_usd=0.5).stepfunctions
    run = [*TRIAGED, trace(StageName.EMBEDDING, 15.0)]
    assert orchestration_usd(run, logged) - orchestration_usd(run, quiet) == pytest.approx(10_000 / 1e9 * 0.5)


def test_the_bundled_prices_make_a_run_cost_less_than_a_standard_one_by_far(settings: Settings) -> None:
    run = [*TRIAGED, trace(StageName.EMBEDDING, 40.0), trace(StageName.LLM, 3700.0, cost=0.00016)]
    express = item_cost(run, settings.prices)["stepfunctions_usd"]
    sfn = settings.prices.stepfunctions
    assert sfn is not None
    standard = orchestration_usd(run, sfn.model_copy(update={"workflow": "standard"}))
    assert standard == pytest.approx(9 * 0.000025)  # the figure priced before Express
    assert express < standard / 20


def test_standard_pricing_stays_available_and_old_settings_files_mean_standard() -> None:
    bundled = load_settings()
    old = bundled.prices.model_dump(by_alias=True, exclude={"stepfunctions"})
    old["stepfunctions"] = {"transition_usd": 0.000025, "transitions_per_execution": 9}
    prices = Prices.model_validate(old)
    assert prices.stepfunctions is not None and prices.stepfunctions.workflow == "standard"
    run = [*TRIAGED, trace(StageName.EMBEDDING, 15.0)]
    assert item_cost(run, prices)["stepfunctions_usd"] == pytest.approx(0.000225)
    with pytest.raises(ConfigError, match="no express prices"):
        load_settings(overrides={"prices": {"stepfunctions": {"workflow": "express", "express": None}}})
