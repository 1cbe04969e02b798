"""`gifcat redrive`: send the uploads in the triage function's dead-letter queue back to it.

An S3 event that the triage function still failed on after Lambda's retries waits in
TriageDeadLetterQueue as Lambda's on-failure record: the event, the function and the error. SQS's own
redrive moves messages back to a source queue, and this queue has none, so once the cause is fixed this
command invokes the function the record names again with the event, asynchronously as S3 did (Lambda's
retries and this queue apply again), and deletes the message. Redriving is safe whatever happened since:
triage's conditional writes keep a newer upload's result and a person's answer, and an event already
classified changes nothing.

Only messages already in the queue when the command starts are redriven. One that fails again comes
back as a new message and waits for the next run, so a run always ends. A message that is not a Lambda
on-failure record stays where it is, and the report says why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

RECEIVE_BATCH = 10  # SQS's largest
# Long enough that a message this run has seen is not received again before the run ends.
VISIBILITY_S = 300


@dataclass
class DeadLetter:
    """One message of the queue, read as Lambda's on-failure record."""

    message_id: str
    receipt: str
    sent_ms: int
    function: str | None = None  # the function's unqualified ARN: its code as deployed now
    event: dict[str, Any] | None = None
    error: str = ""
    keys: list[str] = field(default_factory=list)  # s3://bucket/key of each record, the key decoded
    problem: str | None = None  # why it cannot be redriven

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message_id": self.message_id, "keys": self.keys, "error": self.error}
        if self.function:
            out["function"] = self.function
        if self.problem:
            out["problem"] = self.problem
        return out


def read_message(message: dict[str, Any]) -> DeadLetter:
    letter = DeadLetter(
        message_id=message["MessageId"],
        receipt=message["ReceiptHandle"],
        sent_ms=int(message.get("Attributes", {}).get("SentTimestamp", 0)),
    )
    try:
        body = json.loads(message.get("Body") or "")
    except json.JSONDecodeError as exc:
        letter.problem = f"the body is not JSON ({exc.msg})"
        return letter
    if not isinstance(body, dict):
        letter.problem = "the body is not a Lambda on-failure record (not a JSON object)"
        return letter
    context, event = body.get("requestContext"), body.get("requestPayload")
    arn = context.get("functionArn") if isinstance(context, dict) else None
    if not isinstance(arn, str) or ":function:" not in arn or not isinstance(event, dict):
        letter.problem = "not a Lambda on-failure record (no requestContext.functionArn and requestPayload)"
        return letter
    # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]: the fix is in what is deployed now.
    prefix, name = arn.split(":function:", 1)
    letter.function = f"{prefix}:function:{name.split(':', 1)[0]}"
    letter.event = event
    response = body.get("responsePayload")
    if isinstance(response, dict):
        letter.error = f"{response.get('errorType', '')}: {response.get('errorMessage', '')}".strip(": ")
    for record in event.get("Records") or []:
        s3 = record.get("s3") if isinstance(record, dict) else None
        if isinstance(s3, dict):
            bucket = (s3.get("bucket") or {}).get("name", "?")
            key = unquote_plus(str((s3.get("object") or {}).get("key", "?")))  # as S3 events encode it
            letter.keys.append(f"s3://{bucket}/{key}")
    return letter


@dataclass
class RedriveReport:
    queue: str
    dry_run: bool
    redriven: list[DeadLetter] = field(default_factory=list)  # (with --dry-run: would be)
    left: list[DeadLetter] = field(default_factory=list)  # cannot be redriven; still in the queue
    newer: int = 0  # arrived after the run started: left for the next one

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "dry_run": self.dry_run,
            "redriven": [d.as_dict() for d in self.redriven],
            "left": [d.as_dict() for d in self.left],
            "newer": self.newer,
        }


def redrive(
    sqs: Any,
    lambda_client: Any,
    queue_url: str,
    *,
    dry_run: bool = False,
    clock: Callable[[], float] = time.time,
) -> RedriveReport:
    """Invoke each dead-lettered event's function again and delete its message (`dry_run`: only say
    which). A message whose invoke fails (the function is gone, access denied, throttled) is left with
    the error. What is left, and whatever this run held when it stopped on an error (SQS itself
    failing), is made visible again at once, for the next run or a person."""
    started_ms = int(clock() * 1000)
    report = RedriveReport(queue=queue_url, dry_run=dry_run)
    held: dict[str, DeadLetter] = {}  # received by this run and still in the queue, by message id
    seen: set[str] = set()
    try:
        while True:
            got = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=RECEIVE_BATCH,
                VisibilityTimeout=VISIBILITY_S,
                WaitTimeSeconds=1,  # long polling asks every SQS server: an empty answer means empty
                AttributeNames=["SentTimestamp"],
            )
            # Empty, or only messages this run has seen (a run longer than VISIBILITY_S sees again what
            # it kept): the run is over.
            messages = [m for m in got.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            seen.update(m["MessageId"] for m in messages)
            letters = [read_message(m) for m in messages]
            held.update((letter.message_id, letter) for letter in letters)
            for letter in letters:
                _handle(letter, report, sqs, lambda_client, queue_url, started_ms, dry_run, held)
    finally:
        kept = list(held.values())
        for i in range(0, len(kept), RECEIVE_BATCH):
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": d.receipt, "VisibilityTimeout": 0}
                for n, d in enumerate(kept[i:i + RECEIVE_BATCH])
            ])
    return report


def _handle(
    letter: DeadLetter,
    report: RedriveReport,
    sqs: Any,
    lambda_client: Any,
    queue_url: str,
    started_ms: int,
    dry_run: bool,
    held: dict[str, DeadLetter],
) -> None:
    """One message: counted as newer, left, (would be) redriven; `held` keeps what stays queued."""
    if letter.sent_ms > started_ms:
        report.newer += 1
        return
    if letter.problem:
        report.left.append(letter)
        return
    if dry_run:
        report.redriven.append(letter)
        return
    try:
        lambda_client.invoke(
            FunctionName=letter.function, InvocationType="Event", Payload=json.dumps(letter.event)
        )
    except Exception as exc:  # any invoke failure leaves this message, not the run
        letter.problem = f"the invoke failed: {type(exc).__name__}: {str(exc)[:300]}"
        report.left.append(letter)
        return
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt)
    del held[letter.message_id]
    report.redriven.append(letter)


def render(report: RedriveReport) -> str:
    done = "would redrive" if report.dry_run else "redrove"
    head = f"{report.queue}: {done} {len(report.redriven)}, left {len(report.left)}"
    lines = [head + (f", {report.newer} newer than this run (for the next)" if report.newer else "")]
    for letter in report.redriven:
        what = ", ".join(letter.keys) or f"message {letter.message_id} (no S3 record in its event)"
        lines.append(f"  {what}" + (f"  (it failed with {letter.error[:200]})" if letter.error else ""))
    for letter in report.left:
        lines.append(f"  left message {letter.message_id}: {letter.problem}")
    return "\n".join(lines)
