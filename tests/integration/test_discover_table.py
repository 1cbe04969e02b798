"""`gifcat discover --table`: the items come from the results table of the stack deployed on the embedded
AWS, read through the DynamoDB adapter, as `gifcat export` reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gifcat.adapters.dynamodb import ResultsTable
from gifcat.domain.model import Classification, GifMetadata, StageName, Status
from gifcat.domain.result import ObjectRef, deleted_item, result_item
from gifcat_tooling.cli import main
from gifcat_tooling.local.aws import EmbeddedAws
from tests.integration.conftest import settled

# Two topics the taxonomy knows (food, sports) and one it does not (tax paperwork), three uploads each.
UPLOADS = {
    "pizza.gif": ("Pizza", ("pizza", "cheese"), "A slice of pizza with melting cheese."),
    "tacos.gif": ("Taco Tuesday", ("tacos", "food"), "Someone bites into a crunchy taco."),
    "ramen.gif": ("Ramen", ("noodles", "ramen"), "A bowl of ramen noodles, steaming."),
    "goal.gif": ("Goal!", ("soccer", "goal"), "The striker scores a goal in the last minute."),
    "dunk.gif": ("Dunk", ("basketball", "nba"), "A player dunks the basketball."),
    "tennis.gif": ("Ace", ("tennis", "serve"), "A tennis player serves an ace at Wimbledon."),
    "taxes.gif": ("Tax return", ("taxes", "irs"), "Filling in a tax return form, receipts everywhere."),
    "audit.gif": ("Audit", ("tax audit", "accountant"), "An accountant checks tax receipts for an audit."),
    "deduct.gif": ("Deductions", ("tax", "deductions"), "Listing tax deductions on a spreadsheet."),
    "blank.gif": ("", (), ""),  # no text: skipped with a reason, not lost
}


def pk(key: str) -> str:
    return f"s3://uploads/{key}"


@pytest.fixture(scope="module")
def table(aws: EmbeddedAws) -> str:
    name = aws.outputs["ResultsTableName"]
    results = ResultsTable(name, aws.client("dynamodb"))
    for key, (title, tags, description) in UPLOADS.items():
        ref = ObjectRef(bucket="uploads", key=key, etag="e", sequencer="0A",
                        last_modified=datetime(2026, 1, 1, tzinfo=UTC))
        metadata = GifMetadata(title=title, tags=tags, description=description)
        decided = Classification(status=Status.CLASSIFIED, primary="food", decided_by=StageName.LLM)
        assert results.put(result_item(ref, decided, metadata=metadata, execution="x"))
    # A deleted object's result is no item to discover: left out, and said so once, not per object.
    for key in ("gone-1.gif", "gone-2.gif"):
        gone = ObjectRef(bucket="uploads", key=key, sequencer="0B")
        assert results.put(deleted_item(gone, "object deleted (ObjectRemoved:Delete)", keep_days=30))
    # A repost took the result of pizza.gif: the same text is one item, not two.
    pizza = results.get(pk("pizza.gif"))
    assert pizza is not None
    repost = pizza.model_copy(update={"pk": pk("pizza again.gif"), "key": "pizza again.gif",
                                      "reused_from": pizza.pk})
    assert results.put(repost)
    settled(aws)  # the writes told on the bus before the command's output is read
    return name


def test_discover_reads_the_results_table(table: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["discover", "--table", table, "--json", "--clusters", "3"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    members = [m for c in out["clusters"] for m in c["members"]]
    assert sorted(members) == sorted(pk(k) for k in UPLOADS if k != "blank.gif")  # every item with text, once
    assert out["skipped"] == [{"id": pk("blank.gif"), "reason": "no title, tags or description to embed"}]
    assert f"skipped {pk('blank.gif')}" in captured.err
    assert "left out 2 results of deleted objects" in captured.err and "gone-1" not in captured.err
    assert "left out 1 results that took another upload's (the same bytes and text)" in captured.err
    groups = {frozenset(c["members"]): c for c in out["clusters"]}
    taxes = groups[frozenset(pk(k) for k in ("taxes.gif", "audit.gif", "deduct.gif"))]
    assert "tax" in taxes["terms"]
    food = groups[frozenset(pk(k) for k in ("pizza.gif", "tacos.gif", "ramen.gif"))]
    sports = groups[frozenset(pk(k) for k in ("goal.gif", "dunk.gif", "tennis.gif"))]
    assert (food["nearest_category"], sports["nearest_category"]) == ("food", "sports")
    # the topic no category describes is the least like the taxonomy
    assert taxes["similarity"] < min(food["similarity"], sports["similarity"])
