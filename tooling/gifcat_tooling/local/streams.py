"""DynamoDB stream event sources (a function's Events of Type DynamoDB), run as Lambda's event source
mapping runs them: the stream read in order from its start (TRIM_HORIZON), records kept only when they
match the mapping's FilterCriteria, batches of at most BatchSize, filled for at most
MaximumBatchingWindowInSeconds, handed to the function with the records as Lambda shapes them; a
partial batch failure (ReportBatchItemFailures) or an error retried from the first record not done,
and after MaximumRetryAttempts the batch's range sent to the OnFailure queue, as Lambda's on-failure
record. moto keeps the stream and runs no mapping of its own.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from moto.events.models import EventPattern

from gifcat_tooling.local.lambda_runner import LocalFunction
from gifcat_tooling.local.template import REGION


def _shard(stream_arn: str) -> Any:
    """The stream's one shard in moto's backend (the server runs in this process), or None when its table
    is gone or has another stream now. Read in place: through the API each poll would cost an HTTP round
    trip, botocore's parse of every image, and an iterator moto keeps for ever."""
    from moto.dynamodb.models import dynamodb_backends

    arn, label = stream_arn.split("/stream/", 1)
    _, _, _, region, account, resource = arn.split(":", 5)
    table = dynamodb_backends[account][region].tables.get(resource.removeprefix("table/"))
    if table is None or table.latest_stream_label != label:
        return None
    return table.stream_shard


@dataclass
class StreamMapping:
    """One function's DynamoDB event source, from template.yaml."""

    fn: LocalFunction
    stream_arn: str
    batch_size: int = 100
    window_s: float = 0.0  # MaximumBatchingWindowInSeconds: how long a batch may wait to fill
    patterns: list[EventPattern] = field(default_factory=list)  # none: every record
    max_retries: int = -1  # Lambda's default: until the record expires
    report_item_failures: bool = False
    on_failure_queue_url: str | None = None

    @classmethod
    def from_event(cls, fn: LocalFunction, props: dict[str, Any], queue_url: str | None) -> StreamMapping:
        filters = props.get("FilterCriteria", {}).get("Filters", [])
        return cls(
            fn=fn,
            stream_arn=str(props["Stream"]),
            batch_size=int(props.get("BatchSize", 100)),
            window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            patterns=[EventPattern.load(f["Pattern"]) for f in filters],
            max_retries=int(props.get("MaximumRetryAttempts", -1)),
            report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            on_failure_queue_url=queue_url,
        )

    def keeps(self, record: dict[str, Any]) -> bool:
        return not self.patterns or any(p.matches_event(record) for p in self.patterns)


class StreamPoller:
    """Runs every mapping on a thread of its own until stopped; `wait_idle` waits for what was written."""

    def __init__(self, endpoint: str, mappings: list[StreamMapping], poll_s: float = 0.05) -> None:
        self.endpoint = endpoint
        self.mappings = mappings
        self.poll_s = poll_s
        self.failures: list[dict[str, Any]] = []  # what went to the OnFailure queues
        self._stop = threading.Event()
        # Reads that found nothing new, per mapping: idle after two that began after the wait did.
        self._empty_reads = {id(m): 0 for m in mappings}
        self._threads = [threading.Thread(target=self._run, args=(m,), daemon=True,
                                          name=f"stream:{m.fn.name}") for m in mappings]

    def __enter__(self) -> StreamPoller:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def wait_idle(self, timeout_s: float = 30.0) -> bool:
        """Wait until every mapping has read its stream to the end, as it was when the wait began, and
        handed on what it read."""
        start = dict(self._empty_reads)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._empty_reads[k] >= n + 2 for k, n in start.items()):
                return True
            time.sleep(self.poll_s)
        return False

    def _run(self, mapping: StreamMapping) -> None:
        read_up_to = 0  # records of the stream already read (its one shard, from its start)
        batch: list[dict[str, Any]] = []  # kept, not yet handed on: it fills for up to window_s
        filling_since = 0.0
        while not self._stop.is_set():
            shard = _shard(mapping.stream_arn)
            if shard is None:  # the table deleted (a test may do so): on AWS its mapping stops reading too
                read = []
            else:
                new = shard.items[read_up_to:read_up_to + 1000]
                read = [self._lambda_record(mapping, r.record) for r in new]
                read_up_to += len(read)
            kept = [r for r in read if mapping.keeps(r)]
            if kept and not batch:
                filling_since = time.monotonic()
            batch += kept
            while len(batch) >= mapping.batch_size:
                self._deliver(mapping, batch[:mapping.batch_size])
                batch = batch[mapping.batch_size:]
                filling_since = time.monotonic()
            if batch and time.monotonic() - filling_since >= mapping.window_s:
                self._deliver(mapping, batch)
                batch = []
            if not read:
                if not batch:
                    self._empty_reads[id(mapping)] += 1
                self._stop.wait(self.poll_s)

    @staticmethod
    def _lambda_record(mapping: StreamMapping, record: dict[str, Any]) -> dict[str, Any]:
        """A stream record as Lambda hands it on: with its stream's ARN, and its time in epoch seconds."""
        change = dict(record["dynamodb"])
        created = change.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            change["ApproximateCreationDateTime"] = created.timestamp()
        return {**record, "dynamodb": change, "eventSourceARN": mapping.stream_arn}

    def _deliver(self, mapping: StreamMapping, batch: list[dict[str, Any]]) -> None:
        attempt = 0
        while batch:
            result, errored = mapping.fn.invoke({"Records": batch})
            done = len(batch)
            if errored:
                done = 0
            elif mapping.report_item_failures and isinstance(result, dict):
                failed = {f.get("itemIdentifier") for f in result.get("batchItemFailures") or []}
                seqs = [r["dynamodb"]["SequenceNumber"] for r in batch]
                done = min((seqs.index(s) for s in failed if s in seqs), default=len(batch))
            batch = batch[done:]
            if not batch:
                return
            attempt += 1
            if 0 <= mapping.max_retries < attempt:
                self._on_failure(mapping, batch, result, attempt)
                return
            time.sleep(min(0.05 * attempt, 1.0))

    def _on_failure(
        self, mapping: StreamMapping, batch: list[dict[str, Any]], result: Any, attempts: int
    ) -> None:
        """Lambda's on-failure record for a stream: the range of records, not the records."""
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": mapping.fn.arn,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {"statusCode": 200,
                                "functionError": "Unhandled" if "errorType" in (result or {}) else None},
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "DDBStreamBatchInfo": {
                "shardId": "local",
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "batchSize": len(batch),
                "streamArn": mapping.stream_arn,
            },
        }
        self.failures.append(record)
        if mapping.on_failure_queue_url:
            sqs = boto3.client("sqs", endpoint_url=self.endpoint, region_name=REGION)
            sqs.send_message(QueueUrl=mapping.on_failure_queue_url, MessageBody=json.dumps(record))
