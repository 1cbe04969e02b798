"""What the cascade did with the uploads in a results table: `gifcat summary [--table T] [--json]`.

Each result item records the stage that decided, its confidence, its cost and, after a person's
correction, the machine's answer it replaced (`corrected_from`). Summed over the table they show whether
the cascade pays and where to tune it:
- per deciding stage: how many items, their mean confidence, what an item cost and took; items that
  took the result of an upload of the same bytes and metadata have their own row ("reused");
- per stage, how many of its answers a person checked (`gifcat correct`) and how many were changed: the
  error rate seen in production, the figure to set that stage's target by (`gifcat calibrate`);
- how many items reached the LLM, and the cost by part (LLM, Lambda, Step Functions) per 1,000 items;
- the classified items by category (what the uploads are);
- what was not classified, by reason; items still pending, and those pending for longer than a run may
  last (their run ended without recording: timed out); items made with another taxonomy version
  (`gifcat backfill --stale-only` re-classifies both).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel

from gifcat.application.sweep import STUCK_AFTER_S
from gifcat.domain.model import StageName, Status
from gifcat.domain.result import DECIDERS, HUMAN, ResultItem, now

COST_PARTS = ("llm_usd", "lambda_usd", "stepfunctions_usd")
# The row of the items that took another upload's answer (`reused_from`), whoever decided that one.
REUSED = "reused"


class DeciderRow(BaseModel):
    """The items one stage (or a person) decided, as they stand in the table; or those that took the
    answer of an upload of the same bytes and metadata (decided_by "reused")."""

    decided_by: str
    items: int
    share: float  # of the classified items
    mean_confidence: float | None
    cost_per_1000_usd: float | None  # the mean cost of these items, times 1,000
    p50_ms: float | None  # the stages' own time an item (timings_ms summed), median
    # The stage's answers a person answered too (now decided_by human, corrected_from this stage), and
    # how many of those the person changed: the stage's error rate as production sees it.
    checked: int = 0
    changed: int = 0


class TableSummary(BaseModel):
    table: str
    since: datetime | None  # only items written (updated_at) at or after this; None: all
    items: int
    statuses: dict[str, int]
    deciders: list[DeciderRow]
    reached_llm: int  # items on which the LLM step ran (decided or not)
    llm_errors: int  # ...and failed (its error recorded on the item)
    cost_usd: dict[str, float]  # the whole table, by part, and total_usd
    cost_per_1000_usd: float
    categories: dict[str, int]  # classified items by primary category, most first
    not_classified: dict[str, int]  # failed and skipped, by the first clause of their reason
    pending: int
    oldest_pending_s: float | None
    stuck_after_s: float
    stuck_pending: int  # pending for longer than stuck_after_s: their run ended without recording
    taxonomy_version: str  # the current one
    other_taxonomy: int  # classified items made with another version
    # Uploads seen before that took another's result, and what deciding those results had cost: the
    # runs their reuse saved.
    reused: int = 0
    reuse_saved_usd: float = 0.0
    unreadable: list[str] = []  # items that are not gifcat results (left out, each with why)

    @property
    def classified(self) -> int:
        return self.statuses.get(Status.CLASSIFIED.value, 0)


def reason_kind(reason: str | None) -> str:
    """A reason without its particulars: the first clause, with names and numbers that carry digits (an
    execution name, a byte count) replaced by '#', so that reasons of one kind count together."""
    first = re.split(r"[:;(]", reason or "", maxsplit=1)[0].strip()
    return re.sub(r"\S*\d\S*", "#", first)[:80] or "no reason given"


@dataclass
class _Decided:
    """What one decider's items add up to, kept as numbers so a large table is never held in memory."""

    confidence: float = 0.0
    cost_usd: float = 0.0
    ms: list[float] = field(default_factory=list)  # for the median: one float an item


def summarise(
    items: Iterable[ResultItem],
    *,
    table: str,
    taxonomy_version: str,
    at: datetime | None = None,
    stuck_after_s: float = STUCK_AFTER_S,
    since: datetime | None = None,
) -> TableSummary:
    """One pass over the items (a Scan's pages as they arrive); with `since`, only the items written
    (`updated_at`: classified, corrected, failed, or made pending) at or after it."""
    at = at or now()
    if since is not None:
        items = (item for item in items if item.updated_at >= since)
    statuses: Counter[str] = Counter()
    decided = {d: _Decided() for d in (*DECIDERS, REUSED)}
    checked: Counter[str] = Counter()
    changed: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    cost = dict.fromkeys((*COST_PARTS, "total_usd"), 0.0)
    reached_llm = llm_errors = other_taxonomy = stuck = reused = 0
    saved = 0.0
    oldest_pending: datetime | None = None
    for item in items:
        statuses[item.status.value] += 1
        for part in COST_PARTS:
            cost[part] += (item.cost or {}).get(part, 0.0)
        cost["total_usd"] += item.cost_usd
        llm = [t for t in item.stages if t.stage is StageName.LLM]
        reached_llm += bool(llm)
        llm_errors += sum(t.error is not None for t in llm)
        if item.status is Status.CLASSIFIED and item.decided_by:
            row = decided[REUSED if item.reused_from else str(item.decided_by)]
            row.confidence += item.confidence
            row.cost_usd += item.cost_usd
            row.ms.append(sum(item.timings_ms.values()))
            other_taxonomy += item.taxonomy_version != taxonomy_version
            categories[item.primary or "-"] += 1
        machine = item.corrected_from
        if item.decided_by == HUMAN and machine is not None and machine.decided_by:
            checked[str(machine.decided_by)] += 1
            changed[str(machine.decided_by)] += machine.primary != item.primary
        if item.reused_cost_usd is not None:
            reused += 1
            saved += item.reused_cost_usd
        if item.status in (Status.FAILED, Status.SKIPPED):
            reasons[reason_kind(item.reason)] += 1
        if item.status is Status.PENDING:
            if oldest_pending is None or item.updated_at < oldest_pending:
                oldest_pending = item.updated_at
            stuck += (at - item.updated_at).total_seconds() > stuck_after_s
    n = sum(statuses.values())
    live = n - statuses[Status.DELETED.value]
    classified = statuses[Status.CLASSIFIED.value]
    rows = []
    for decider, row in decided.items():
        count = len(row.ms)
        rows.append(DeciderRow(
            decided_by=decider,
            items=count,
            share=round(count / classified, 4) if classified else 0.0,
            mean_confidence=round(row.confidence / count, 4) if count else None,
            cost_per_1000_usd=round(row.cost_usd / count * 1000, 4) if count else None,
            p50_ms=round(statistics.median(row.ms), 1) if count else None,
            checked=checked[decider],
            changed=changed[decider],
        ))
    return TableSummary(
        table=table,
        since=since,
        items=n,
        statuses=dict(statuses),
        deciders=rows,
        reached_llm=reached_llm,
        llm_errors=llm_errors,
        cost_usd={part: round(value, 8) for part, value in cost.items()},
        # per object still there: a deleted one's tombstone cost nothing and classifies nothing
        cost_per_1000_usd=round(cost["total_usd"] / live * 1000, 6) if live else 0.0,
        categories=_most_first(categories),
        not_classified=_most_first(reasons),
        pending=statuses[Status.PENDING.value],
        oldest_pending_s=round((at - oldest_pending).total_seconds(), 1) if oldest_pending else None,
        stuck_after_s=stuck_after_s,
        stuck_pending=stuck,
        taxonomy_version=taxonomy_version,
        other_taxonomy=other_taxonomy,
        reused=reused,
        reuse_saved_usd=round(saved, 8),
    )


def _most_first(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_text(summary: TableSummary) -> str:
    since = f" since {summary.since.isoformat(timespec='seconds')}" if summary.since else ""
    if not summary.items:
        return f"results table {summary.table}: no items{since or ' yet'}"
    lines = [
        f"results table {summary.table}{since}: {summary.items} items ("
        + ", ".join(f"{status} {n}" for status, n in sorted(summary.statuses.items())) + ")",
        "",
        f"{'decided by':<10} {'items':>6} {'share':>6} {'conf':>5} {'$/1,000':>8} {'ms p50':>7}",
    ]
    for row in summary.deciders:
        conf = "-" if row.mean_confidence is None else f"{row.mean_confidence:.2f}"
        ms = "-" if row.p50_ms is None else f"{row.p50_ms:.1f}"
        lines.append(
            f"{row.decided_by:<10} {row.items:>6} {row.share:>6.1%} {conf:>5} "
            f"{_usd(row.cost_per_1000_usd):>8} {ms:>7}"
        )
    checked = [row for row in summary.deciders if row.checked]
    if checked:
        lines.append(
            f"a person checked {sum(r.checked for r in checked)} machine answers and changed "
            f"{sum(r.changed for r in checked)}: "
            + ", ".join(f"{r.decided_by} {r.changed} of {r.checked}" for r in checked)
        )
    c = summary.cost_usd
    reached = summary.reached_llm / summary.items
    lines += [
        "",
        f"reached the LLM: {summary.reached_llm} of {summary.items} items ({reached:.1%}); "
        f"LLM calls that failed: {summary.llm_errors}",
        f"cost: ${c['total_usd']:.6f} in all, ${summary.cost_per_1000_usd:.4f} per 1,000 items (LLM "
        f"${c['llm_usd']:.6f}, Lambda ${c['lambda_usd']:.6f}, Step Functions ${c['stepfunctions_usd']:.6f})",
    ]
    if summary.reused:
        lines.append(f"uploads seen before: {summary.reused} took another upload's result, saving the "
                     f"${summary.reuse_saved_usd:.6f} deciding those results had cost")
    if summary.categories:
        lines.append("categories: " + ", ".join(f"{k} {n}" for k, n in summary.categories.items()))
    if summary.not_classified:
        lines.append("not classified: " + ", ".join(f"{k} {n}" for k, n in summary.not_classified.items()))
    if summary.pending:
        lines.append(f"pending: {summary.pending}, the oldest for {summary.oldest_pending_s:.0f} s")
    if summary.stuck_pending:
        lines.append(
            f"pending for over {summary.stuck_after_s:.0f} s, longer than a run lasts: "
            f"{summary.stuck_pending} (their runs ended without recording; gifcat backfill --stale-only "
            "re-classifies them)"
        )
    if summary.other_taxonomy:
        lines.append(
            f"made with another taxonomy than {summary.taxonomy_version}: {summary.other_taxonomy} "
            "(gifcat backfill --stale-only re-classifies them)"
        )
    if summary.unreadable:
        n, first = len(summary.unreadable), summary.unreadable[0]
        lines.append(f"left out, not gifcat results: {n} items, e.g. {first}")
    return "\n".join(lines)
