"""`gifcat learn` on the embedded AWS: results in the stack's table, the artefact published to the stack's
artefacts bucket, the real CLI entry, MiniLM.

The first run has no bundled memory (as `gifcat stream` starts empty): the results are dev records, which
the bundled memory holds, so against it every held-out example would be in-sample and none could judge
(tests/unit/test_learn.py covers that and the comparisons)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gifcat.adapters.artefact_store import S3ArtefactStore
from gifcat.adapters.dynamodb import ResultsTable
from gifcat.config import Settings
from gifcat.domain.learning import held_out
from gifcat.domain.memory import Learned
from gifcat.domain.model import Status
from gifcat.domain.records import LabelledRecord, read_records
from gifcat.domain.result import ResultItem
from gifcat.domain.taxonomy import Taxonomy
from gifcat_tooling.cli import main
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import upload
from tests.conftest import DEV_DATA
from tests.integration.conftest import emitted_metrics, settled, wait_item

RECORDS = 90  # MiniLM embeds each about six times in a run (five folds and the artefact): keep it lean
AT = datetime(2026, 12, 2, tzinfo=UTC)


def answer(record: LabelledRecord, taxonomy: Taxonomy, **extra: object) -> ResultItem:
    """A person's answer for the upload `record` describes, as `gifcat correct` leaves the item."""
    key = f"uploads/{record.id}.gif"
    fields: dict[str, object] = {
        "pk": f"s3://uploads/{key}", "bucket": "uploads", "key": key, "object_seq": "-",
        "status": Status.CLASSIFIED, "primary": record.primary, "labels": record.labels,
        "decided_by": "human", "confidence": 1.0, "taxonomy_version": taxonomy.version,
        "title": record.title or None, "tags": record.tags or None, "description": record.description or None,
        "updated_at": AT, **extra,
    }
    return ResultItem.model_validate(fields)


def learn(aws: EmbeddedAws, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    settled(aws)  # the results written told on the bus before the command's output is read
    capsys.readouterr()
    code = main(["learn", "--endpoint", aws.endpoint, "--json", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if code == 0 else {})


def test_learn_publishes_from_the_results_then_keeps_it_when_nothing_is_new(
    aws: EmbeddedAws, settings: Settings, taxonomy: Taxonomy, capsys: pytest.CaptureFixture[str],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gif: Callable[..., bytes],
) -> None:
    table = ResultsTable(aws.outputs["ResultsTableName"], aws.client("dynamodb"))
    records = read_records(DEV_DATA)[:RECORDS]
    for record in records:
        assert table.put(answer(record, taxonomy))
    # what is never learned: another taxonomy's answer, an upload still in the state machine
    assert table.put(answer(LabelledRecord(id="old", title="cat", labels=["animals"], primary="animals"),
                            taxonomy, taxonomy_version="older"))
    assert table.put(answer(LabelledRecord(id="busy", title="cat", labels=["animals"]), taxonomy,
                            status=Status.PENDING, primary=None, labels=[], decided_by=None))

    with monkeypatch.context() as env:
        env.setenv("GIFCAT_OVERRIDES", json.dumps({"stages": {"embedding": {"labelled": None}}}))
        code, report = learn(aws, capsys)
    assert code == 0
    assert report["outcome"] == "published", report["reason"]
    assert report["version"] == "v000001" and report["reason"] == "no current artefact to compare with"
    # Another taxonomy's answer is not even read (the job queries the index by taxonomy version).
    assert report["skipped"] == {"unfinished": 1} and report["items"] == len(records) + 1
    assert report["examples"]["human"] == len(records) == report["examples"]["total"]
    assert report["examples"]["train"] >= report["examples"]["total"] - report["examples"]["held_out"]
    assert set(report["scorecards"]) == {"new"} and report["scorecards"]["new"]["n"] > 0

    store = S3ArtefactStore(f"s3://{aws.outputs['ArtefactsBucketName']}/embedding", aws.s3)
    current = store.current()
    assert current is not None and current.version == "v000001"
    keys = {o["Key"] for o in aws.s3.list_objects_v2(Bucket=store.bucket)["Contents"]}
    assert {"embedding/current.json", "embedding/versions/v000001/memory.npz",
            "embedding/versions/v000001/manifest.json"} <= keys
    manifest = current.manifest
    learned = Learned.load(store.fetch("v000001", tmp_path))
    assert manifest.encoder == learned.encoder and manifest.encoder.startswith("minilm")
    assert manifest.taxonomy_version == taxonomy.version == learned.taxonomy_version
    assert manifest.parent is None  # it replaced the bundled memory
    assert 0.0 <= manifest.thresholds["embedding"]["min_margin"] <= 1.0
    assert manifest.report["scorecards"] == report["scorecards"]
    pks = {f"s3://uploads/uploads/{r.id}.gif" for r in records}
    held = {pk for pk in pks if held_out(pk, settings.learn.holdout, settings.learn.seed)}
    assert len(held) == report["examples"]["held_out"] > 0
    assert not held & set(learned.memory.ids)  # what judged it was never learned
    assert pks - held <= set(learned.memory.ids)

    code, again = learn(aws, capsys)  # the bundled memory is back; the published version is current
    assert code == 0
    assert again["outcome"] == "kept" and again["version"] == "v000001"
    assert again["reason"] == f"nothing new since v000001: the same {len(records)} examples"
    assert store.current().version == "v000001"  # type: ignore[union-attr]

    # The loop closed: the stack's embed function (never invoked yet in this module, so it asks the store
    # at its first item) classifies the next upload with what was published, and the result says so.
    capsys.readouterr()
    upload(aws.s3, aws.outputs["UploadsBucketName"], "uploads/next.gif", gif(), {
        "title": "Migration",
        "description": "Thousands of wildebeest pour across the river while crocodiles wait below.",
    }, via="sidecar")
    item = wait_item(aws, "uploads/next.gif")
    (embedding,) = [t for t in item.stages if t.stage == "embedding"]
    assert embedding.artefact_version == item.artefact_version == "v000001"
    # ...and counts it, for the dashboard: the published version was taken up.
    assert f"Artefact_loaded@{aws.stack.name}" in emitted_metrics(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--table", "no-such-table"], "no results table 'no-such-table'"),
     (["--artefacts", "bucket/embedding"], "expected s3://BUCKET[/PREFIX]"),
     (["--artefacts", "s3://no-such-bucket/embedding"], "no artefacts bucket at s3://no-such-bucket")],
)
def test_bad_input_is_a_clear_error(
    aws: EmbeddedAws, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    capsys.readouterr()
    assert main(["learn", "--endpoint", aws.endpoint, *args]) == 2
    assert message in capsys.readouterr().err
