"""TriageStepFunction: the state machine's first step when an execution starts without a triage
result, e.g. a console rerun started with only {"bucket": ..., "key": ..., "force": true}."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from gifcat.result import ObjectRef
from gifcat.runtime import build_triage
from pydantic import BaseModel

logger = Logger()
tracer = Tracer()
triage = build_triage(with_escalation=False)


class RerunRequest(BaseModel):
    bucket: str
    key: str
    version_id: str | None = None
    force: bool = False
    execution: str | None = None  # the execution's name, passed in by the state machine


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_parser(model=RerunRequest)
def handler(event: RerunRequest, context: LambdaContext) -> dict[str, Any]:
    ref = ObjectRef(bucket=event.bucket, key=event.key, version_id=event.version_id)
    state = triage.prepare(ref, force=event.force, execution=event.execution)
    logger.info("rerun triaged", extra={"pk": ref.pk, "status": state.classification.status.value})
    return state.model_dump(mode="json")
