"""The stuck-run sweep's choices (gifcat.application.sweep): which pending results it marks failed, with
what reason, how far one run goes, and what it leaves to a run that recorded meanwhile. On the embedded
AWS: tests/integration/test_sweep_function.py."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from gifcat.application.sweep import STUCK_AFTER_S, StuckSweep
from gifcat.domain.model import Classification, Status
from gifcat.domain.result import ObjectRef, ResultItem, result_item

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def pending(key: str, seconds_ago: float, execution: str | None = "run-1") -> ResultItem:
    return result_item(ObjectRef(bucket="b", key=key), Classification(status=Status.PENDING),
                       execution=execution, at=AT - timedelta(seconds=seconds_ago))


class Store:
    """The index as DynamoDB answers it: bounded to the second, so it may hold an item a little younger
    than asked; `recorded` are items a run finished between the query and the update."""

    def __init__(self, items: list[ResultItem], recorded: frozenset[str] = frozenset()) -> None:
        self.items, self.recorded = items, recorded
        self.asked: list[datetime | None] = []
        self.failed: dict[str, str] = {}

    def rerunnable(self, status: Status, *, since: datetime | None = None,
                   before: datetime | None = None) -> Iterable[ResultItem]:
        self.asked.append(before)
        cut = (before + timedelta(seconds=1)).replace(microsecond=0) if before else None
        return [i for i in self.items if i.status is status and (cut is None or i.updated_at < cut)]

    def fail_stuck(self, item: ResultItem, reason: str, *, stale_before: datetime, at: datetime) -> bool:
        if item.pk in self.recorded:
            return False
        self.failed[item.pk] = reason
        return True


def test_pending_results_older_than_any_run_are_marked_failed_with_their_reason() -> None:
    store = Store([pending("old.gif", STUCK_AFTER_S + 60), pending("young.gif", 30),
                   pending("edge.gif", STUCK_AFTER_S - 0.4),  # in the index's second, but not stale
                   pending("none.gif", 3600, execution=None)])
    report = StuckSweep(store, clock=lambda: AT).run()
    assert store.asked == [AT - timedelta(seconds=STUCK_AFTER_S)]
    assert report.failed == ["s3://b/old.gif", "s3://b/none.gif"] and report.found == 2
    reason = store.failed["s3://b/old.gif"]
    assert reason.startswith("stuck: no run recorded a result within 600 s of the item being made pending "
                             "at 2026-12-05T11:49:00+00:00 (execution run-1)")
    assert "(no execution)" in store.failed["s3://b/none.gif"]


def test_a_run_goes_only_so_far_and_leaves_what_finished_meanwhile() -> None:
    items = [pending(f"{i}.gif", 3600 + i) for i in range(5)]
    store = Store(items, recorded=frozenset({"s3://b/1.gif"}))
    report = StuckSweep(store, max_items=3, clock=lambda: AT).run()
    assert (report.failed, report.finished, report.left) == (["s3://b/0.gif", "s3://b/2.gif"], 1, 2)
    dry = StuckSweep(Store(items), clock=lambda: AT).run(dry_run=True)
    assert (dry.found, dry.failed, dry.dry_run) == (5, [], True)
