"""The AWS adapters against moto: what the domain's ports promise, on real API calls."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from gifcat.adapters.dynamodb import CLAIM_LEASE_S, ResultsTable, asl_time, put_request
from gifcat.adapters.s3 import S3Objects, read_s3_uri
from gifcat.adapters.stepfunctions import Escalations, execution_name
from gifcat.application.ports import ObjectArchived, ObjectGone, SourceUnavailable
from gifcat.config import ConfigError
from gifcat.domain.model import Classification, GifMetadata, StageName, Status
from gifcat.domain.result import (
    ObjectRef,
    ResultItem,
    classification_fields,
    content_key,
    result_item,
    reused_item,
    sortable_sequencer,
)
from gifcat.domain.taxonomy import load_taxonomy
from gifcat.runtime import settings_and_taxonomy
from gifcat_tooling.local.template import Stack, load_template


@pytest.fixture
def bucket(moto_in_process: None) -> str:
    boto3.client("s3").create_bucket(Bucket="gifcat-test")
    return "gifcat-test"


@pytest.fixture
def table(moto_in_process: None) -> ResultsTable:
    ddb = boto3.client("dynamodb")
    ddb.create_table(
        TableName="results",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    return ResultsTable("results", ddb)


def test_head_read_and_sidecar(bucket: str, gif: Callable[..., bytes]) -> None:
    s3 = boto3.client("s3")
    body = gif()
    s3.put_object(Bucket=bucket, Key="u/a b.gif", Body=body, Metadata={"title": "T"})
    s3.put_object(Bucket=bucket, Key="u/a b.gif.json", Body=b'{"tags": ["x"]}')
    objects = S3Objects(s3)
    ref, meta = objects.head(ObjectRef(bucket=bucket, key="u/a b.gif"))
    assert (ref.size, meta) == (len(body), {"title": "T"})
    assert ref.etag and ref.last_modified is not None
    assert objects.read(ref, first=13) == body[:13]
    assert objects.read(ref) == body
    assert json.loads(objects.sidecar(ref, 1000) or b"") == {"tags": ["x"]}
    with pytest.raises(ValueError, match="larger than 5 bytes"):
        objects.sidecar(ref, 5)
    assert objects.sidecar(ObjectRef(bucket=bucket, key="u/none.gif"), 1000) is None


def test_sidecars_that_are_empty_or_cannot_exist(bucket: str, gif: Callable[..., bytes]) -> None:
    s3 = boto3.client("s3")
    objects = S3Objects(s3)
    s3.put_object(Bucket=bucket, Key="u/empty.gif.json", Body=b"")
    # S3 refuses a range of an empty object (InvalidRange): the sidecar is there, and empty.
    assert objects.sidecar(ObjectRef(bucket=bucket, key="u/empty.gif"), 1000) == b""
    # A key of 1,020 bytes or more has no sidecar: <key>.json would be over S3's 1,024 (AWS answers
    # KeyTooLongError; no request is made).
    long_key = "u/" + "k" * 1016 + ".gif"
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.GetObject", lambda **kw: calls.append("get"))
    assert objects.sidecar(ObjectRef(bucket=bucket, key=long_key), 1000) is None
    assert calls == []


def test_a_sidecar_read_that_is_denied_says_what_a_missing_key_looks_like_then(bucket: str) -> None:
    # S3 answers a missing key with 403 to a role that may not list the bucket: retried as storage
    # unavailable, the upload is dead-lettered, and the error must say what to grant.
    objects = S3Objects(boto3.client("s3"))
    with Stubber(objects.client) as stub:
        stub.add_client_error("get_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(SourceUnavailable, match=r"AccessDenied: .*without s3:ListBucket on the bucket"):
            objects.sidecar(ObjectRef(bucket=bucket, key="u/cat.gif"), 1000)


def test_results_of_given_objects_are_read_in_batches_whatever_the_table_holds(table: ResultsTable) -> None:
    # A backfill's summary reads the results of the objects it listed, not the whole table (Scan).
    classified = Classification(status=Status.CLASSIFIED, primary="food", decided_by=StageName.TAGS)
    for i in range(230):
        assert table.put(result_item(ObjectRef(bucket="b", key=f"u/{i}.gif", sequencer="0A"), classified))
    asked = [f"s3://b/u/{i}.gif" for i in range(0, 250, 2)] + ["s3://b/u/0.gif"]
    requests: list[int] = []
    table._ddb.meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem",
        lambda params, **kw: requests.append(len(params["RequestItems"]["results"]["Keys"])),
    )
    got = table.get_many(asked)
    assert sorted(got) == sorted(f"s3://b/u/{i}.gif" for i in range(0, 230, 2))
    assert got["s3://b/u/4.gif"].primary == "food"
    assert requests == [100, 25]  # 125 distinct keys, 100 a request


@pytest.fixture
def indexed(moto_in_process: None, root: Path) -> ResultsTable:
    """The results table as template.yaml makes it, with the index gifcat learn queries."""
    stack = Stack(load_template(root / "template.yaml"), root)
    props = stack.resolve(stack.resources["ResultsTable"]["Properties"])
    ddb = boto3.client("dynamodb")
    ddb.create_table(TableName="indexed", BillingMode="PAY_PER_REQUEST",
                     AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"],
                     GlobalSecondaryIndexes=props["GlobalSecondaryIndexes"])
    return ResultsTable("indexed", ddb)


def test_the_newest_results_of_a_taxonomy_version_come_first_and_stop_at_the_limit(
    indexed: ResultsTable,
) -> None:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    for i in range(30):
        version = "t2" if i % 3 else "t1"
        classified = Classification(status=Status.CLASSIFIED, primary="food", decided_by=StageName.TAGS,
                                    taxonomy_version=version)
        item = result_item(ObjectRef(bucket="b", key=f"u/{i}.gif", sequencer="0A"), classified,
                           at=start + timedelta(minutes=(i * 7) % 30))  # written in another order
        assert indexed.put(item)
    newest = list(indexed.newest("t2", limit=15))
    assert {i.taxonomy_version for i in newest} == {"t2"} and len(newest) == 15
    times = [i.updated_at for i in newest]
    assert times == sorted(times, reverse=True)
    every = sorted((i for i in indexed.items() if i.taxonomy_version == "t2"), key=lambda i: i.updated_at)
    assert [i.pk for i in newest] == [i.pk for i in reversed(every)][:15]
    assert len(list(indexed.newest("t1", limit=1000))) == 10
    # People's answers, however old, from the sparse index of corrections: only corrected results.
    for i, key in enumerate(("u/3.gif", "u/4.gif")):
        item = next(r for r in indexed.items() if r.key == key)
        corrected = item.model_copy(update={"corrected_at": start + timedelta(days=i), "decided_by": "human"})
        indexed._ddb.put_item(TableName="indexed", Item=put_request(corrected)["Item"])
    assert [i.key for i in indexed.corrected("t1")] == ["u/3.gif"]
    assert [i.key for i in indexed.corrected("t2")] == ["u/4.gif"]


def test_failed_and_pending_results_are_found_by_status_and_time_in_their_own_index(
    indexed: ResultsTable,
) -> None:
    start = datetime(2026, 12, 5, 9, tzinfo=UTC)
    statuses = [Status.FAILED, Status.PENDING, Status.CLASSIFIED, Status.UNDECIDED]
    for i in range(12):
        outcome = Classification(status=statuses[i % 4], reason="llm: down" if i % 4 == 0 else None)
        item = result_item(ObjectRef(bucket="b", key=f"u/{i}.gif", sequencer="0A"), outcome,
                           execution=f"run-{i}", at=start + timedelta(minutes=i))
        assert indexed.put(item, kind="pending" if item.status is Status.PENDING else "result")
    ids = lambda found: [int(i.key[2:-4]) for i in found]  # noqa: E731
    assert ids(indexed.rerunnable(Status.FAILED)) == [8, 4, 0]  # the newest first
    assert ids(indexed.rerunnable(Status.PENDING)) == [9, 5, 1]
    assert ids(indexed.rerunnable(Status.FAILED, since=start + timedelta(minutes=4))) == [8, 4]
    assert ids(indexed.rerunnable(Status.PENDING, before=start + timedelta(minutes=5, seconds=30))) == [5, 1]
    with pytest.raises(ValueError, match="not classified"):
        list(indexed.rerunnable(Status.CLASSIFIED))

    # A finished run leaves the index; a failed one enters it; a person's answer leaves it too.
    assert indexed.record("s3://b/u/9.gif", classification_fields(
        Classification(status=Status.CLASSIFIED, primary="food", decided_by=StageName.EMBEDDING),
        execution="run-9", at=start + timedelta(minutes=20)), execution="run-9")
    assert indexed.record("s3://b/u/5.gif", classification_fields(
        Classification(status=Status.FAILED, reason="llm: timeout"), execution="run-5",
        at=start + timedelta(minutes=20)), execution="run-5")
    assert ids(indexed.rerunnable(Status.PENDING)) == [1]
    assert ids(indexed.rerunnable(Status.FAILED)) == [5, 8, 4, 0]
    answer = {"status": "classified", "primary": "food", "decided_by": "human"}
    assert indexed.correct("s3://b/u/8.gif", answer, object_seq=sortable_sequencer("0A"), etag=None)
    assert ids(indexed.rerunnable(Status.FAILED)) == [5, 4, 0]
    stored = indexed.get("s3://b/u/5.gif")
    assert stored is not None and stored.rerunnable == "failed" and "rerunnable" not in stored.model_dump()


def test_results_of_the_same_content_are_found_newest_first_in_their_own_index(
    indexed: ResultsTable, table: ResultsTable,
) -> None:
    start = datetime(2026, 12, 5, 9, tzinfo=UTC)
    meta = GifMetadata(title="Mood", tags=("#mood",))
    pending = Classification(status=Status.PENDING, taxonomy_version="t1")
    for i in range(8):  # the same bytes and metadata under six keys, other bytes under two
        ref = ObjectRef(bucket="b", key=f"u/{i}.gif", sequencer="0A", etag="e1" if i < 6 else "e2", size=10)
        at = start + timedelta(minutes=i)
        assert indexed.put(result_item(ref, pending, metadata=meta, execution=f"run-{i}", at=at),
                           kind="pending")
        assert indexed.record(f"s3://b/u/{i}.gif", classification_fields(
            Classification(status=Status.CLASSIFIED, primary="funny", decided_by=StageName.LLM,
                           taxonomy_version="t1"), execution=f"run-{i}", at=at), execution=f"run-{i}")
    key = content_key(ObjectRef(bucket="b", key="u/new.gif", etag="e1", size=10), meta, "t1")
    assert key is not None
    found = indexed.same_content(key, 4)
    assert len(found) == 4 and {i.key for i in found} <= {f"u/{i}.gif" for i in range(6)}
    assert all(i.content_key == key and i.status is Status.CLASSIFIED for i in found)
    assert len(indexed.same_content(key, 10)) == 6
    assert [i.key for i in indexed.same_content("nothing", 4)] == []
    # A table without the index (a stack deployed before it): a read that fails, as an outage does.
    with pytest.raises(SourceUnavailable, match="by-content"):
        table.same_content(key, 4)
    # A person's answer on a result that took another's is the object's own: it names no source.
    copy = reused_item(found[0].model_copy(update={"pk": "s3://b/u/copy.gif", "key": "u/copy.gif"}), found[1])
    assert indexed.put(copy) and copy.reused_from == found[1].pk
    answer = {"status": "classified", "primary": "sports", "decided_by": "human",
              "corrected_at": (start + timedelta(hours=1)).isoformat()}
    assert indexed.correct(copy.pk, answer, object_seq=copy.object_seq, etag="e1")
    corrected = indexed.get(copy.pk)
    assert corrected is not None and (corrected.primary, corrected.reused_from) == ("sports", None)
    # Giving that answer to another result of the content: only over the item as it was read, and never
    # over a person's own correction.
    other = found[2]
    answered = reused_item(other, corrected).model_copy(update={"updated_at": start + timedelta(hours=1)})
    assert not indexed.adopt(corrected.model_copy(update={"primary": "funny"}), corrected)  # it stays
    stale = other.model_copy(update={"updated_at": other.updated_at - timedelta(seconds=1)})
    assert not indexed.adopt(answered, stale)  # changed since it was read
    assert indexed.adopt(answered, other)
    now_stored = indexed.get(other.pk)
    assert now_stored is not None
    assert (now_stored.primary, now_stored.decided_by, now_stored.reused_from) == ("sports", "human", copy.pk)


def test_a_stuck_item_is_marked_failed_only_while_it_is_the_one_found(table: ResultsTable) -> None:
    start = datetime(2026, 12, 5, 9, tzinfo=UTC)
    stale, at = start + timedelta(minutes=10), start + timedelta(minutes=20)

    def pending(key: str, execution: str, minutes: float) -> ResultItem:
        item = result_item(ObjectRef(bucket="b", key=key, sequencer="0A"),
                           Classification(status=Status.PENDING), execution=execution,
                           at=start + timedelta(minutes=minutes))
        assert table.put(item, kind="pending")
        return item

    found = pending("u/a.gif", "run-a", 0)
    assert table.fail_stuck(found, "stuck: x", stale_before=stale, at=at)
    swept = table.get(found.pk)
    assert swept is not None
    assert (swept.status, swept.reason, swept.updated_at) == (Status.FAILED, "stuck: x", at)
    assert not table.fail_stuck(found, "stuck: x", stale_before=stale, at=at)  # failed already

    # Taken over by another run since it was read (a rerun, a newer upload): that run's item stays.
    old = pending("u/b.gif", "run-b", 0)
    table._ddb.put_item(TableName="results",
                        Item=put_request(old.model_copy(update={"execution": "rerun-b"}))["Item"])
    assert not table.fail_stuck(old, "stuck: x", stale_before=stale, at=at)
    # Made pending again since (a retried upload event, its run under the same name): not stale now.
    again = pending("u/c.gif", "run-c", 0)
    table._ddb.put_item(TableName="results", Item=put_request(
        again.model_copy(update={"updated_at": start + timedelta(minutes=15)}))["Item"])
    assert not table.fail_stuck(again, "stuck: x", stale_before=stale, at=at)
    assert {i.key: i.status for i in table.items()} == {
        "u/a.gif": Status.FAILED, "u/b.gif": Status.PENDING, "u/c.gif": Status.PENDING}


def test_keys_a_batch_left_unprocessed_are_asked_again(table: ResultsTable) -> None:
    item = result_item(ObjectRef(bucket="b", key="u/a.gif", sequencer="0A"),
                       Classification(status=Status.CLASSIFIED, primary="food", decided_by=StageName.TAGS))
    raw = put_request(item)["Item"]
    keys = [{"pk": {"S": "s3://b/u/a.gif"}}]
    with Stubber(table._ddb) as stub:
        stub.add_response("batch_get_item", {"Responses": {"results": []},
                                             "UnprocessedKeys": {"results": {"Keys": keys}}})
        stub.add_response("batch_get_item", {"Responses": {"results": [raw]}})
        assert list(table.get_many(["s3://b/u/a.gif"])) == ["s3://b/u/a.gif"]


def test_an_archived_object_cannot_be_read_until_restored(bucket: str, gif: Callable[..., bytes]) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="u/cold.gif", Body=gif(), StorageClass="GLACIER")
    objects = S3Objects(s3)
    ref, _ = objects.head(ObjectRef(bucket=bucket, key="u/cold.gif"))
    with pytest.raises(ObjectArchived, match="archive storage class"):
        objects.read(ref, first=13)


def test_missing_objects_are_gone(bucket: str) -> None:
    with pytest.raises(ObjectGone):
        S3Objects(boto3.client("s3")).head(ObjectRef(bucket=bucket, key="nope.gif"))


def test_taxonomy_from_s3(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    boto3.client("s3").put_object(
        Bucket=bucket,
        Key="config/taxonomy.yaml",
        Body=b"version: s3-1\ncategories:\n  - {name: memes, description: memes, aliases: [meme]}\n"
        b"  - {name: other, description: everything else}\n",
    )
    uri = f"s3://{bucket}/config/taxonomy.yaml"
    assert load_taxonomy(uri, read_uri=read_s3_uri).version == "s3-1"
    # The composition root wires the S3 reader in: a Lambda configured with GIFCAT_TAXONOMY reads it.
    monkeypatch.setenv("GIFCAT_TAXONOMY", uri)
    assert settings_and_taxonomy()[1].version == "s3-1"


def test_config_reads_s3_only_through_the_reader_it_is_given() -> None:
    # config imports no adapter: without a reader an s3:// source is a clear error, not a boto3 call
    with pytest.raises(ConfigError, match=r"s3://b/t\.yaml: no reader for s3:// documents was given"):
        load_taxonomy("s3://b/t.yaml")


def _item(
    status: Status,
    seq: str = "0A",
    etag: str = "e1",
    primary: str | None = None,
    execution: str | None = None,
) -> ResultItem:
    ref = ObjectRef(
        bucket="b", key="k.gif", etag=etag, sequencer=seq, last_modified=datetime(2026, 1, 1, tzinfo=UTC)
    )
    c = Classification(status=status, primary=primary, decided_by=StageName.TAGS if primary else None)
    return result_item(ref, c, metadata=GifMetadata(title=f"v{seq}"), execution=execution)


def test_conditional_writes_follow_the_upload_order(table: ResultsTable) -> None:
    assert table.put(_item(Status.PENDING, execution="x-0A"), kind="pending")
    assert table.put(_item(Status.PENDING, execution="x-0A"), kind="pending")  # a retried event: same upload
    assert table.put(_item(Status.CLASSIFIED, primary="food"))  # triage decided on a repeated delivery
    assert not table.put(_item(Status.PENDING, execution="x-0A"), kind="pending")  # finished: no new pending
    assert not table.put(_item(Status.CLASSIFIED, primary="love"))  # same upload, already finished
    # A re-upload of identical bytes (same ETag) is a new upload: a later sequencer wins.
    assert table.put(_item(Status.CLASSIFIED, seq="0B", primary="dance"))
    assert not table.put(_item(Status.CLASSIFIED, seq="0A", etag="e2", primary="sad"))  # an older upload
    assert not table.put(_item(Status.CLASSIFIED, seq=None, primary="sad"))  # no sequencer: never replaces
    stored = table.get("s3://b/k.gif")
    assert stored is not None and (stored.primary, stored.title) == ("dance", "v0B")


def _claim(at: datetime, run: str = "run-1") -> None:
    """What the state machine's Claim state writes (statemachine/classify.asl.json)."""
    boto3.client("dynamodb").update_item(
        TableName="results",
        Key={"pk": {"S": "s3://b/k.gif"}},
        UpdateExpression="SET #run = :run, #claimed_at = :at",
        ConditionExpression="#execution = :execution AND #status = :pending AND attribute_not_exists(#run)",
        ExpressionAttributeNames={
            "#run": "run", "#claimed_at": "claimed_at", "#execution": "execution", "#status": "status"
        },
        ExpressionAttributeValues={
            ":run": {"S": run},
            ":at": {"S": asl_time(at)},
            ":execution": {"S": "x-0A"},
            ":pending": {"S": "pending"},
        },
    )


def test_a_claimed_pending_item_is_not_started_again_until_its_claim_lapses(table: ResultsTable) -> None:
    # Express starts are not idempotent by name: a repeated event must not start a second run while
    # one holds the item, yet an item whose run ended without a result must not stay pending for ever.
    assert table.put(_item(Status.PENDING, execution="x-0A"), kind="pending")
    _claim(datetime.now(UTC))
    assert not table.put(_item(Status.PENDING, execution="x-0A"), kind="pending")  # a run holds it
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):  # a second run of it stops at Claim
        _claim(datetime.now(UTC), run="run-2")
    assert table.put(_item(Status.CLASSIFIED, primary="food"))  # triage deciding it is still fine
    assert table.put(_item(Status.PENDING, seq="0B", execution="x-0A"), kind="pending")  # a newer upload
    stored = table.get("s3://b/k.gif")
    assert stored is not None and stored.run is None  # the put replaced the item and its claim
    boto3.client("dynamodb").delete_item(TableName="results", Key={"pk": {"S": "s3://b/k.gif"}})
    assert table.put(_item(Status.PENDING, execution="x-0A"), kind="pending")
    _claim(datetime.now(UTC) - timedelta(seconds=CLAIM_LEASE_S + 1))  # that run has surely ended
    assert table.put(_item(Status.PENDING, execution="x-0A"), kind="pending")
    stored = table.get("s3://b/k.gif")
    assert stored is not None and stored.claimed_at is None  # the next run can claim it


def test_record_finishes_only_the_executions_own_item(table: ResultsTable) -> None:
    assert table.put(_item(Status.PENDING, execution="x-0A"), kind="pending")
    answer = classification_fields(
        Classification(status=Status.CLASSIFIED, primary="food", decided_by=StageName.LLM), execution="x-0A"
    )
    # A newer upload's triage took the item over (another execution): the older answer is refused.
    assert table.put(_item(Status.PENDING, seq="0B", execution="x-0B"), kind="pending")
    assert not table.record("s3://b/k.gif", answer, execution="x-0A")
    assert table.record("s3://b/k.gif", answer.model_copy(update={"primary": "dance"}), execution="x-0B")
    stored = table.get("s3://b/k.gif")
    assert stored is not None
    assert (stored.status, stored.primary, stored.title, stored.execution) == (
        "classified",
        "dance",
        "v0B",  # the metadata triage wrote stays
        "x-0B",
    )
    # Failing an orphaned pending item does nothing to a finished one.
    failed = classification_fields(Classification(status=Status.FAILED, reason="x"), execution="x-0B")
    assert not table.record("s3://b/k.gif", failed, execution="x-0B", only_pending=True)


def test_rerun_takes_over_in_place(table: ResultsTable) -> None:
    assert table.put(_item(Status.CLASSIFIED, seq="0B", primary="food"))
    stored = table.get("s3://b/k.gif")
    rerun = _item(Status.PENDING, seq=None, execution="console-1")
    assert not table.take_over(rerun, stored, force=False)  # without force, only an unfinished item
    assert table.take_over(rerun, stored, force=True)
    after = table.get("s3://b/k.gif")
    assert stored is not None and after is not None and after.execution == "console-1"
    assert after.object_seq == stored.object_seq  # the order of the upload it describes
    assert table.put(_item(Status.CLASSIFIED, seq="0C", primary="dance"))  # an upload during the rerun wins
    assert not table.take_over(rerun, after, force=True)


def test_escalations_start_once_per_name(moto_in_process: None) -> None:
    sfn = boto3.client("stepfunctions")
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = sfn.create_state_machine(
        name="m",
        roleArn=role,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    escalations = Escalations(arn, sfn)
    ref = ObjectRef(bucket="b", key="uploads/a b+c 🎂.gif", etag="e", sequencer="0A")
    name = execution_name(ref, GifMetadata(title="x"))
    assert escalations.start(name, {"a": 1}) == "started"
    sfn.stop_execution(executionArn=escalations.execution_arn(name))
    assert escalations.start(name, {"a": 2}) == "closed"  # this upload's execution already ended


def test_execution_names_one_per_upload_event() -> None:
    ref = ObjectRef(bucket="b", key="uploads/a b+c 🎂.gif", etag="e", sequencer="0A")
    meta = GifMetadata(title="x")
    name = execution_name(ref, meta)
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", name)
    # A repeated delivery of the event reads what it reads: same upload, same name.
    assert execution_name(ref.model_copy(update={"etag": "f"}), GifMetadata(title="y")) == name
    # A re-upload of identical bytes is another event.
    assert execution_name(ref.model_copy(update={"sequencer": "0B"}), meta) != name
    # Without a sequencer, what was read tells uploads apart: new metadata on identical bytes is new.
    bare = ref.model_copy(update={"sequencer": None})
    assert execution_name(bare, meta) == execution_name(bare, GifMetadata(title="x"))
    assert execution_name(bare, meta) != execution_name(bare, GifMetadata(title="z"))
