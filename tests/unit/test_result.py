"""The result item: its documented fields, DynamoDB typing, and the write condition."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gifcat.config import Settings
from gifcat.domain.model import Candidate, Classification, GifMetadata, StageName, StageTrace, Status
from gifcat.domain.result import (
    NO_SEQUENCER,
    ObjectRef,
    classification_fields,
    put_request,
    record_request,
    result_item,
    takeover_request,
)

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
    assert set(item) >= DOCUMENTED
    assert item["pk"] == "s3://b/uploads/a b+c.gif"
    assert item["models"] == {"llm": "gpt-4o-mini"}
    assert item["prompt_version"] == "classify-v1"
    assert item["timings_ms"] == {"llm": 512.0}
    assert item["cost_usd"] == 0.00002


def test_failed_item_has_reason_and_no_category() -> None:
    failed = Classification(status=Status.SKIPPED, reason="not a GIF")
    item = result_item(REF, failed)
    assert item["status"] == "skipped" and item["reason"] == "not a GIF"
    assert "primary" not in item and "decided_by" not in item


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
    # A pending item always has a running execution: only a pending item of the same upload is rewritten.
    assert pending["ConditionExpression"].endswith("(#seq = :seq AND #status = :pending)")


def test_record_sets_the_answer_on_the_executions_own_item() -> None:
    failed = Classification(status=Status.FAILED, reason="llm: timed out")
    request = record_request(REF.pk, classification_fields(failed, execution="x-1"), execution="x-1")
    assert request["Key"] == {"pk": {"S": REF.pk}}
    assert request["ConditionExpression"] == "#execution = :execution"
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
    stored = {"object_seq": REF.object_seq, "sequencer": "0A"}
    forced = takeover_request(item, stored, force=True)
    assert forced["Item"]["object_seq"] == {"S": REF.object_seq}
    assert forced["ConditionExpression"] == "#seq = :seq"
    assert "#status IN" in takeover_request(item, stored, force=False)["ConditionExpression"]
    fresh = takeover_request(item, None, force=True)
    assert fresh["ConditionExpression"] == "attribute_not_exists(pk)"


def test_estimated_cost_counts_llm_lambda_and_step_functions(settings: Settings) -> None:
    item = result_item(REF, classified(), prices=settings.prices)
    cost = item["cost"]
    assert cost["llm_usd"] == 0.00002
    # 512 ms of the 256 MB escalate function, one request, and one execution's transitions.
    lam = settings.prices.lambda_
    assert cost["lambda_usd"] == pytest.approx(0.512 * 0.25 * lam.gb_second_usd + lam.request_usd)
    sfn = settings.prices.stepfunctions
    assert cost["stepfunctions_usd"] == pytest.approx(sfn.transitions_per_execution * sfn.transition_usd)
    assert item["cost_usd"] == pytest.approx(cost["llm_usd"] + cost["lambda_usd"] + cost["stepfunctions_usd"])
