"""A file of LLM calls keyed by prompt hash, so an eval run can be replayed offline and stays the same.

JSON Lines, one call a line, appended; the last line for a key wins. A replayed call reports the
tokens recorded with it, so cost figures of a replay match the original run.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def call_key(model: str, messages: list[dict[str, Any]], schema: dict[str, Any]) -> str:
    blob = json.dumps(
        {"model": model, "messages": messages, "schema": schema}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedCall:
    content: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int


class CallCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._entries: dict[str, CachedCall] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, CachedCall]:
        if self._entries is None:
            entries: dict[str, CachedCall] = {}
            if self.path.exists():
                with self.path.open(encoding="utf-8") as fh:
                    for line in fh:
                        try:
                            row = json.loads(line)
                            entries[row["key"]] = CachedCall(
                                **{k: row[k] for k in CachedCall.__annotations__}
                            )
                        except (ValueError, KeyError, TypeError):
                            continue  # a torn last line from an interrupted run is not fatal
            self._entries = entries
        return self._entries

    def get(self, key: str) -> CachedCall | None:
        with self._lock:
            return self._load().get(key)

    def put(self, key: str, call: CachedCall) -> None:
        with self._lock:
            self._load()[key] = call
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, **asdict(call)}, ensure_ascii=False) + "\n")

    def __len__(self) -> int:
        with self._lock:
            return len(self._load())
