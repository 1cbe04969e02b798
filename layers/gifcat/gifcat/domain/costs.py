"""What an item cost: LLM tokens at the configured prices, plus the Lambda time and requests of the
functions that ran its stages, plus the Step Functions transitions when it went past triage.

One estimate serves the result item (`cost_usd`, `cost`) and `gifcat eval`'s cost per 1,000 GIFs.
"""

from __future__ import annotations

from collections.abc import Sequence

from gifcat.config import Prices
from gifcat.domain.cascade import TRIAGE
from gifcat.domain.model import StageName, StageTrace


def item_cost(stages: Sequence[StageTrace], prices: Prices) -> dict[str, float]:
    llm = sum(t.cost_usd for t in stages if t.stage is StageName.LLM)
    memory = prices.lambda_.memory_mb
    seconds_gb = sum(t.elapsed_ms / 1000.0 * memory.get(t.stage.value, 128) / 1024.0 for t in stages)
    functions = {"triage" if t.stage in TRIAGE else t.stage.value for t in stages}
    lambda_usd = seconds_gb * prices.lambda_.gb_second_usd + len(functions) * prices.lambda_.request_usd
    escalated = any(t.stage not in TRIAGE for t in stages)
    sfn = prices.stepfunctions
    sfn_usd = sfn.transitions_per_execution * sfn.transition_usd if sfn and escalated else 0.0
    return {
        "llm_usd": round(llm, 10),
        "lambda_usd": round(lambda_usd, 12),
        "stepfunctions_usd": round(sfn_usd, 8),
        "total_usd": round(llm + lambda_usd + sfn_usd, 12),
    }
