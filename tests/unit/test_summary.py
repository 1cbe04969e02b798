"""`gifcat summary`'s arithmetic (gifcat_tooling.operations.summary): per deciding stage, what a person
changed of its answers, what reached the LLM, the cost by part, what was not classified and why, and what a
taxonomy change left behind. The command against the embedded AWS is tested in
tests/integration/test_corrections.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gifcat.application.sweep import STUCK_AFTER_S
from gifcat.domain.model import StageName, StageTrace, Status
from gifcat.domain.result import MachineAnswer, ResultItem
from gifcat_tooling.local.template import Stack, load_template
from gifcat_tooling.operations.summary import reason_kind, render_text, summarise
from tests.conftest import ROOT

AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
VERSION = "2026-12-01.1"


def item(
    key: str,
    *,
    status: Status = Status.CLASSIFIED,
    decided_by: str | None = None,
    primary: str | None = None,
    confidence: float = 0.0,
    cost: tuple[float, float, float] = (0.0, 2e-6, 0.0),  # llm, lambda, step functions
    ms: dict[str, float] | None = None,
    stages: tuple[StageName, ...] = (),
    llm_error: str | None = None,
    reason: str | None = None,
    version: str = VERSION,
    corrected_from: MachineAnswer | None = None,
    updated_at: datetime = AT,
    reused_from: str | None = None,
) -> ResultItem:
    llm, lam, sfn = cost
    return ResultItem(
        pk=f"s3://b/{key}", bucket="b", key=key, object_seq="-", status=status, reason=reason,
        primary=primary, labels=[primary] if primary else [], decided_by=decided_by,  # type: ignore[arg-type]
        confidence=confidence, taxonomy_version=version, timings_ms=ms or {},
        cost_usd=llm + lam + sfn,
        cost={"llm_usd": llm, "lambda_usd": lam, "stepfunctions_usd": sfn, "total_usd": llm + lam + sfn},
        stages=[StageTrace(stage=s, decided=False, elapsed_ms=1.0,
                           error=llm_error if s is StageName.LLM else None) for s in stages],
        corrected_from=corrected_from, updated_at=updated_at, reused_from=reused_from,
    )


TABLE = [
    item("a.gif", decided_by="tags", primary="food", confidence=0.99, ms={"tags": 2.0},
         stages=(StageName.TAGS,)),
    item("b.gif", decided_by="tags", primary="love", confidence=0.97, ms={"tags": 4.0},
         stages=(StageName.TAGS,)),
    item("c.gif", decided_by="embedding", primary="animals", confidence=0.9, cost=(0.0, 3e-5, 6e-6),
         ms={"tags": 1.0, "embedding": 40.0}, stages=(StageName.TAGS, StageName.EMBEDDING)),
    item("d.gif", decided_by="llm", primary="sports", confidence=0.8, cost=(2e-4, 5e-5, 8e-6),
         ms={"tags": 1.0, "embedding": 40.0, "llm": 900.0},
         stages=(StageName.TAGS, StageName.EMBEDDING, StageName.LLM)),
    # A person changed the embedding stage's answer, and confirmed the tag stage's.
    item("e.gif", decided_by="human", primary="sports", confidence=1.0, cost=(0.0, 3e-5, 6e-6),
         stages=(StageName.TAGS, StageName.EMBEDDING),
         corrected_from=MachineAnswer(decided_by="embedding", primary="animals")),  # type: ignore[arg-type]
    item("f.gif", decided_by="human", primary="food", confidence=1.0, stages=(StageName.TAGS,),
         corrected_from=MachineAnswer(decided_by="tags", primary="food")),  # type: ignore[arg-type]
    # The LLM step ran and failed; so did two uploads' inputs, and one execution never recorded.
    item("g.gif", status=Status.FAILED, reason="LLM step failed: 429 Too Many Requests",
         stages=(StageName.TAGS, StageName.EMBEDDING, StageName.LLM), llm_error="RateLimitError"),
    item("h.gif", status=Status.SKIPPED, reason="not a GIF: the object starts with b'this i'"),
    item("i.gif", status=Status.SKIPPED, reason="empty object (0 bytes)"),
    item("j.gif", status=Status.SKIPPED, reason="empty object (0 bytes)"),
    item("k.gif", status=Status.FAILED,
         reason="execution 20261205-abc123 ended without recording a result; rerun to retry"),
    item("l.gif", status=Status.FAILED,
         reason="execution 20261205-def456 ended without recording a result; rerun to retry"),
    # Two uploads in the state machine: one for 2 minutes, one for 20 (longer than any run lasts).
    item("m.gif", status=Status.PENDING, updated_at=AT - timedelta(minutes=20)),
    item("o.gif", status=Status.PENDING, updated_at=AT - timedelta(minutes=2)),
    item("n.gif", decided_by="tags", primary="cute", confidence=0.95, ms={"tags": 3.0},
         stages=(StageName.TAGS,), version="2026-11-01.1"),
]


def test_each_stage_is_counted_with_what_people_changed_of_its_answers() -> None:
    summary = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT)
    rows = {row.decided_by: row for row in summary.deciders}
    assert list(rows) == ["tags", "rules", "embedding", "llm", "human", "reused"]
    assert summary.classified == 7
    assert [(r.items, r.checked, r.changed) for r in rows.values()] == [
        (3, 1, 0), (0, 0, 0), (1, 1, 1), (1, 0, 0), (2, 0, 0), (0, 0, 0)
    ]
    assert rows["tags"].share == pytest.approx(3 / 7, abs=1e-4)
    assert rows["tags"].mean_confidence == pytest.approx((0.99 + 0.97 + 0.95) / 3, abs=1e-4)
    assert rows["tags"].p50_ms == 3.0
    assert rows["llm"].p50_ms == 941.0  # an item's stages together
    assert rows["rules"].mean_confidence is None and rows["rules"].p50_ms is None


def test_answers_taken_from_an_upload_of_the_same_content_have_their_own_row() -> None:
    copies = [item(f"copy-{i}.gif", decided_by="llm", primary="sports", confidence=0.8, ms={"tags": 1.0},
                   stages=(StageName.TAGS,), reused_from="s3://b/d.gif")
              .model_copy(update={"reused_cost_usd": 2.58e-4}) for i in range(3)]
    summary = summarise([*TABLE, *copies], table="results", taxonomy_version=VERSION, at=AT)
    rows = {row.decided_by: row for row in summary.deciders}
    # The LLM's row is what the LLM decided (and cost): the copies cost triage's Lambda only.
    assert (rows["llm"].items, rows["reused"].items) == (1, 3)
    assert rows["reused"].cost_per_1000_usd == pytest.approx(2e-6 * 1000, rel=1e-3)
    assert rows["reused"].share == pytest.approx(3 / 10, abs=1e-4)
    assert summary.categories["sports"] == 5
    # What deciding the results they took had cost: what taking them saved.
    assert (summary.reused, summary.reuse_saved_usd) == (3, pytest.approx(3 * 2.58e-4))
    assert ("uploads seen before: 3 took another upload's result, saving the $0.000774 deciding those "
            "results had cost") in render_text(summary)
    assert "uploads seen before" not in render_text(summarise(TABLE, table="results",
                                                              taxonomy_version=VERSION, at=AT))


def test_cost_is_summed_by_part_and_priced_per_thousand_items() -> None:
    summary = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT)
    llm = 2e-4
    lam = 3e-5 * 2 + 5e-5 + 2e-6 * 12
    sfn = 6e-6 * 2 + 8e-6
    assert summary.cost_usd["llm_usd"] == pytest.approx(llm)
    assert summary.cost_usd["lambda_usd"] == pytest.approx(lam)
    assert summary.cost_usd["stepfunctions_usd"] == pytest.approx(sfn)
    assert summary.cost_usd["total_usd"] == pytest.approx(llm + lam + sfn)
    assert summary.cost_per_1000_usd == pytest.approx((llm + lam + sfn) / len(TABLE) * 1000, rel=1e-4)
    rows = {row.decided_by: row for row in summary.deciders}
    assert rows["llm"].cost_per_1000_usd == pytest.approx((2e-4 + 5e-5 + 8e-6) * 1000, rel=1e-3)
    assert rows["tags"].cost_per_1000_usd == pytest.approx(2e-6 * 1000, rel=1e-3)
    assert (summary.reached_llm, summary.llm_errors) == (2, 1)


def test_a_deleted_objects_tombstone_is_counted_apart_and_prices_nothing() -> None:
    gone = item("z.gif", status=Status.DELETED, reason="object deleted (ObjectRemoved:Delete)",
                cost=(0, 0, 0))
    summary = summarise([*TABLE, gone, gone], table="results", taxonomy_version=VERSION, at=AT)
    before = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT)
    assert (summary.items, summary.statuses["deleted"]) == (len(TABLE) + 2, 2)
    assert summary.cost_per_1000_usd == before.cost_per_1000_usd  # per object still there
    assert summary.not_classified == before.not_classified  # a deletion is no failure to look into
    assert "deleted 2" in render_text(summary)


def test_the_classified_items_are_counted_by_category() -> None:
    summary = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT)
    # a person's answer counts as the category they gave (e.gif: sports, not the machine's animals)
    assert summary.categories == {"food": 2, "sports": 2, "animals": 1, "cute": 1, "love": 1}
    assert sum(summary.categories.values()) == summary.classified
    text = render_text(summary)
    assert "categories: food 2, sports 2, animals 1, cute 1, love 1" in text


def test_what_was_not_classified_is_counted_by_kind_of_reason() -> None:
    summary = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT)
    assert summary.not_classified == {
        "execution # ended without recording a result": 2,
        "empty object": 2,
        "LLM step failed": 1,
        "not a GIF": 1,
    }
    assert (summary.pending, summary.oldest_pending_s) == (2, 1200.0)
    assert (summary.stuck_pending, summary.stuck_after_s) == (1, STUCK_AFTER_S)  # m.gif
    later = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT + timedelta(minutes=10))
    assert later.stuck_pending == 2
    assert summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT,
                     stuck_after_s=30 * 60).stuck_pending == 0
    assert summary.other_taxonomy == 1  # n.gif, made before the taxonomy changed


def test_reason_kind_keeps_the_first_clause_without_its_particulars() -> None:
    parse = "sidecar JSON does not parse"
    assert reason_kind(f"{parse}: Expecting property name") == parse
    assert reason_kind("object too large (31457280 bytes > 20 MB)") == "object too large"
    assert reason_kind(None) == reason_kind("") == "no reason given"


def test_the_text_shows_every_figure_a_team_tunes_by() -> None:
    text = render_text(summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT))
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert lines["embedding"].split()[1:3] == ["1", "14.3%"]
    assert lines["llm"].split()[1:] == ["1", "14.3%", "0.80", "0.2580", "941.0"]
    assert "a person checked 2 machine answers and changed 1: tags 0 of 1, embedding 1 of 1" in text
    assert "reached the LLM: 2 of 15 items (13.3%); LLM calls that failed: 1" in text
    assert ("not classified: empty object 2, execution # ended without recording a result 2, "
            "LLM step failed 1, not a GIF 1") in text
    assert "pending: 2, the oldest for 1200 s" in text
    assert "pending for over 600 s, longer than a run lasts: 1 (their runs ended without recording;" in text
    assert f"made with another taxonomy than {VERSION}: 1" in text


def test_an_empty_table_says_so() -> None:
    summary = summarise([], table="results", taxonomy_version=VERSION, at=AT)
    assert (summary.items, summary.cost_per_1000_usd, summary.classified) == (0, 0.0, 0)
    assert render_text(summary) == "results table results: no items yet"


def test_the_items_are_read_once_as_they_come() -> None:
    # A Scan's pages arrive as a generator: one pass, nothing kept but the sums.
    once = summarise((i for i in TABLE), table="results", taxonomy_version=VERSION, at=AT)
    assert once == summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT)


def test_the_readme_lists_the_json_keys_the_command_prints() -> None:
    # README "What the cascade did with the uploads" spells out `--json`'s keys: they are the model's.
    import re

    from gifcat_tooling.operations.summary import DeciderRow, TableSummary

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = readme[readme.index("`--json` prints the same as one object:"):]
    listed = listed[:listed.index("`.")]
    keys = re.findall(r'"(\w+)"', listed)
    start, end = keys.index("decided_by"), keys.index("changed") + 1  # the rows' keys, in "deciders"
    row_keys, top_keys = keys[start:end], keys[:start] + keys[end:]
    assert top_keys == list(TableSummary.model_fields)
    assert row_keys == list(DeciderRow.model_fields)


def test_a_pending_item_counts_as_stuck_only_after_any_run_would_have_ended() -> None:
    # The classify machine (uploads and console reruns) stops a run at its TimeoutSeconds; a backfill
    # child has no machine timeout, and its steps' function timeouts bound it. Twice the longer of the two.
    definition = json.loads((ROOT / "statemachine" / "classify.asl.json").read_text(encoding="utf-8"))
    stack = Stack(load_template(ROOT / "template.yaml"), ROOT)
    steps = ("TriageStepFunction", "EmbedFunction", "EscalateFunction")
    child_s = sum(int(stack.function_properties(f)["Timeout"]) for f in steps)
    assert 2 * max(definition["TimeoutSeconds"], child_s) <= STUCK_AFTER_S


def test_since_counts_only_the_items_written_from_then_on() -> None:
    since = AT - timedelta(minutes=5)  # m.gif has been pending for 20 minutes: written before
    recent = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT, since=since)
    everything = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT)
    assert recent.items == everything.items - 1 and recent.since == since
    assert (recent.pending, recent.stuck_pending) == (1, 0)
    assert recent.deciders == everything.deciders
    text = render_text(recent)
    assert text.startswith("results table results since 2026-12-05T11:55:00+00:00: 14 items (")
    later = summarise(TABLE, table="results", taxonomy_version=VERSION, at=AT,
                      since=AT + timedelta(seconds=1))
    assert render_text(later) == "results table results: no items since 2026-12-05T12:00:01+00:00"
