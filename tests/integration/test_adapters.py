"""The AWS adapters against moto: what the domain's ports promise, on real API calls."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from gifcat.adapters.dynamodb import ResultsTable
from gifcat.adapters.s3 import S3Objects
from gifcat.adapters.stepfunctions import Escalations, execution_name
from gifcat.model import Classification, StageName, Status
from gifcat.ports import ObjectGone
from gifcat.result import ObjectRef, result_item
from gifcat.taxonomy import load_taxonomy

REGION = "us-east-1"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        yield


@pytest.fixture
def bucket(aws: None) -> str:
    boto3.client("s3").create_bucket(Bucket="gifcat-test")
    return "gifcat-test"


@pytest.fixture
def table(aws: None) -> ResultsTable:
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


def test_missing_objects_are_gone(bucket: str) -> None:
    with pytest.raises(ObjectGone):
        S3Objects(boto3.client("s3")).head(ObjectRef(bucket=bucket, key="nope.gif"))


def test_taxonomy_from_s3(bucket: str) -> None:
    boto3.client("s3").put_object(
        Bucket=bucket,
        Key="config/taxonomy.yaml",
        Body=b"version: s3-1\ncategories:\n  - {name: memes, description: memes, aliases: [meme]}\n",
    )
    assert load_taxonomy(f"s3://{bucket}/config/taxonomy.yaml").version == "s3-1"


def _item(status: Status, seconds: int = 0, etag: str = "e1", primary: str | None = None) -> dict[str, Any]:
    ref = ObjectRef(
        bucket="b",
        key="k.gif",
        etag=etag,
        last_modified=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds),
    )
    c = Classification(status=status, primary=primary, decided_by=StageName.TAGS if primary else None)
    return result_item(ref, c)


def test_conditional_writes_keep_the_newest_finished_result(table: ResultsTable) -> None:
    assert table.put(_item(Status.PENDING))
    assert table.put(_item(Status.CLASSIFIED, primary="food"))  # finishes the pending one
    assert not table.put(_item(Status.PENDING))  # a duplicate event after the result
    assert not table.put(_item(Status.CLASSIFIED, primary="love"))  # same version, already finished
    assert table.put(_item(Status.CLASSIFIED, primary="love"), force=True)  # a console rerun
    assert table.put(_item(Status.CLASSIFIED, seconds=5, etag="e2", primary="dance"))  # newer object
    assert not table.put(
        _item(Status.CLASSIFIED, seconds=0, primary="food"), force=True
    )  # older, even forced
    stored = table.get("s3://b/k.gif")
    assert stored is not None and stored["primary"] == "dance"


def test_same_second_other_etag_replaces(table: ResultsTable) -> None:
    assert table.put(_item(Status.CLASSIFIED, primary="food"))
    assert table.put(_item(Status.CLASSIFIED, etag="e2", primary="love"))


def test_escalations_start_once_per_name(aws: None) -> None:
    sfn = boto3.client("stepfunctions")
    iam = boto3.client("iam")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = sfn.create_state_machine(
        name="m",
        roleArn=role,
        definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]
    escalations = Escalations(arn, sfn)
    name = execution_name(ObjectRef(bucket="b", key="uploads/a b+c 🎂.gif", etag="e"))
    first, started = escalations.start(name, {"a": 1})
    second, again = escalations.start(name, {"a": 2})
    assert started and not again and first == second
