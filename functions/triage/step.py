"""TriageStepFunction: the state machine's first step when an execution starts without a triage
result, e.g. a console rerun started with only {"bucket": ..., "key": ..., "force": true}."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.events import TriageStepEvent
from gifcat.domain.result import ObjectRef
from gifcat.runtime import build_triage

logger = Logger()
tracer = Tracer()
triage = build_triage(with_escalation=False)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=TriageStepEvent)
def handler(event: TriageStepEvent, context: LambdaContext) -> dict[str, Any]:
    request = event.request
    ref = ObjectRef(bucket=request.bucket, key=request.key, version_id=request.version_id)
    state = triage.prepare(ref, force=request.force, execution=event.execution_name)
    logger.info("rerun triaged", extra={"pk": ref.pk, "status": state.classification.status.value})
    return state.model_dump(mode="json")
