"""State machine adapter: starts one execution per object version, whatever the number of events."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import boto3
from botocore.exceptions import ClientError

from gifcat.result import ObjectRef

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def execution_name(ref: ObjectRef) -> str:
    """Deterministic from bucket, key and version (or ETag): a repeated event names the same execution.

    Step Functions names allow 80 characters of [A-Za-z0-9-_]; the readable part is a hint only, the
    hash makes it unique.
    """
    version = ref.version_id or ref.etag or ""
    digest = hashlib.sha256(f"{ref.bucket}\n{ref.key}\n{version}".encode()).hexdigest()[:32]
    hint = _UNSAFE.sub("-", ref.key.rsplit("/", 1)[-1]).strip("-")[:40] or "object"
    return f"{hint}-{digest}"


class Escalations:
    def __init__(self, state_machine_arn: str, client: Any | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._sfn = client or boto3.client("stepfunctions")

    def start(self, name: str, payload: dict[str, Any]) -> tuple[str, bool]:
        """Start the execution, or find it: Step Functions returns the same execution for the same name
        and input, and ExecutionAlreadyExists for the same name with another input: (arn, False)."""
        try:
            started = self._sfn.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload, default=str)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise
            arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
            return arn, False
        return started["executionArn"], True
