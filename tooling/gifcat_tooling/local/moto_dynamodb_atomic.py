"""DynamoDB requests one at a time in the local run, as atomic as DynamoDB's own.

moto 5.2.5 applies an UpdateItem's SET actions to the stored item in place, one attribute after another,
while its threaded server answers a GetItem from another thread: a reader could see an item half
updated (a result's status and category already written, its stage traces not yet). DynamoDB applies
an item's update atomically, so every DynamoDB request here holds one lock.
"""

from __future__ import annotations

import threading
from typing import Any

from gifcat_tooling.local.patching import once


@once
def install() -> None:
    """Patches moto's DynamoDB handler (once per process)."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    lock = threading.RLock()

    def call_action(self: DynamoHandler) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action
