"""`gifcat rerun`: which results it runs again, and how it starts them (gifcat_tooling.operations.rerun)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from gifcat.domain.model import Classification, Status
from gifcat.domain.result import ObjectRef, ResultItem, result_item
from gifcat_tooling.operations.rerun import from_table, matching, rerun

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def item(key: str, status: Status, reason: str | None = None, minutes_ago: int = 0) -> ResultItem:
    return result_item(ObjectRef(bucket="b", key=key), Classification(status=status, reason=reason),
                       at=AT - timedelta(minutes=minutes_ago))


ITEMS = [
    item("u/llm.gif", Status.FAILED, "llm: LlmCallError: 429 insufficient_quota", 5),
    item("u/old.gif", Status.FAILED, "llm: timeout after 20s", 60 * 24 * 3),
    item("u/embed.gif", Status.FAILED, "backfill: MemoryError: out of memory", 5),
    item("x/llm.gif", Status.FAILED, "llm: timeout after 20s", 5),
    item("u/ok.gif", Status.CLASSIFIED),
    item("u/pending.gif", Status.PENDING, minutes_ago=2),
    item("u/stuck.gif", Status.PENDING, minutes_ago=30),
]


def keys(found: Any) -> list[str]:
    return [i.key for i in found]


def test_failed_results_are_chosen_by_when_where_and_why() -> None:
    assert keys(matching(ITEMS, "failed", at=AT)) == ["u/llm.gif", "u/old.gif", "u/embed.gif", "x/llm.gif"]
    chosen = matching(ITEMS, "failed", since=AT - timedelta(hours=1), prefix="u/", reason="LLM", at=AT)
    assert keys(chosen) == ["u/llm.gif"]


def test_stuck_results_are_those_pending_longer_than_any_run() -> None:
    assert keys(matching(ITEMS, "stuck", stuck_after_s=600, at=AT)) == ["u/stuck.gif"]


class Table:
    """The two reads from_table may make: the index of failed and pending results, or a Scan."""

    def __init__(self) -> None:
        self.asked: list[tuple[Any, ...]] = []

    def rerunnable(self, status: Status, *, since: datetime | None = None,
                   before: datetime | None = None) -> list[ResultItem]:
        self.asked.append(("index", status, since, before))
        return [i for i in ITEMS if i.status is status]

    def items(self) -> list[ResultItem]:
        self.asked.append(("scan",))
        return ITEMS


def test_the_index_is_asked_for_failed_results_or_for_those_pending_since_before_a_run_ends() -> None:
    table, since = Table(), AT - timedelta(hours=2)
    assert keys(from_table(table, "failed", since=since, at=AT)) == [
        "u/llm.gif", "u/old.gif", "u/embed.gif", "x/llm.gif"]
    from_table(table, "stuck", since=since, stuck_after_s=600, at=AT)
    from_table(table, "stuck", scan=True)
    assert table.asked == [("index", Status.FAILED, since, None),
                           ("index", Status.PENDING, since, AT - timedelta(seconds=600)), ("scan",)]


class Machine:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.started.append(kwargs)
        return {"executionArn": "arn"}


def test_each_is_started_as_a_forced_rerun_at_the_rate_asked() -> None:
    machine, pauses = Machine(), []
    failed = list(matching(ITEMS, "failed", prefix="u/", at=AT))
    report = rerun(failed, machine, "arn:sm", "failed", rate=4.0, sleep=pauses.append)
    assert [json.loads(s["input"]) for s in machine.started] == [
        {"bucket": "b", "key": k, "force": True} for k in ("u/llm.gif", "u/old.gif", "u/embed.gif")
    ]
    assert {s["stateMachineArn"] for s in machine.started} == {"arn:sm"}
    assert len({s["name"] for s in machine.started}) == 3  # each run its own name
    assert pauses == [0.25, 0.25]  # between starts, not before the first
    assert report.matched == 3 and report.reasons == {"llm": 2, "backfill": 1}
    dry = rerun(failed, Machine(), "arn:sm", "failed", dry_run=True, sleep=pauses.append)
    assert (dry.matched, dry.started) == (3, [])
