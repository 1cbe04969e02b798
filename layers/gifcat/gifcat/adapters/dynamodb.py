"""Results table adapter: the result item in DynamoDB's types, and the conditional writes that keep
duplicates and late events from winning over newer results.

The write rules live here, once: triage's put (`put_request`), a console rerun's take-over
(`takeover_request`), and the finishing update (`record_request`), which the table runs for triage and
the state machine's Record state runs from the parameters a step puts in its state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from gifcat.application.ports import SourceUnavailable, UnreadableResult
from gifcat.domain.model import Status
from gifcat.domain.result import (
    CLASSIFICATION_FIELDS,
    HUMAN,
    NO_SEQUENCER,
    RERUNNABLE,
    UNFINISHED,
    ResultAnswer,
    ResultItem,
    WriteKind,
)

log = logging.getLogger(__name__)


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))  # DynamoDB keeps 38 digits: no rounding needed
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def to_attribute_values(item: dict[str, Any]) -> dict[str, Any]:
    """Plain dict to DynamoDB JSON ({"S": ...}, {"N": ...}), as the low-level API and ASL take it."""
    serializer = TypeSerializer()
    return {k: serializer.serialize(_to_dynamo(v)) for k, v in item.items()}


def from_attribute_values(raw: dict[str, Any]) -> ResultItem:
    """A stored item (DynamoDB JSON) as the result model; numbers come back as Decimal and are read
    as the model's floats and ints. An item the model cannot read is an UnreadableResult naming it."""
    deserializer = TypeDeserializer()
    try:
        return ResultItem.model_validate({k: deserializer.deserialize(v) for k, v in raw.items()})
    except (ValidationError, TypeError) as exc:
        pk = raw.get("pk", {}).get("S", "(no pk)") if isinstance(raw.get("pk"), dict) else "(no pk)"
        raise UnreadableResult(f"{pk}: not a gifcat result: {_first_problem(exc)}") from None


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
    return str(exc)


# With "#decided_by" and ":human" defined: the item is not a person's answer.
NOT_HUMAN = "(attribute_not_exists(#decided_by) OR #decided_by <> :human)"


# The results table's indexes by taxonomy version (template.yaml, keys only), which `gifcat learn`
# queries: every result by `updated_at`, for the newest; people's answers by `corrected_at` (sparse).
BY_TAXONOMY_VERSION = "by-taxonomy-version"
CORRECTED_BY_TAXONOMY_VERSION = "corrected-by-taxonomy-version"
# Failed and pending results by `updated_at` (sparse: keyed by `rerunnable`), which `gifcat rerun` queries.
RERUNNABLE_INDEX = "rerunnable"
# The results triage handed on, by what was classified (`content_key`: bytes, metadata, taxonomy
# version), keys only and no sort key: triage looks there for a result to reuse.
CONTENT_INDEX = "by-content"

# How long a run's claim on a pending item holds (statemachine/classify.asl.json, Claim): the state
# machine's TimeoutSeconds (300, the Express limit) and a minute more. Past it, the run that claimed
# the item has surely ended, and a pending item it left behind may be started again.
CLAIM_LEASE_S = 360


def _second(at: datetime) -> str:
    """A time as stored, cut to the second: "2026-12-05T09:30:00"."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def asl_time(at: datetime) -> str:
    """A time as Step Functions writes `$$.State.EnteredTime` (UTC, milliseconds, "Z"): comparable as a
    string with the `claimed_at` the Claim state records."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def put_request(
    item: ResultItem, *, kind: WriteKind = "result", at: datetime | None = None
) -> dict[str, Any]:
    """PutItem parameters (without TableName) for triage's write of an upload's result.

    Written when there is no item yet, or when the item is an older upload's (lower object_seq). For
    the same upload (a repeated or retried event): a "result" replaces only an unfinished item, a
    "pending" only a pending one that no run has claimed (or whose claim is older than CLAIM_LEASE_S).
    That write is what deduplicates the state machine's starts: a repeated event while a run holds the
    item starts nothing, and the execution of an upload event that already failed or finished is not
    started again. An event retried before any run claimed the item may start a second run: the
    Claim state lets one of them go on.
    """
    values: dict[str, Any] = {":seq": item.object_seq, ":pending": Status.PENDING.value}
    names = {"#seq": "object_seq", "#status": "status"}
    if kind == "pending":
        same_upload_ok = "#status = :pending AND (attribute_not_exists(#claimed) OR #claimed < :stale)"
        names["#claimed"] = "claimed_at"
        values[":stale"] = asl_time((at or datetime.now(UTC)) - timedelta(seconds=CLAIM_LEASE_S))
    else:
        same_upload_ok = "#status IN (:pending, :failed, :undecided)"
        values |= {":failed": Status.FAILED.value, ":undecided": Status.UNDECIDED.value}
    return {
        "Item": to_attribute_values(item.stored()),
        "ConditionExpression": (
            f"attribute_not_exists(pk) OR #seq < :seq OR (#seq = :seq AND {same_upload_ok})"
        ),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_attribute_values(values),
    }


def takeover_request(item: ResultItem, stored: ResultItem | None, *, force: bool) -> dict[str, Any]:
    """PutItem parameters for a console rerun's pending item, which takes over the stored one in place.

    The rerun has no S3 event, so it keeps the stored item's order (object_seq, sequencer): a rerun
    never outranks an upload, and an upload that lands during the rerun still wins. Without force it
    takes over only an unfinished item. It never takes over a human answer (`correction_request`).
    """
    if stored is None:
        item = item.model_copy(update={"object_seq": NO_SEQUENCER, "sequencer": None})
        return {
            "Item": to_attribute_values(item.stored()),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    item = item.model_copy(
        update={"object_seq": stored.object_seq or NO_SEQUENCER, "sequencer": stored.sequencer}
    )
    names = {"#seq": "object_seq", "#decided_by": "decided_by"}
    values: dict[str, Any] = {":seq": item.object_seq, ":human": HUMAN}
    # A person's answer for this upload stays, force or not: only a newer upload replaces it.
    condition = "#seq = :seq AND " + NOT_HUMAN
    if not force:
        names["#status"] = "status"
        values |= {f":{s.value}": s.value for s in UNFINISHED}
        condition += " AND #status IN (" + ", ".join(f":{s.value}" for s in UNFINISHED) + ")"
    return {
        "Item": to_attribute_values(item.stored()),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_attribute_values(values),
    }


def record_request(
    pk: str, answer: ResultAnswer, *, execution: str, only_pending: bool = False
) -> dict[str, Any]:
    """UpdateItem parameters (without TableName) that finish an execution's own item.

    Sets the answer's fields (CLASSIFICATION_FIELDS) and removes those it leaves unknown; the object
    and metadata attributes stay as triage wrote them, so the state machine never carries the
    uploader's metadata whole. The condition is ownership: the item still names this execution.
    """
    names: dict[str, str] = {"#execution": "execution"}
    values: dict[str, Any] = {":execution": execution}
    fields = answer.stored()
    sets, removes = [], []
    for i, name in enumerate(CLASSIFICATION_FIELDS):
        if name == "execution":
            continue  # kept: it is the condition
        names[f"#f{i}"] = name
        value = fields.get(name)
        if value is None or value == "":
            removes.append(f"#f{i}")
        else:
            sets.append(f"#f{i} = :f{i}")
            values[f":f{i}"] = value
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    # A correction also drops `execution`; the guard holds should an item keep both. (The name that
    # the update gives decided_by is reused: one placeholder per attribute.)
    decided_by = next(k for k, v in names.items() if v == "decided_by")
    values[":human"] = HUMAN
    condition = "#execution = :execution AND " + NOT_HUMAN.replace("#decided_by", decided_by)
    if only_pending:
        names["#status"] = "status"
        values[":pending"] = Status.PENDING.value
        condition += " AND #status = :pending"
    return {
        "Key": {"pk": {"S": pk}},
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_attribute_values(values),
    }


def stuck_request(
    pk: str, execution: str | None, reason: str, *, stale_before: datetime, at: datetime
) -> dict[str, Any]:
    """UpdateItem parameters that mark a stuck pending item failed, with the reason (the sweep's).

    The condition is that the item is still the one found: pending, made pending before `stale_before`
    (to the second: the stored times of Step Functions and Python differ below it) and owned by the same
    execution (or by none). A run that recorded meanwhile, or a newer upload or rerun, wins."""
    names = {"#status": "status", "#rerunnable": "rerunnable", "#reason": "reason",
             "#updated_at": "updated_at", "#execution": "execution", "#replaces": "replaces"}
    values: dict[str, Any] = {":failed": Status.FAILED.value, ":pending": Status.PENDING.value,
                              ":reason": reason, ":at": at.isoformat(), ":stale": _second(stale_before)}
    condition = "#status = :pending AND #updated_at < :stale AND "
    if execution:
        condition += "#execution = :execution"
        values[":execution"] = execution
    else:
        condition += "attribute_not_exists(#execution)"
    return {
        "Key": {"pk": {"S": pk}},
        "UpdateExpression": (
            "SET #status = :failed, #rerunnable = :failed, #reason = :reason, #updated_at = :at"
            " REMOVE #replaces"  # a rerun's, while pending: its failure is told with it (`previous`)
        ),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_attribute_values(values),
    }


def adopt_request(item: ResultItem, was: ResultItem) -> dict[str, Any]:
    """PutItem parameters that replace `was` with `item`, the same upload with another answer. The
    condition is that the stored item is still `was` (the same upload, written at the same time) and is
    not a person's own correction."""
    return {
        "Item": to_attribute_values(item.stored()),
        "ConditionExpression": "#seq = :seq AND #updated_at = :was AND attribute_not_exists(#corrected_at)",
        "ExpressionAttributeNames": {"#seq": "object_seq", "#updated_at": "updated_at",
                                     "#corrected_at": "corrected_at"},
        "ExpressionAttributeValues": to_attribute_values(
            {":seq": was.object_seq, ":was": was.model_dump(mode="json")["updated_at"]}
        ),
    }


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"



def correction_request(
    pk: str, fields: dict[str, Any], *, object_seq: str, etag: str | None
) -> dict[str, Any]:
    """UpdateItem parameters that record a person's answer on the result of one upload.

    Sets `fields` (decided_by human, the answer, who and when) and removes `reason` (of a failure),
    `rerunnable` (a person's answer is never run again), `reused_from` (the answer is this object's
    own now), `replaces` (a rerun's: the person's answer is told with what the item held), and
    `execution` with the claim of its run
    (`run`, `claimed_at`): a run still going for this upload no longer owns the item, so its Record and
    RecordFailure write nothing. The condition is that the item still describes the upload that was
    checked (same object_seq and ETag): a newer upload's triage, landed meanwhile, wins.
    """
    names = {"#seq": "object_seq", "#etag": "etag", "#execution": "execution", "#reason": "reason",
             "#rerunnable": "rerunnable", "#run": "run", "#claimed_at": "claimed_at",
             "#reused_from": "reused_from", "#replaces": "replaces"}
    values: dict[str, Any] = {":seq": object_seq, ":etag": etag or ""}
    sets = []
    for i, (name, value) in enumerate(fields.items()):
        names[f"#f{i}"] = name
        values[f":f{i}"] = value
        sets.append(f"#f{i} = :f{i}")
    condition = "attribute_exists(pk) AND #seq = :seq AND " + (
        "#etag = :etag" if etag else "attribute_not_exists(#etag)"
    )
    if not etag:
        del values[":etag"]
    return {
        "Key": {"pk": {"S": pk}},
        "UpdateExpression": (
            "SET " + ", ".join(sets)
            + " REMOVE #execution, #run, #claimed_at, #reason, #rerunnable, #reused_from, #replaces"
        ),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": to_attribute_values(values),
    }


class ResultsTable:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._ddb = client or boto3.client("dynamodb")
        self.unreadable: list[str] = []  # the last scan's items that are not gifcat results, and why

    def _write(self, operation: str, request: dict[str, Any]) -> bool:
        try:
            getattr(self._ddb, operation)(TableName=self.table_name, **request)
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def put(self, item: ResultItem, *, kind: WriteKind = "result") -> bool:
        """Write triage's result; False when a newer (or finished) result is already there."""
        return self._write("put_item", put_request(item, kind=kind))

    def take_over(self, item: ResultItem, stored: ResultItem | None, *, force: bool) -> bool:
        """A rerun's pending item in place of `stored`; False when the item changed since it was read."""
        return self._write("put_item", takeover_request(item, stored, force=force))

    def record(self, pk: str, answer: ResultAnswer, *, execution: str, only_pending: bool = False) -> bool:
        """Finish the execution's own item; False when a newer upload's triage has taken it over."""
        return self._write(
            "update_item", record_request(pk, answer, execution=execution, only_pending=only_pending)
        )

    def fail_stuck(self, item: ResultItem, reason: str, *, stale_before: datetime, at: datetime) -> bool:
        """Mark a pending item whose run ended without recording failed (the StuckResults port); False
        when it was recorded, taken over or made pending again since it was read."""
        return self._write("update_item", stuck_request(item.pk, item.execution, reason,
                                                        stale_before=stale_before, at=at))

    def adopt(self, item: ResultItem, was: ResultItem) -> bool:
        """Replace `was` with `item` (the same upload, another answer: `gifcat correct` giving a person's
        answer to the results of the same content); False when `was` changed since it was read or is a
        person's own correction."""
        return self._write("put_item", adopt_request(item, was))

    def correct(self, pk: str, fields: dict[str, Any], *, object_seq: str, etag: str | None) -> bool:
        """A person's answer on the result of the upload that was checked; False when it changed since."""
        return self._write("update_item", correction_request(pk, fields, object_seq=object_seq, etag=etag))

    def get(self, pk: str) -> ResultItem | None:
        got = self._ddb.get_item(TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)
        return from_attribute_values(got["Item"]) if "Item" in got else None

    def scan(self) -> list[ResultItem]:
        return list(self.items())

    def items(self) -> Iterator[ResultItem]:
        """Every item, one Scan page (1 MB) at a time (the ResultSource port). An item that is not a
        gifcat result is left out, logged, and kept in `unreadable`: one foreign item does not stop
        a summary or an export over the table. Eventually consistent: a strongly
        consistent Scan reads the whole table at twice the price, for writes of the last second."""
        self.unreadable = []
        for page in self._ddb.get_paginator("scan").paginate(TableName=self.table_name):
            for raw in page["Items"]:
                yield from self._readable(raw)

    def newest(self, taxonomy_version: str, limit: int) -> Iterator[ResultItem]:
        """The results of this taxonomy version, the most recently written (`updated_at`) first, at most
        `limit` (the RecentResults port): a query of the index by taxonomy version, which holds the
        keys only, then the items themselves, a page at a time."""
        return self._by_version(BY_TAXONOMY_VERSION, taxonomy_version, limit)

    def corrected(self, taxonomy_version: str) -> Iterator[ResultItem]:
        """Every person's answer of this taxonomy version, the newest correction first (the
        RecentResults port): the sparse index of corrected results."""
        return self._by_version(CORRECTED_BY_TAXONOMY_VERSION, taxonomy_version, None)

    def rerunnable(
        self, status: Status, *, since: datetime | None = None, before: datetime | None = None
    ) -> Iterator[ResultItem]:
        """The results in this status (failed or pending) written since `since` and before `before`,
        the newest first: a query of the sparse index of such results, not a scan of the table. Its
        bounds compare stored times as text, to the second; callers check the exact times."""
        if status not in RERUNNABLE:
            raise ValueError(f"only {[s.value for s in RERUNNABLE]} results are indexed, not {status.value}")
        names = {"#rerunnable": "rerunnable"}
        values: dict[str, Any] = {":status": {"S": status.value}}
        condition = "#rerunnable = :status"
        # Whole seconds: a time written by Step Functions ends "...123Z", one of ours "+00:00".
        low = {"S": _second(since)} if since else None
        high = {"S": _second(before + timedelta(seconds=1))} if before else None
        if low or high:
            names["#at"] = "updated_at"
            condition += (" AND #at BETWEEN :low AND :high" if low and high
                          else " AND #at >= :low" if low else " AND #at < :high")
            values |= {k: v for k, v in ((":low", low), (":high", high)) if v}
        return self._by_index(RERUNNABLE_INDEX, condition, names, values, None)

    def same_content(self, content_key: str, limit: int | None) -> list[ResultItem]:
        """The results of this content, at most `limit` (None: all), in no set order (the ResultStore
        port): a query of the index by content, then the items themselves. A read that fails
        (throttled, refused) is SourceUnavailable."""
        try:
            # One page of `limit` keys: a GIF posted thousands of times has thousands in the index.
            return list(self._by_index(CONTENT_INDEX, "#content = :content", {"#content": "content_key"},
                                       {":content": {"S": content_key}}, limit, page_size=limit))
        except (ClientError, BotoCoreError) as exc:
            raise SourceUnavailable(f"the results table's index {CONTENT_INDEX}: {exc}") from exc

    def _by_version(self, index: str, taxonomy_version: str, limit: int | None) -> Iterator[ResultItem]:
        return self._by_index(index, "#version = :version", {"#version": "taxonomy_version"},
                              {":version": {"S": taxonomy_version}}, limit)

    def _by_index(
        self, index: str, condition: str, names: dict[str, str], values: dict[str, Any], limit: int | None,
        *, page_size: int | None = None,
    ) -> Iterator[ResultItem]:
        pages = self._ddb.get_paginator("query").paginate(
            TableName=self.table_name, IndexName=index, KeyConditionExpression=condition,
            ExpressionAttributeNames=names, ExpressionAttributeValues=values, ScanIndexForward=False,
            **({"Limit": page_size} if page_size else {}),
        )
        left = float("inf") if limit is None else limit
        for page in pages:
            pks = [raw["pk"]["S"] for raw in page["Items"]]
            if len(pks) > left:
                pks = pks[:int(left)]
            found = self.get_many(pks, consistent=False)
            for pk in pks:
                if pk in found:  # gone since the index was read: left out
                    yield found[pk]
            left -= len(pks)
            if left <= 0:
                return

    def get_many(self, pks: Iterable[str], *, consistent: bool = True) -> dict[str, ResultItem]:
        """The results of these objects by pk (a pk without one is absent), as written unless
        `consistent` is False. BatchGetItem, 100 keys a request: what a backfill reads after its run,
        however large the table around its prefix."""
        wanted = list(dict.fromkeys(pks))
        found: dict[str, ResultItem] = {}
        for start in range(0, len(wanted), 100):
            keys: list[dict[str, Any]] = [{"pk": {"S": pk}} for pk in wanted[start:start + 100]]
            pause = 0.05
            while keys:
                got = self._ddb.batch_get_item(
                    RequestItems={self.table_name: {"Keys": keys, "ConsistentRead": consistent}}
                )
                for raw in got.get("Responses", {}).get(self.table_name, []):
                    for item in self._readable(raw):
                        found[item.pk] = item
                # Throttled keys come back unprocessed: asked again, with a growing pause.
                keys = got.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if keys:
                    time.sleep(pause)
                    pause = min(pause * 2, 2.0)
        return found

    def _readable(self, raw: dict[str, Any]) -> Iterator[ResultItem]:
        try:
            yield from_attribute_values(raw)
        except UnreadableResult as exc:
            log.warning("left out of %s: %s", self.table_name, exc)
            self.unreadable.append(str(exc))
