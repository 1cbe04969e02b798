"""Runs that ended without recording: their pending results are marked failed, on a schedule.

A run that fails records `failed` on its item (the machine's RecordFailure). One that runs out of the
classify machine's TimeoutSeconds cannot: Step Functions stops it with no state of its own left to run,
and its item stays `pending`, out of sight of every alarm but the run count and of `gifcat rerun
failed`. The sweep (SweepFunction, every few minutes) finds pending results older than any run lasts,
in the results table's index of failed and pending results, and marks each failed with its reason, so
nothing stays pending for ever: the `<stack>-stuck-runs` alarm says so, and `gifcat rerun failed
--reason stuck` classifies them again. (A run that failed in a way no Catch takes, States.DataLimitExceeded,
ends the same way and is swept too.) It reruns nothing itself: a GIF whose run always times out
would otherwise be run, and billed, every few minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, Field

from gifcat.domain.model import Status
from gifcat.domain.result import ResultItem, now

# An item stays pending while a run classifies it. The classify machine stops a run at its
# TimeoutSeconds (300 s, statemachine/classify.asl.json), and a backfill child's steps time out sooner
# in sum (template.yaml); past twice that, the run is over and never recorded (tests/unit/test_summary.py
# holds this to both files).
STUCK_AFTER_S = 600.0
STUCK_REASON = "stuck"  # a swept result's reason starts so: `gifcat rerun failed --reason stuck`


class StuckResults(Protocol):
    """The results table as the sweep uses it (gifcat.adapters.dynamodb.ResultsTable)."""

    def rerunnable(
        self, status: Status, *, since: datetime | None = None, before: datetime | None = None
    ) -> Iterable[ResultItem]: ...

    def fail_stuck(self, item: ResultItem, reason: str, *, stale_before: datetime, at: datetime) -> bool: ...


class SweepReport(BaseModel):
    dry_run: bool = False
    stuck_after_s: float
    found: int = 0  # pending results older than stuck_after_s
    failed: list[str] = Field(default_factory=list)  # the pks marked failed
    finished: int = 0  # recorded or taken over between the read and the write: left as they are
    left: int = 0  # over max_items: the next run takes them


class StuckSweep:
    def __init__(
        self,
        store: StuckResults,
        *,
        stuck_after_s: float = STUCK_AFTER_S,
        max_items: int = 1000,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self.store = store
        self.stuck_after_s = stuck_after_s
        self.max_items = max_items  # a run's bound (its Lambda timeout); the rest wait for the next
        self.clock = clock

    def run(self, *, dry_run: bool = False) -> SweepReport:
        at = self.clock()
        stale = at - timedelta(seconds=self.stuck_after_s)
        report = SweepReport(dry_run=dry_run, stuck_after_s=self.stuck_after_s)
        for item in self.store.rerunnable(Status.PENDING, before=stale):
            if item.status is not Status.PENDING or item.updated_at >= stale:
                continue  # the index's bound is to the second; its items may have moved on since
            report.found += 1
            if dry_run:
                continue
            if len(report.failed) + report.finished >= self.max_items:
                report.left += 1
                continue
            if self.store.fail_stuck(item, self.reason(item), stale_before=stale, at=at):
                report.failed.append(item.pk)
            else:
                report.finished += 1
        return report

    def reason(self, item: ResultItem) -> str:
        run = f"execution {item.execution}" if item.execution else "no execution"
        return (f"{STUCK_REASON}: no run recorded a result within {self.stuck_after_s:g} s of the item "
                f"being made pending at {item.updated_at.isoformat()} ({run}): it timed out, or ended "
                f"without recording")
