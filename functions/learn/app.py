"""LearnFunction (container image, on a schedule): relearn the embedding stage from the results table and
publish the artefact when it is not worse than the one in force (gifcat.application.learn)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.events import ScheduledRequest
from gifcat.application.learn import SOURCES
from gifcat.runtime import build_learn_job

logger = Logger()
tracer = Tracer()
metrics = Metrics()
job = build_learn_job()  # MiniLM loads once per container


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = ScheduledRequest.of(event)  # anything but the schedule's event or {"dry_run": bool} is refused
    report = job.run(dry_run=request.dry_run)
    metrics.add_metric(name=f"Learn_{report.outcome}", unit=MetricUnit.Count, value=1)
    for source in SOURCES:
        metrics.add_metric(name=f"LearnExamples_{source}", unit=MetricUnit.Count,
                           value=report.examples.get(source, 0))
    logger.info(f"learn: {report.outcome}: {report.reason}", extra={"report": report.model_dump(mode="json")})
    return report.model_dump(mode="json")
