"""State machine adapter: starts the execution of an upload event.

The per-upload machine is EXPRESS: AWS starts a new run for every StartExecution, whatever its name (at
least once, no name idempotency), so the name is the run's label in the logs and the owner the result
item names. What makes one run per upload event is the pending item's conditional write before the
start (gifcat.adapters.dynamodb.put_request) and the state machine's Claim state after it. On a
STANDARD machine the same name also makes Step Functions start it once, and the adapter says what
became of it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import boto3
from botocore.exceptions import ClientError

from gifcat.application.ports import StartOutcome
from gifcat.domain.model import GifMetadata
from gifcat.domain.result import ObjectRef, metadata_digest

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def execution_name(ref: ObjectRef, metadata: GifMetadata) -> str:
    """One name per upload event: a repeated delivery of the event names the same execution, and a
    re-upload (even of identical bytes, even with only new metadata) names a new one.

    The event's sequencer identifies the upload; without one, what was read does: ETag, last-modified
    and the metadata's digest. Step Functions names allow 80 characters of [A-Za-z0-9-_]; the readable
    part is a hint only, the hash makes it unique.
    """
    if ref.sequencer:
        upload = f"seq:{ref.sequencer.upper()}"
    else:
        modified = ref.last_modified.isoformat() if ref.last_modified else ""
        upload = f"read:{ref.etag or ''}\n{modified}\n{metadata_digest(metadata)}"
    identity = f"{ref.bucket}\n{ref.key}\n{ref.version_id or ''}\n{upload}"
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    hint = _UNSAFE.sub("-", ref.key.rsplit("/", 1)[-1]).strip("-")[:40] or "object"
    return f"{hint}-{digest}"


class Escalations:
    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._sfn = client or boto3.client("stepfunctions")

    def execution_arn(self, name: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def start(self, name: str, payload: dict[str, Any]) -> StartOutcome:
        """Start the execution, or say what became of the one with this name.

        Express: always "started" (a run per call). Standard: Step Functions returns the running
        execution for the same name and input, and ExecutionAlreadyExists for another input or a closed
        execution: then DescribeExecution tells.
        """
        try:
            # Unescaped UTF-8: Step Functions counts the input's bytes, and \\uXXXX escapes triple emoji.
            self._sfn.start_execution(
                stateMachineArn=self.state_machine_arn,
                name=name,
                input=json.dumps(payload, default=str, ensure_ascii=False),
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            status = self._sfn.describe_execution(executionArn=self.execution_arn(name))["status"]
            return "running" if status in ("RUNNING", "PENDING_REDRIVE") else "closed"
        return "started"
