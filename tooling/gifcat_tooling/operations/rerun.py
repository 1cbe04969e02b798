"""`gifcat rerun`: classify again, on the upload state machine, the objects whose result failed (an LLM
endpoint down, a revoked key, an exhausted quota) or is stuck pending (a run that timed out).

It reads the results table, not the bucket: a query of its sparse index of failed and pending results
(`rerunnable`), or with `scan` the whole table (results written before that index existed). After an
outage the failures are a few thousand among millions of objects, and `gifcat backfill --stale-only`
would list every object and run a Standard child for each; here each failed result costs one Express
run. A run is started as a forced rerun ({"bucket", "key", "force": true}): it takes the item over in
place, never over a person's answer nor a newer upload's result (README "Console reruns").
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from gifcat.domain.model import Status
from gifcat.domain.result import ResultItem, now

Which = Literal["failed", "stuck"]


@dataclass
class RerunReport:
    which: Which
    matched: int = 0
    started: list[str] = field(default_factory=list)  # the pks whose run started
    reasons: Counter[str] = field(default_factory=Counter)  # what the matched results say, first clause
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"which": self.which, "matched": self.matched, "started": len(self.started),
                "dry_run": self.dry_run, "reasons": dict(self.reasons.most_common()), "pks": self.started}


def matching(
    items: Iterable[ResultItem],
    which: Which,
    *,
    since: datetime | None = None,
    prefix: str = "",
    reason: str = "",
    stuck_after_s: float = 600.0,
    at: datetime | None = None,
) -> Iterable[ResultItem]:
    """The results to run again: failed ones, or ones pending for longer than any run lasts (stuck);
    written since `since`, with keys under `prefix`, their reason holding `reason` (any case)."""
    stale = (at or now()) - timedelta(seconds=stuck_after_s)
    for item in items:
        if which == "failed" and item.status is not Status.FAILED:
            continue
        if which == "stuck" and not (item.status is Status.PENDING and item.updated_at < stale):
            continue
        if since is not None and item.updated_at < since:
            continue
        if not item.key.startswith(prefix) or reason.casefold() not in (item.reason or "").casefold():
            continue
        yield item


class RerunSource(Protocol):
    """The results table's two reads that from_table makes (gifcat.adapters.dynamodb.ResultsTable)."""

    def rerunnable(
        self, status: Status, *, since: datetime | None = None, before: datetime | None = None
    ) -> Iterable[ResultItem]: ...

    def items(self) -> Iterable[ResultItem]: ...


def from_table(
    table: RerunSource,
    which: Which,
    *,
    since: datetime | None = None,
    stuck_after_s: float = 600.0,
    at: datetime | None = None,
    scan: bool = False,
) -> Iterable[ResultItem]:
    """The table's results that may match: its failed ones, or those pending since before they would be
    stuck, from the index; every result with `scan`. `matching` then chooses among them."""
    if scan:
        return table.items()
    if which == "failed":
        return table.rerunnable(Status.FAILED, since=since)
    stale = (at or now()) - timedelta(seconds=stuck_after_s)
    return table.rerunnable(Status.PENDING, since=since, before=stale)


def rerun(
    items: Iterable[ResultItem],
    sfn: Any,
    state_machine_arn: str,
    which: Which,
    *,
    dry_run: bool = False,
    rate: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
) -> RerunReport:
    """Start a forced rerun of each item, at most `rate` starts a second (the LLM's rate limit is what
    the reruns meet first)."""
    report = RerunReport(which=which, dry_run=dry_run)
    for item in items:
        report.matched += 1
        report.reasons[(item.reason or "(no reason)").split(":")[0][:80]] += 1
        if dry_run:
            continue
        if report.started:
            sleep(1.0 / rate)
        request = {"bucket": item.bucket, "key": item.key, "force": True}
        sfn.start_execution(
            stateMachineArn=state_machine_arn,
            name=f"rerun-{uuid.uuid4().hex[:24]}",
            input=json.dumps(request, ensure_ascii=False),
        )
        report.started.append(item.pk)
    return report


def render(report: RerunReport) -> str:
    verb = "would start" if report.dry_run else "started"
    lines = [f"{report.matched} {report.which} results; {verb} "
             f"{report.matched if report.dry_run else len(report.started)} reruns"]
    lines += [f"  {n:6d}  {why}" for why, n in report.reasons.most_common(10)]
    return "\n".join(lines)
