"""`gifcat backfill`: classify what is already in a bucket with the backfill state machine
(statemachine/backfill.asl.json: a Distributed Map over an S3 listing, one child per object), wait for
it, and check the results table: every object under the prefix must have a result item.

The summary is read from the table and a listing of its own, not from the map's output: it counts what
is there, so an object the map lost would show as missing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from gifcat.application.events import is_upload_key
from gifcat.domain.model import Status
from gifcat.domain.result import ResultItem

DEFAULT_SUFFIX = ".gif"


class ResultLookup(Protocol):
    """The results table as the summary reads it (gifcat.adapters.dynamodb.ResultsTable): the results
    of the listed objects only, whatever else the table holds."""

    def get_many(self, pks: Iterable[str]) -> dict[str, ResultItem]: ...


@dataclass
class BackfillRequest:
    bucket: str
    prefix: str = ""
    stale_only: bool = False
    max_concurrency: int | None = None  # None: the state machine's default (10)
    tolerated_failure_percentage: float | None = None  # None: the state machine's default (5)

    def execution_input(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "bucket": self.bucket, "prefix": self.prefix, "stale_only": self.stale_only
        }
        if self.max_concurrency is not None:
            payload["max_concurrency"] = self.max_concurrency
        if self.tolerated_failure_percentage is not None:
            payload["tolerated_failure_percentage"] = self.tolerated_failure_percentage
        return payload


@dataclass
class BackfillSummary:
    execution: str
    status: str
    seconds: float
    objects: int  # keys under the prefix with the upload suffix
    with_result: int
    written_by_run: int  # results this run wrote (classified, skipped or failed)
    kept: int  # left as they were: fresh (stale_only), a person's answer, or a newer upload's
    by_status: dict[str, int] = field(default_factory=dict)
    by_decider: dict[str, int] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)  # key and reason
    missing: list[str] = field(default_factory=list)
    error: str | None = None  # the execution's own error, if it failed

    @property
    def complete(self) -> bool:
        return self.status == "SUCCEEDED" and not self.missing

    @property
    def rate(self) -> float:
        return self.objects / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "complete": self.complete, "objects_per_s": round(self.rate, 2)}


def run_name(now: datetime | None = None) -> str:
    """An execution name (80 characters of [A-Za-z0-9_-]) that sorts by start time."""
    at = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"backfill-{at}-{uuid.uuid4().hex[:8]}"


def start(sfn: Any, state_machine_arn: str, request: BackfillRequest, name: str | None = None) -> str:
    return str(
        sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=name or run_name(),
            input=json.dumps(request.execution_input()),
        )["executionArn"]
    )


def wait(sfn: Any, execution_arn: str, timeout_s: float, poll_s: float = 0.2) -> dict[str, Any]:
    """The execution once it has ended (or as it is at the timeout), polling with a gentle backoff."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() >= deadline:
            return dict(described)
        time.sleep(poll_s)
        poll_s = min(poll_s * 1.5, 2.0)


def listed_keys(s3: Any, bucket: str, prefix: str, suffix: str = DEFAULT_SUFFIX) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(o["Key"] for o in page.get("Contents", []) if is_upload_key(o["Key"], suffix))
    return keys


def summarise(
    described: dict[str, Any], seconds: float, keys: list[str], items: dict[str, ResultItem]
) -> BackfillSummary:
    """What the run left in the table for the listed keys (`items` by key)."""
    name = described.get("name") or described["executionArn"].rsplit(":", 1)[-1]
    mine = f"{name}/"  # the children's item owner: "<execution name>/<item index>"
    by_status: Counter[str] = Counter()
    by_decider: Counter[str] = Counter()
    failed, missing = [], []
    written = kept = 0
    for key in keys:
        item = items.get(key)
        if item is None:
            missing.append(key)
            continue
        by_status[item.status.value] += 1
        if item.decided_by:
            by_decider[str(item.decided_by)] += 1
        if item.status is Status.FAILED:
            failed.append({"key": key, "reason": (item.reason or "")[:300]})
        if (item.execution or "").startswith(mine):
            written += 1
        else:
            kept += 1
    return BackfillSummary(
        execution=described["executionArn"],
        status=described["status"],
        seconds=round(seconds, 2),
        objects=len(keys),
        with_result=len(keys) - len(missing),
        written_by_run=written,
        kept=kept,
        by_status=dict(by_status),
        by_decider=dict(by_decider),
        failed=failed,
        missing=missing,
        error=(f"{described.get('error')}: {described.get('cause')}" if described.get("error") else None),
    )


def run_backfill(
    *,
    sfn: Any,
    s3: Any,
    table: ResultLookup,
    state_machine_arn: str,
    request: BackfillRequest,
    suffix: str = DEFAULT_SUFFIX,
    timeout_s: float = 3600.0,
) -> BackfillSummary:
    """Start the backfill, wait for it, and summarise the table for the listed objects.

    `table` is a gifcat.adapters.dynamodb.ResultsTable (or anything with `get_many()`).
    """
    started = time.perf_counter()
    arn = start(sfn, state_machine_arn, request)
    described = wait(sfn, arn, timeout_s)
    seconds = time.perf_counter() - started
    keys = listed_keys(s3, request.bucket, request.prefix, suffix)
    found = table.get_many(f"s3://{request.bucket}/{key}" for key in keys)
    items = {i.key: i for i in found.values()}
    return summarise(described, seconds, keys, items)


def render(summary: BackfillSummary) -> str:
    lines = [
        f"backfill {summary.execution.rsplit(':', 1)[-1]}: {summary.status} in {summary.seconds:.1f} s "
        f"({summary.rate:.1f} objects/s)",
        f"  objects {summary.objects}, with a result {summary.with_result}, written by this run "
        f"{summary.written_by_run}, kept as they were {summary.kept}",
        "  status: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.by_status.items())),
        "  decided by: " + (", ".join(f"{k} {v}" for k, v in sorted(summary.by_decider.items())) or "-"),
    ]
    for f in summary.failed[:10]:
        lines.append(f"  failed: {f['key']}: {f['reason'][:120]}")
    if len(summary.failed) > 10:
        lines.append(f"  ... and {len(summary.failed) - 10} more failed")
    if summary.missing:
        lines.append(f"  NO RESULT for {len(summary.missing)}: {', '.join(summary.missing[:10])}")
    if summary.error:
        lines.append(f"  execution error: {summary.error[:300]}")
    return "\n".join(lines)
