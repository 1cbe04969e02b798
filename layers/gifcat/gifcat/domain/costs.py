"""What an item cost: LLM tokens at the configured prices, plus the Lambda time and requests of the
functions that ran its stages, plus the state machine run when it went past triage.

The run is priced as the per-upload machine is deployed (`prices.stepfunctions.workflow`): Express by
request, duration (the later stages' latency and a fixed overhead, in 64 MB x 100 ms steps) and the
log bytes its execution logging ingests; Standard by state transitions.

One estimate serves the result item (`cost_usd`, `cost`) and `gifcat eval`'s cost per 1,000 GIFs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from gifcat.config import Prices, StepFunctionsPrice, TokenPrice
from gifcat.domain.cascade import TRIAGE
from gifcat.domain.model import StageName, StageTrace

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def price_key(prices: Mapping[str, TokenPrice], model: str) -> str | None:
    """The price entry for a reported model: exact, else without a date suffix (gpt-4o-mini-2024-07-18)."""
    if model in prices:
        return model
    base = _DATED.sub("", model)
    return base if base in prices else None


def cost_usd(
    prices: Mapping[str, TokenPrice], model: str, prompt_tokens: int, completion_tokens: int
) -> float | None:
    """Cost of one LLM call from `prices` (settings.prices.llm); None when the model has no price."""
    key = price_key(prices, model)
    if key is None:
        return None
    price = prices[key]
    return (prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million) / 1e6


def orchestration_usd(stages: Sequence[StageTrace], sfn: StepFunctionsPrice | None) -> float:
    """The state machine run of an item that went past triage (0 for one triage decided)."""
    later = [t for t in stages if t.stage not in TRIAGE]
    if sfn is None or not later:
        return 0.0
    if sfn.workflow == "standard":
        assert sfn.standard is not None  # checked when the settings load
        return sfn.standard.transitions_per_execution * sfn.standard.transition_usd
    express = sfn.express
    assert express is not None
    duration_ms = sum(t.elapsed_ms for t in later) + express.overhead_ms
    billed_s = math.ceil(duration_ms / express.billing_ms) * express.billing_ms / 1000.0
    memory_gb = math.ceil(express.memory_mb / 64) * 64 / 1024.0
    logs = express.log_bytes_per_execution / 1e9 * express.log_ingest_per_gb_usd
    return express.request_usd + billed_s * memory_gb * express.gb_second_usd + logs


def item_cost(stages: Sequence[StageTrace], prices: Prices) -> dict[str, float]:
    llm = sum(t.cost_usd for t in stages if t.stage is StageName.LLM)
    memory = prices.lambda_.memory_mb
    seconds_gb = sum(t.elapsed_ms / 1000.0 * memory.get(t.stage.value, 128) / 1024.0 for t in stages)
    functions = {"triage" if t.stage in TRIAGE else t.stage.value for t in stages}
    lambda_usd = seconds_gb * prices.lambda_.gb_second_usd + len(functions) * prices.lambda_.request_usd
    sfn_usd = orchestration_usd(stages, prices.stepfunctions)
    return {
        "llm_usd": round(llm, 10),
        "lambda_usd": round(lambda_usd, 12),
        "stepfunctions_usd": round(sfn_usd, 12),
        "total_usd": round(llm + lambda_usd + sfn_usd, 12),
    }
