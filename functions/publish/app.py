"""PublishFunction (the results table's stream): each upload's answer, once known and whenever it
changes, as an event on the stack's bus (gifcat.application.publish; README "Result events")."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.publish import ResultChange
from gifcat.runtime import build_result_publisher

logger = Logger()
tracer = Tracer()
metrics = Metrics()
publisher = build_result_publisher()  # once per container


def _image(image: Any) -> dict[str, Any] | None:
    return image if isinstance(image, dict) else None  # the parser gives an image as plain values


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=DynamoDBStreamModel)
def handler(event: DynamoDBStreamModel, context: LambdaContext) -> dict[str, Any]:
    report = publisher.publish([
        ResultChange(r.dynamodb.SequenceNumber, _image(r.dynamodb.OldImage), _image(r.dynamodb.NewImage))
        for r in event.Records
    ])
    for detail_type, count in report.published.items():  # "GIF classified" -> Event_GIF_classified
        metrics.add_metric(name=f"Event_{detail_type.replace(' ', '_')}", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="Event_failed", unit=MetricUnit.Count, value=len(report.failed))
    metrics.add_metric(name="Event_unreadable", unit=MetricUnit.Count, value=len(report.unreadable))
    if report.unreadable:  # reported, not retried: it never will be a result
        logger.error("stream records that are not gifcat results",
                     extra={"unreadable": [u.model_dump() for u in report.unreadable]})
    if report.failed:  # named back to the stream, which delivers them again
        logger.warning("events the bus did not accept",
                       extra={"failed": [f.model_dump() for f in report.failed]})
    # ReportBatchItemFailures: the stream goes on from the first change not told, and tells it again.
    return {"batchItemFailures": [{"itemIdentifier": f.id} for f in report.failed]}
