"""TriageStepFunction: the state machine's first step when an execution starts without a triage
result, e.g. a console rerun started with only {"bucket": ..., "key": ..., "force": true}, and the
backfill state machine's children."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.events import TriageStepEvent
from gifcat.runtime import build_rerun_triage

logger = Logger()
tracer = Tracer()
metrics = Metrics()
triage = build_rerun_triage()


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)  # the state holds the uploader's text
@metrics.log_metrics
@event_parser(model=TriageStepEvent)
def handler(event: TriageStepEvent, context: LambdaContext) -> dict[str, Any]:
    request = event.request
    ref = request.object_ref()
    state = triage.prepare(
        ref, force=request.force, execution=event.execution_name, stale_only=request.stale_only,
        metadata_changed_only=request.metadata_changed_only,
    )
    metrics.add_metric(name="Rerun_kept" if state.kept else "Rerun_triaged", unit=MetricUnit.Count, value=1)
    if state.decided_by:
        metrics.add_metric(name=f"Decided_{state.decided_by}", unit=MetricUnit.Count, value=1)
    logger.info("rerun triaged", extra={"pk": ref.pk, "status": state.classification.status.value})
    return state.model_dump(mode="json")
