"""Which results a person should answer first: `gifcat review [--limit N] [--json]`, and the order
`gifcat stream --review queue` replays corrections in.

The learner (`gifcat learn`) learns people's answers always, and the LLM's only when a gate admits them;
the gate is chosen on the LLM answers a person also answered. So a person's answer is worth most:
- "answer": on a result no stage decided, which nothing learns until a person answers it;
- "teach": on an LLM answer the gate refuses, least supported first: the cheap stages never learn it
  otherwise, and a low support is where the LLM is most often wrong;
- "check": on an answer the gate admits, one slot in `check_every`, drawn by a seeded hash: the gate's
  only evidence about what it lets through. Checks of refused answers alone cannot certify any
  threshold, and the gate would stay on its prior.

`gifcat review` reads what the next learn run would read (people's answers of the taxonomy in force,
then its newest results) and chooses the gate as that run would. Each line ends with the `gifcat
correct` command that answers it; naming the category the machine gave confirms it, and counts for the
gate as much as a change. Left out: people's answers; failed results (`gifcat rerun failed`); pending
ones; reused results (the upload whose answer they took is listed); answers of the tag, rule and
embedding stages (certified under their error targets; `gifcat summary` shows how often people changed
each); results of another taxonomy version (`gifcat backfill --stale-only`); uploads with no text, which
the learner cannot learn from.
"""

from __future__ import annotations

import hashlib
import shlex
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from gifcat.application.learn import gate_pair
from gifcat.domain.learning import Gate, GatePair, llm_agrees, llm_answer, llm_support
from gifcat.domain.model import StageName, Status
from gifcat.domain.result import HUMAN, ResultItem

# -- the order -----------------------------------------------------------------------------------------
Why = Literal["answer", "teach", "check"]


@dataclass(frozen=True)
class Reviewable:
    """An answer a person may review: the LLM's (None: no stage decided), its support and whether the
    gate in force admits it (gifcat.domain.learning)."""

    key: str
    answer: str | None
    support: float = 0.0
    admitted: bool = False


@dataclass(frozen=True)
class ReviewEntry:
    item: Reviewable
    why: Why


def _draw(key: str, seed: int) -> str:
    """A stable pseudo-random order: the same items and seed give the same checks on every run."""
    return hashlib.sha256(f"{seed}\x1f{key}".encode()).hexdigest()


def review_queue(
    items: Sequence[Reviewable], *, limit: int | None = None, check_every: int = 4, seed: int = 0
) -> list[ReviewEntry]:
    """`items` in the order a person should review them (module docstring): the undecided first, then
    the refused answers by support, with every `check_every`-th slot (0: none) given to an admitted
    answer while any is left. At most `limit` entries (None: all)."""
    if check_every < 0:
        raise ValueError(f"check_every is 0 (no checks) or more, got {check_every}")
    unanswered = [ReviewEntry(i, "answer") for i in sorted(items, key=lambda i: _draw(i.key, seed))
                  if i.answer is None]
    refused = [ReviewEntry(i, "teach") for i in sorted(
        (i for i in items if i.answer is not None and not i.admitted), key=lambda i: (i.support, i.key))]
    admitted = [ReviewEntry(i, "check") for i in sorted(
        (i for i in items if i.answer is not None and i.admitted), key=lambda i: _draw(i.key, seed))]
    queue = list(unanswered)
    while refused or admitted:
        slot = len(queue) - len(unanswered) + 1
        take_check = admitted and (not refused or (check_every and slot % check_every == 0))
        queue.append(admitted.pop(0) if take_check else refused.pop(0))
    return queue if limit is None else queue[:limit]


# -- the queue of a results table ---------------------------------------------------------------------
class ReviewRow(BaseModel):
    uri: str
    why: Why  # answer | teach | check
    category: str | None  # the machine's answer (None: no stage decided)
    decided_by: str | None
    support: float | None  # the gate's score for the LLM's answer
    updated_at: datetime
    title: str | None = None
    tags: list[str] = []
    description: str | None = None


class ReviewReport(BaseModel):
    table: str
    taxonomy_version: str
    items: int  # results read
    gate: dict[str, object]  # the gate as the next learn run would choose it (Gate.as_dict)
    waiting: dict[str, int]  # everything in the queue, by why
    rows: list[ReviewRow]  # the first `limit`


def _reviewable(item: ResultItem, gate: Gate) -> Reviewable | None:
    if item.reused_from or item.decided_by == HUMAN or not (item.title or item.tags or item.description):
        return None
    if item.status is Status.UNDECIDED:
        return Reviewable(item.pk, None)
    if item.status is not Status.CLASSIFIED or item.decided_by != StageName.LLM.value:
        return None
    answer = llm_answer(item.stages, StageName.LLM.value, item.primary)
    support = llm_support(item.stages, answer)
    return Reviewable(item.pk, answer, support, gate.admits(support, llm_agrees(item.stages, answer)))


def build_review(
    results: Iterable[ResultItem],
    *,
    table: str,
    taxonomy_version: str,
    choose_gate: Callable[[Sequence[GatePair]], Gate],
    limit: int = 20,
    check_every: int = 4,
    seed: int = 0,
) -> ReviewReport:
    """The review queue of these results (module docstring); `choose_gate` as `gifcat learn` calls it."""
    items = [i for i in results if i.taxonomy_version == taxonomy_version]
    gate = choose_gate([p for i in items if (p := gate_pair(i)) is not None])
    by_key = {i.pk: i for i in items}
    reviewable = [r for i in items if (r := _reviewable(i, gate)) is not None]
    queue = review_queue(reviewable, check_every=check_every, seed=seed)
    rows = []
    for entry in queue[:limit]:
        item = by_key[entry.item.key]
        rows.append(ReviewRow(
            uri=item.pk, why=entry.why, category=item.primary, decided_by=item.decided_by,
            support=round(entry.item.support, 4) if entry.item.answer else None, updated_at=item.updated_at,
            title=item.title, tags=list(item.tags or []), description=item.description,
        ))
    return ReviewReport(table=table, taxonomy_version=taxonomy_version, items=len(items),
                        gate=gate.as_dict(), waiting=dict(Counter(e.why for e in queue)), rows=rows)


_WHY = {
    "answer": "no stage decided",
    "teach": "not learned unless a person answers",
    "check": "learned: a check of the gate",
}


def _clip(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(report: ReviewReport) -> str:
    waiting = sum(report.waiting.values())
    gate = report.gate
    lines = [
        f"review queue of {report.table} (taxonomy {report.taxonomy_version}): {len(report.rows)} of "
        f"{waiting} shown, from {report.items} results read",
        f"the gate on LLM answers, as the next `gifcat learn` chooses it: {gate['rule']}"
        + (f" (support >= {gate['threshold']})" if gate.get("threshold") is not None else "")
        + f", on {gate['pairs']} LLM answers a person also answered",
        "",
    ]
    for n, row in enumerate(report.rows, 1):
        said = "undecided"
        if row.category:
            said = f"{row.category} ({row.decided_by}, support {row.support or 0.0:.2f})"
        text = _clip(" | ".join(filter(None, [row.title, " ".join(row.tags), row.description])), 70)
        lines.append(f"{n:>3}. {row.why:<6} {said}: {_WHY[row.why]}")
        lines.append(f"     {text}")
        lines.append(f"     gifcat correct {shlex.quote(row.uri)} --category {row.category or 'CATEGORY'}")
    if not report.rows:
        lines.append("nothing to review: no undecided result, and no LLM answer of this taxonomy")
    else:
        lines += ["", "Naming the category the machine gave confirms it; either answer is learned, and "
                      "teaches the gate."]
    return "\n".join(lines)
