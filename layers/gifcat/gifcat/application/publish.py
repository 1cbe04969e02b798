"""The results table's changes told to the team's other systems, as result events (README "Result
events"; gifcat.domain.result_events says which change tells what).

PublishFunction reads the table's stream: every write of every path (triage, the state machine's
Record, reruns, backfill, corrections, the sweep, deletions) passes through it, so no path can forget to
tell. A change whose event the bus does not accept is named back to the stream (a partial batch
failure), which delivers it again; an image that is not a gifcat result is reported, not retried: it
never will be one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from gifcat.domain.result import ResultItem
from gifcat.domain.result_events import ResultEvent, result_event


class ResultEventBus(Protocol):
    """Where result events go (gifcat.adapters.eventbridge.EventBridgeResults)."""

    def send(self, events: Sequence[ResultEvent]) -> dict[int, str]:
        """Send the events; return those the bus did not accept, by index, with why."""
        ...


@dataclass(frozen=True)
class ResultChange:
    """One write to the results table: the item before and after (None: absent), as plain values."""

    id: str  # the stream record's sequence number: what a partial batch failure names
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None


class NotTold(BaseModel):
    id: str  # the change's
    reason: str


class PublishReport(BaseModel):
    published: dict[str, int] = {}  # events accepted, by detail type
    silent: int = 0  # changes that tell nothing (pending, the same answer written again, expiry)
    failed: list[NotTold] = []  # changes whose event the bus did not accept: delivered again
    unreadable: list[NotTold] = []  # images that are not gifcat results: reported, not retried


class ResultPublisher:
    def __init__(self, bus: ResultEventBus) -> None:
        self.bus = bus

    def publish(self, changes: Sequence[ResultChange]) -> PublishReport:
        report = PublishReport()
        ids: list[str] = []
        events: list[ResultEvent] = []
        for change in changes:
            try:
                old, new = _result(change.old), _result(change.new)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "(item)"
                report.unreadable.append(NotTold(id=change.id, reason=f"{where}: {first['msg']}"))
                continue
            event = result_event(old, new)
            if event is None:
                report.silent += 1
            else:
                ids.append(change.id)
                events.append(event)
        refused = self.bus.send(events) if events else {}
        report.failed = [NotTold(id=ids[i], reason=refused[i]) for i in sorted(refused)]
        told = Counter(e.detail_type.value for i, e in enumerate(events) if i not in refused)
        report.published = dict(told)
        return report


def _result(values: Mapping[str, Any] | None) -> ResultItem | None:
    return None if values is None else ResultItem.model_validate(dict(values))
