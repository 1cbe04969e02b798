"""TriageFunction: S3 ObjectCreated -> tag and rule triage -> a result, or a state-machine execution;
ObjectRemoved (and LifecycleExpiration) -> the deleted upload's result becomes its tombstone."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from gifcat.application.events import S3UploadEvent
from gifcat.runtime import build_triage

logger = Logger()
tracer = Tracer()
metrics = Metrics()
triage = build_triage()  # once per container


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=S3UploadEvent)
def handler(event: S3UploadEvent, context: LambdaContext) -> dict[str, Any]:
    if not event.Records:  # s3:TestEvent, when the notification is set up: nothing was uploaded
        metrics.add_metric(name="Upload_ignored", unit=MetricUnit.Count, value=1)
        logger.info("no upload in the event", extra={"event": event.Event})
        return {"outcomes": []}
    outcomes = []
    for record in event.Records:
        ref = record.object_ref()
        if (record.created or record.removed) and not triage.is_upload(ref):
            # A sidecar put or deleted after its upload: the upload is read again (a rerun that writes
            # only when the metadata changed); one put before it is read by the upload's own event (None).
            reread = triage.handle_sidecar(ref)
            if reread is not None:
                metrics.add_metric(name="Upload_sidecar_reread", unit=MetricUnit.Count, value=1)
                outcome = reread.model_dump(mode="json")
                logger.info("sidecar of an upload: the upload is read again", extra={"outcome": outcome})
                outcomes.append(outcome)
                continue
        if record.removed and triage.is_upload(ref):
            removal = triage.handle_removal(ref, record.eventName)
            # Deleted: its result now says so. Not written: the key has an object again, or a newer result.
            metrics.add_metric(name="Upload_deleted" if removal.written else "Upload_ignored",
                               unit=MetricUnit.Count, value=1)
            logger.info("upload removed", extra={"outcome": removal.model_dump(mode="json")})
            outcomes.append(removal.model_dump(mode="json"))
            continue
        if not (record.created and triage.is_upload(ref)):  # a sidecar, another file, a restore...
            metrics.add_metric(name="Upload_ignored", unit=MetricUnit.Count, value=1)
            logger.info("not an upload", extra={"key": ref.key, "event": record.eventName})
            continue
        outcome = triage.handle_upload(ref)
        metrics.add_metric(name=f"Upload_{outcome.status.value}", unit=MetricUnit.Count, value=1)
        if outcome.decided_by:  # what each stage takes off the LLM: the stack's dashboard draws it
            metrics.add_metric(name=f"Decided_{outcome.decided_by}", unit=MetricUnit.Count, value=1)
        if outcome.reused_from:  # seen before: answered without a run of the state machine
            metrics.add_metric(name="Upload_reused", unit=MetricUnit.Count, value=1)
            saved = outcome.reuse_saved_usd or 0.0  # what deciding the result it took had cost
            metrics.add_metric(name="ReuseSavedUsd", unit=MetricUnit.NoUnit, value=saved)
        if outcome.reuse_lookup_failed:
            metrics.add_metric(name="Reuse_lookup_failed", unit=MetricUnit.Count, value=1)
        logger.info("upload triaged", extra={"outcome": outcome.model_dump(mode="json")})
        outcomes.append(outcome.model_dump(mode="json"))
    return {"outcomes": outcomes}
