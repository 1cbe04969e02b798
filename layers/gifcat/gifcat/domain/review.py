"""Which answers a person should look at first (`gifcat review`, and `gifcat stream --review queue`).

The learner (`gifcat learn`) learns people's answers always, and the LLM's only when a gate admits them;
the gate is chosen on the LLM answers a person also answered. So a person's answer is worth most:
- "answer": on a result no stage decided, which nothing learns until a person answers it;
- "teach": on an LLM answer the gate refuses, least supported first: the cheap stages never learn it
  otherwise, and a low support is where the LLM is most often wrong;
- "check": on an answer the gate admits, one slot in `check_every`, drawn by a seeded hash: the gate's
  only evidence about what it lets through. Checks of refused answers alone cannot certify any
  threshold, and the gate would stay on its prior.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

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
