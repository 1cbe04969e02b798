"""The embedded AWS's check of each call a function makes against its template policy (local/iam.py):
moto enforces no IAM, and a call the template does not grant fails in AWS."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from gifcat_tooling.local import iam
from gifcat_tooling.local.template import Stack, load_template

UPLOADS = "arn:aws:s3:::up"
READ = {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{UPLOADS}/*"}
LIST = {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": UPLOADS}


def client(service: str) -> Any:
    return SimpleNamespace(meta=SimpleNamespace(service_model=SimpleNamespace(service_name=service)))


def missing(operation: str) -> Any:
    """botocore's call, as S3 answers a key that is not there to a caller who may know it."""

    def call(client: Any, op: str, params: dict[str, Any]) -> Any:
        raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "no"}}, op)

    return call


def test_a_missing_key_is_a_404_only_to_a_function_that_may_list_the_bucket() -> None:
    call = iam.checked_call(missing("GetObject"))
    params = {"Bucket": "up", "Key": "uploads/cat.gif.json"}
    with iam.running([READ, LIST]), pytest.raises(ClientError) as found:
        call(client("s3"), "GetObject", params)
    assert found.value.response["Error"]["Code"] == "NoSuchKey"
    with iam.running([READ]), pytest.raises(ClientError) as refused:
        call(client("s3"), "GetObject", params)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert "s3:ListBucket on resource: arn:aws:s3:::up" in str(refused.value)
    with iam.running([READ]), pytest.raises(ClientError) as head:
        iam.checked_call(missing("HeadObject"))(client("s3"), "HeadObject", params)
    assert head.value.response["Error"]["Code"] == "403"  # a HEAD has no body: S3 says only 403


def test_a_call_the_policy_does_not_grant_never_reaches_aws() -> None:
    reached: list[str] = []
    call = iam.checked_call(lambda client, op, params: reached.append(op))
    with iam.running([READ]), pytest.raises(ClientError, match="dynamodb:PutItem on resource: "
                                                                "arn:aws:dynamodb:us-east-1:123456789012:table/t"):
        call(client("dynamodb"), "PutItem", {"TableName": "t", "Item": {}})
    with iam.running([READ]), pytest.raises(ClientError, match="s3:GetObjectVersion"):
        call(client("s3"), "GetObject", {"Bucket": "up", "Key": "k", "VersionId": "v1"})
    with iam.running([READ]):
        call(client("s3"), "GetObject", {"Bucket": "up", "Key": "k"})
    call(client("dynamodb"), "PutItem", {"TableName": "t", "Item": {}})  # no function: not checked
    assert reached == ["GetObject", "PutItem"]


def test_conditions_on_the_prefix_hold_for_the_keys_they_name() -> None:
    under = {**LIST, "Condition": {"StringLike": {"s3:prefix": ["embedding/*"]}}}
    assert iam.allowed([under], iam.Need("s3:ListBucket", UPLOADS, {"s3:prefix": "embedding/current.json"}))
    assert not iam.allowed([under], iam.Need("s3:ListBucket", UPLOADS, {"s3:prefix": "uploads/x"}))
    assert not iam.allowed([under], iam.Need("s3:ListBucket", UPLOADS))  # a key the request lacks
    odd = {**LIST, "Condition": {"ArnLike": {"aws:SourceArn": "x"}}}
    with pytest.raises(iam.UnmodelledCall, match="ArnLike"):
        iam.allowed([odd], iam.Need("s3:ListBucket", UPLOADS))


def test_a_call_without_a_rule_is_refused_by_name() -> None:
    with pytest.raises(iam.UnmodelledCall, match="s3:DeleteObject has no IAM rule"):
        iam.needs("s3", "DeleteObject", {"Bucket": "b", "Key": "k"})


@pytest.mark.parametrize(
    ("service", "operation", "params", "need"),
    [
        ("ssm", "GetParameter", {"Name": "/gifcat/key"},
         iam.Need("ssm:GetParameter", "arn:aws:ssm:us-east-1:123456789012:parameter/gifcat/key")),
        ("stepfunctions", "StartExecution", {"stateMachineArn": "arn:sm", "input": "{}"},
         iam.Need("states:StartExecution", "arn:sm")),
        ("s3", "ListObjectsV2", {"Bucket": "a", "Prefix": "embedding/"},
         iam.Need("s3:ListBucket", "arn:aws:s3:::a", {"s3:prefix": "embedding/"})),
        ("dynamodb", "Query", {"TableName": "t", "IndexName": "by-x", "KeyConditionExpression": "k"},
         iam.Need("dynamodb:Query", "arn:aws:dynamodb:us-east-1:123456789012:table/t/index/by-x")),
        ("dynamodb", "BatchGetItem", {"RequestItems": {"t": {"Keys": []}}},
         iam.Need("dynamodb:BatchGetItem", "arn:aws:dynamodb:us-east-1:123456789012:table/t")),
    ],
)
def test_each_call_needs_what_aws_checks(
    service: str, operation: str, params: dict[str, Any], need: iam.Need
) -> None:
    assert iam.needs(service, operation, params) == [need]


def test_every_function_of_the_template_has_statements_the_check_reads(root: Path) -> None:
    stack = Stack(load_template(root / "template.yaml"), root)
    for lid in stack.of_type("AWS::Serverless::Function"):
        statements = iam.function_statements(stack.function_properties(lid)["Policies"], lid)
        assert statements and all(s["Effect"] == "Allow" for s in statements), lid
