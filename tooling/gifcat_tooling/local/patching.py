"""How the local run patches moto: each patch module's `install` runs once per process, whichever
thread (a test, the embedded AWS, the Lambda runner) gets there first."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable


def once(install: Callable[[], None]) -> Callable[[], None]:
    """`install` made idempotent and thread-safe: a second call does nothing."""
    lock = threading.Lock()
    done = False

    @functools.wraps(install)
    def run_once() -> None:
        nonlocal done
        with lock:
            if not done:
                install()
                done = True

    return run_once
