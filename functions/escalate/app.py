"""EscalateFunction: the LLM step for what neither cheap stage decided."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.service import StepState
from gifcat.runtime import build_llm_step

logger = Logger()
tracer = Tracer()
metrics = Metrics()
step = build_llm_step()  # the client and prompt load once per container


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)  # the state holds the uploader's text
@metrics.log_metrics
@event_parser(model=StepState)
def handler(event: StepState, context: LambdaContext) -> dict[str, Any]:
    state = step.run(event)
    trace = step.trace(event, state)
    if trace is not None:  # the LLM was asked (not for a state decided already, or a deleted GIF)
        metrics.add_metric(name="Reached_llm", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="LlmCostUsd", unit=MetricUnit.NoUnit, value=trace.cost_usd)
        if trace.error:  # the call failed after its retries: the item is recorded failed, the run is not
            metrics.add_metric(name="Llm_failed", unit=MetricUnit.Count, value=1)
        if state.decided_by:
            metrics.add_metric(name=f"Decided_{state.decided_by}", unit=MetricUnit.Count, value=1)
    logger.info(
        "escalated",
        extra={
            "pk": state.object.pk,
            "status": state.classification.status.value,
            "model": trace.model if trace else None,
            "usage": trace.usage if trace else None,
        },
    )
    return state.model_dump(mode="json")
