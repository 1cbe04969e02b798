"""The result item: its documented fields, DynamoDB typing, and the write condition."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gifcat.config import Settings
from gifcat.model import Candidate, Classification, GifMetadata, StageName, StageTrace, Status
from gifcat.result import ObjectRef, put_request, result_item

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


def test_object_seq_sorts_by_time_then_sequencer() -> None:
    later = REF.model_copy(update={"last_modified": datetime(2026, 11, 28, 0, 0, 1, tzinfo=UTC)})
    same_second = REF.model_copy(update={"sequencer": "0B"})
    assert REF.object_seq < same_second.object_seq < later.object_seq


def test_condition_protects_finished_results_unless_forced() -> None:
    normal = put_request(result_item(REF, classified()))["ConditionExpression"]
    forced = put_request(result_item(REF, classified()), force=True)["ConditionExpression"]
    assert "#status IN (:pending, :failed, :undecided) OR #etag <> :etag" in normal
    assert "#seq < :seq" in normal and "#seq < :seq" in forced
    assert "#status" not in forced


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
