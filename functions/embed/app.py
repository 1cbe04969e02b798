"""EmbedFunction (container image): MiniLM on the text and CLIP on sampled frames."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.service import StepState
from gifcat.runtime import build_embedding_step

logger = Logger()
tracer = Tracer()
metrics = Metrics()
step = build_embedding_step()  # ONNX sessions load once per container


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)  # the state holds the uploader's text
@metrics.log_metrics
@event_parser(model=StepState)
def handler(event: StepState, context: LambdaContext) -> dict[str, Any]:
    state = step.run(event)
    if step.artefact_outcome:  # a version gifcat learn published, taken up or not (its log says why)
        metrics.add_metric(name=f"Artefact_{step.artefact_outcome}", unit=MetricUnit.Count, value=1)
    if step.trace(event, state) is not None:  # not for a state decided already, or a deleted GIF
        metrics.add_metric(name="Reached_embedding", unit=MetricUnit.Count, value=1)
        if state.decided_by:
            metrics.add_metric(name=f"Decided_{state.decided_by}", unit=MetricUnit.Count, value=1)
    logger.info("embedded", extra={"pk": state.object.pk, "status": state.classification.status.value})
    return state.model_dump(mode="json")
