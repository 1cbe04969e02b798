"""SweepFunction (on a schedule): mark failed the pending results whose run ended without recording, a
run that timed out (gifcat.application.sweep)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.events import ScheduledRequest
from gifcat.runtime import build_stuck_sweep

logger = Logger()
tracer = Tracer()
metrics = Metrics()
sweep = build_stuck_sweep()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ScheduledRequest.of(event)  # anything but the schedule's event or {"dry_run": bool} is refused
    report = sweep.run(dry_run=request.dry_run)
    metrics.add_metric(name="Stuck_failed", unit=MetricUnit.Count, value=len(report.failed))
    if report.failed or report.left:
        logger.warning(f"sweep: {len(report.failed)} stuck results marked failed, {report.left} left for "
                       f"the next run", extra={"report": report.model_dump(mode="json")})
    return report.model_dump(mode="json")
