"""Result events on an EventBridge bus (the stack's ResultEventBus; README "Result events").

PutEvents takes at most 10 entries a call and answers per entry: a call can succeed while some of its
entries fail (throttled, an internal error), so each entry's answer is read, and a call that fails as a
whole (throttled, access denied, no such bus) counts against every entry it carried. The caller sends
those again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from gifcat.domain.result_events import SOURCE, ResultEvent

MAX_ENTRIES = 10  # PutEvents' limit per call


class EventBridgeResults:
    def __init__(self, bus_name: str, client: Any | None = None) -> None:
        self.bus_name = bus_name
        self._events = client or boto3.client("events")

    def entry(self, event: ResultEvent) -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": event.detail_type.value,
            "Detail": event.detail.model_dump_json(),
            "EventBusName": self.bus_name,
            "Resources": [f"arn:aws:s3:::{event.detail.bucket}/{event.detail.key}"],
            "Time": event.time,
        }

    def send(self, events: Sequence[ResultEvent]) -> dict[int, str]:
        """Put the events; return those not accepted, by index, with why."""
        refused: dict[int, str] = {}
        for start in range(0, len(events), MAX_ENTRIES):
            chunk = events[start:start + MAX_ENTRIES]
            try:
                answer = self._events.put_events(Entries=[self.entry(e) for e in chunk])
            except (ClientError, BotoCoreError) as exc:
                refused.update(dict.fromkeys(range(start, start + len(chunk)), str(exc)))
                continue
            for offset, result in enumerate(answer.get("Entries", [])):
                if result.get("ErrorCode"):
                    refused[start + offset] = f"{result['ErrorCode']}: {result.get('ErrorMessage', '')}"
        return refused
