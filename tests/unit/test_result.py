"""The result item: its documented fields; and as the DynamoDB adapter writes it (types, conditions)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gifcat.adapters.dynamodb import (
    CLAIM_LEASE_S,
    correction_request,
    from_attribute_values,
    put_request,
    record_request,
    stuck_request,
    takeover_request,
    to_attribute_values,
)
from gifcat.config import Settings
from gifcat.domain.costs import orchestration_usd
from gifcat.domain.model import Candidate, Classification, GifMetadata, StageName, StageTrace, Status
from gifcat.domain.result import HUMAN, NO_SEQUENCER, ObjectRef, classification_fields, result_item

ROOT = Path(__file__).resolve().parents[2]
REF = ObjectRef(
    bucket="b",
    key="uploads/a b+c.gif",
    etag="e1",
    size=10,
    last_modified=datetime(2026, 11, 28, tzinfo=UTC),
    sequencer="0A",
)

DOCUMENTED = {
    "pk",
    "bucket",
    "key",
    "status",
    "primary",
    "labels",
    "scores",
    "decided_by",
    "confidence",
    "evidence",
    "taxonomy_version",
    "models",
    "timings_ms",
    "cost_usd",
    "stages",
    "updated_at",
    "object_seq",
    "schema_version",
}


def classified() -> Classification:
    trace = StageTrace(
        stage=StageName.LLM,
        decided=True,
        elapsed_ms=512.0,
        cost_usd=0.00002,
        candidates=[Candidate(category="funny", score=0.8)],
        model="gpt-4o-mini",
        prompt_version="classify-v1",
        usage={"prompt_tokens": 300, "completion_tokens": 20},
    )
    return Classification(
        status=Status.CLASSIFIED,
        primary="funny",
        labels=["funny"],
        scores={"funny": 0.8},
        decided_by=StageName.LLM,
        confidence=0.8,
        evidence=["llm: lol"],
        taxonomy_version="t1",
        stages=[trace],
    )


def test_item_holds_every_documented_field() -> None:
    item = result_item(REF, classified(), metadata=GifMetadata(title="T", tags=("a",)))
    assert set(item.stored()) >= DOCUMENTED
    assert item.pk == "s3://b/uploads/a b+c.gif"
    assert item.models == {"llm": "gpt-4o-mini"}
    assert item.prompt_version == "classify-v1"
    assert item.timings_ms == {"llm": 512.0}
    assert item.cost_usd == 0.00002
    assert item.stored()["updated_at"] == item.updated_at.isoformat()  # stored as isoformat writes it


def test_failed_item_has_reason_and_no_category() -> None:
    failed = Classification(status=Status.SKIPPED, reason="not a GIF")
    item = result_item(REF, failed)
    assert item.status is Status.SKIPPED and item.reason == "not a GIF"
    assert "primary" not in item.stored() and "decided_by" not in item.stored()


def test_a_stored_item_reads_back_as_the_same_result() -> None:
    item = result_item(
        REF, classified(), metadata=GifMetadata(title="T", tags=("a",)), execution="x-1", prices=None
    )
    raw = put_request(item)["Item"]  # DynamoDB JSON, numbers as strings
    assert from_attribute_values(raw) == item


def test_attribute_values_are_dynamodb_typed() -> None:
    request = put_request(result_item(REF, classified()))
    item = request["Item"]
    assert item["pk"] == {"S": "s3://b/uploads/a b+c.gif"}
    assert item["confidence"] == {"N": str(Decimal("0.8"))}
    assert item["labels"] == {"L": [{"S": "funny"}]}


def test_object_seq_is_the_event_sequencer_compared_as_s3_says() -> None:
    # S3: right-pad the shorter sequencer with zeros, then compare as strings ("0A" = "0A00" < "0B").
    later_second = REF.model_copy(update={"last_modified": datetime(2026, 11, 28, 0, 0, 5, tzinfo=UTC)})
    shorter = REF.model_copy(update={"sequencer": "0A00"})
    longer_later = REF.model_copy(update={"sequencer": "0a01"})
    assert REF.object_seq == shorter.object_seq == later_second.object_seq
    assert REF.object_seq < longer_later.object_seq
    no_event = REF.model_copy(update={"sequencer": None})
    assert no_event.object_seq == NO_SEQUENCER and no_event.object_seq < REF.object_seq


def test_triage_writes_replace_older_uploads_and_their_own_unfinished_item() -> None:
    result = put_request(result_item(REF, classified()))
    pending = put_request(result_item(REF, classified()), kind="pending")
    assert result["ConditionExpression"] == (
        "attribute_not_exists(pk) OR #seq < :seq"
        " OR (#seq = :seq AND #status IN (:pending, :failed, :undecided))"
    )
    # A pending item of the same upload is rewritten (and started again) only while no run holds it.
    assert pending["ConditionExpression"].endswith(
        "(#seq = :seq AND #status = :pending AND (attribute_not_exists(#claimed) OR #claimed < :stale))"
    )
    at = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
    stale = put_request(result_item(REF, classified()), kind="pending", at=at)["ExpressionAttributeValues"]
    # As Step Functions writes $$.State.EnteredTime, CLAIM_LEASE_S earlier.
    assert stale[":stale"] == {"S": "2026-11-28T09:54:00.123Z"} and CLAIM_LEASE_S == 360


def test_record_sets_the_answer_on_the_executions_own_item() -> None:
    failed = Classification(status=Status.FAILED, reason="llm: timed out")
    request = record_request(REF.pk, classification_fields(failed, execution="x-1"), execution="x-1")
    assert request["Key"] == {"pk": {"S": REF.pk}}
    decided_by = next(k for k, v in request["ExpressionAttributeNames"].items() if v == "decided_by")
    assert request["ConditionExpression"] == (
        f"#execution = :execution AND (attribute_not_exists({decided_by}) OR {decided_by} <> :human)"
    )
    names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
    sets, _, removes = request["UpdateExpression"].removeprefix("SET ").partition(" REMOVE ")
    set_fields = {names[part.split(" = ")[0]] for part in sets.split(", ")}
    removed = {names[n] for n in removes.split(", ")}
    assert {"status", "reason", "updated_at"} <= set_fields and "execution" not in set_fields
    assert {"primary", "decided_by"} <= removed  # an earlier answer's category does not linger
    assert not set_fields & {"title", "tags", "description", "etag", "object_seq"}  # triage wrote those
    assert values[":execution"] == {"S": "x-1"}
    used = request["UpdateExpression"] + request["ConditionExpression"]
    assert all(name in used for name in names) and all(value in used for value in values)


def test_rerun_keeps_the_stored_order() -> None:
    item = result_item(REF.model_copy(update={"sequencer": None}), classified(), execution="console-1")
    stored = result_item(REF, classified())
    forced = takeover_request(item, stored, force=True)
    assert forced["Item"]["object_seq"] == {"S": REF.object_seq}
    # Force takes over a finished item, never a person's answer.
    assert forced["ConditionExpression"] == (
        "#seq = :seq AND (attribute_not_exists(#decided_by) OR #decided_by <> :human)"
    )
    assert forced["ExpressionAttributeValues"][":human"] == {"S": "human"}
    assert "#status IN" in takeover_request(item, stored, force=False)["ConditionExpression"]
    fresh = takeover_request(item, None, force=True)
    assert fresh["ConditionExpression"] == "attribute_not_exists(pk)"


def test_estimated_cost_counts_llm_lambda_and_the_state_machine(settings: Settings) -> None:
    item = result_item(REF, classified(), prices=settings.prices)
    cost = item.cost
    assert cost is not None
    assert cost["llm_usd"] == 0.00002
    # 512 ms of the escalate function at its memory, one request, and one Express run
    # (tests/unit/test_costs.py; the memory is the template's, tests/integration/test_template.py).
    lam = settings.prices.lambda_
    gb = lam.memory_mb["llm"] / 1024
    assert cost["lambda_usd"] == pytest.approx(0.512 * gb * lam.gb_second_usd + lam.request_usd)
    run = orchestration_usd(classified().stages, settings.prices.stepfunctions)
    assert cost["stepfunctions_usd"] == pytest.approx(run)
    assert 0 < cost["stepfunctions_usd"] < 0.00002
    assert item.cost_usd == pytest.approx(cost["llm_usd"] + cost["lambda_usd"] + cost["stepfunctions_usd"])


def test_correction_writes_only_over_the_upload_that_was_checked() -> None:
    request = correction_request(
        REF.pk, {"primary": "funny", "decided_by": "human"}, object_seq=REF.object_seq, etag="abc"
    )
    assert request["ConditionExpression"] == "attribute_exists(pk) AND #seq = :seq AND #etag = :etag"
    assert request["ExpressionAttributeValues"][":seq"] == {"S": REF.object_seq}
    # A run still going for this upload no longer owns the item: its Record cannot write.
    assert request["UpdateExpression"].endswith(
        " REMOVE #execution, #run, #claimed_at, #reason, #rerunnable, #reused_from, #replaces")
    names = request["ExpressionAttributeNames"]
    assert {names[n] for n in ("#f0", "#f1")} == {"primary", "decided_by"}
    no_etag = correction_request(REF.pk, {"primary": "funny"}, object_seq="-", etag=None)
    assert no_etag["ConditionExpression"].endswith("attribute_not_exists(#etag)")
    assert ":etag" not in no_etag["ExpressionAttributeValues"]


def test_a_corrected_item_reads_back_as_the_result_model() -> None:
    """What `gifcat correct` sets on a stored item (correction_request) is part of the result model: the
    table's get and scan read a person's answer, who gave it and the machine's answer it replaced."""
    stored = put_request(result_item(REF, classified(), execution="x-1"))["Item"]
    fields = {
        "status": "classified", "primary": "love", "labels": ["love"], "decided_by": HUMAN, "confidence": 1.0,
        "corrected_by": "ana", "corrected_at": "2026-11-29T10:00:00+00:00",
        "corrected_from": {
            "status": "classified", "primary": "funny", "decided_by": "tags", "confidence": 0.8
        },
    }
    request = correction_request(REF.pk, fields, object_seq=REF.object_seq, etag="e1")
    names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
    corrected = {k: v for k, v in stored.items() if k not in ("execution", "reason")}
    corrected |= {names[f"#f{i}"]: values[f":f{i}"] for i in range(len(fields))}
    item = from_attribute_values(corrected)
    assert (item.decided_by, item.primary, item.corrected_by) == ("human", "love", "ana")
    assert item.corrected_at == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert item.corrected_from is not None and item.corrected_from.decided_by is StageName.TAGS
    assert item.corrected_from.confidence == 0.8 and item.execution is None
    assert to_attribute_values(item.stored()) == corrected  # and writes back as it was read


def _placeholders_in_use(request: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The names and values a request declares and its expressions do not use, and the reverse."""
    text = " ".join(request.get(k, "") for k in ("UpdateExpression", "ConditionExpression"))
    used = set(re.findall(r"[#:][A-Za-z0-9_]+", text))
    declared = {k.removesuffix(".$") for k in (*request.get("ExpressionAttributeNames", {}),
                                               *request.get("ExpressionAttributeValues", {}))}
    return declared - used, used - declared


def _every_request() -> Iterator[tuple[str, dict[str, Any]]]:
    item = result_item(REF, classified(), execution="x-1")
    for kind in ("result", "pending"):
        yield f"put {kind}", put_request(item, kind=kind)
    for stored, force in itertools.product((None, item), (True, False)):
        yield f"take over {stored is not None} {force}", takeover_request(item, stored, force=force)
    failed = Classification(status=Status.FAILED, reason="boom")
    for classification, only_pending in itertools.product((classified(), failed), (True, False)):
        answer = classification_fields(classification, execution="x-1")
        yield f"record {classification.status} {only_pending}", record_request(
            REF.pk, answer, execution="x-1", only_pending=only_pending
        )
    for etag in ("abc", None):
        yield f"correct {etag}", correction_request(REF.pk, {"primary": "funny"}, object_seq="-", etag=etag)
    stale, at = datetime(2026, 12, 5, 9, tzinfo=UTC), datetime(2026, 12, 5, 9, 10, tzinfo=UTC)
    for execution in ("x-1", None):
        yield f"fail stuck {execution}", stuck_request(REF.pk, execution, "timeout", stale_before=stale,
                                                       at=at)
    for machine in ("classify", "backfill"):
        definition = json.loads((ROOT / f"statemachine/{machine}.asl.json").read_text())
        states = dict(definition["States"])
        for state in list(states.values()):
            states |= state.get("ItemProcessor", {}).get("States", {})
        for name, state in states.items():
            if ":::dynamodb:" in state.get("Resource", "") and "UpdateExpression" in state["Parameters"]:
                yield f"{machine} {name}", state["Parameters"]


def test_every_request_declares_exactly_the_placeholders_it_uses() -> None:
    # DynamoDB refuses a request that declares a name or value its expressions do not use
    # (ValidationException). moto checks that for UpdateItem but not for PutItem's values, so a
    # placeholder left behind when a clause is dropped would pass every local test and fail in AWS.
    requests = dict(_every_request())
    assert len(requests) >= 16
    for label, request in requests.items():
        assert _placeholders_in_use(request) == (set(), set()), label
