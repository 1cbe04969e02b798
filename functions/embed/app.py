"""EmbedFunction (container image): MiniLM on the text and CLIP on sampled frames."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.service import StepState
from gifcat.domain.model import StageName
from gifcat.runtime import build_stage_step

logger = Logger()
tracer = Tracer()
step = build_stage_step(StageName.EMBEDDING)  # ONNX sessions load once per container


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=StepState)
def handler(event: StepState, context: LambdaContext) -> dict[str, Any]:
    state = step.run(event)
    logger.info("embedded", extra={"pk": state.object.pk, "status": state.classification.status.value})
    return state.model_dump(mode="json")
