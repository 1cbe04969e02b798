"""The functions' IAM policies, enforced on the calls their code makes in the embedded AWS.

moto does not enforce IAM, so a call that template.yaml does not grant worked here and failed in AWS
with AccessDenied. One did: reading a sidecar that is not there needs s3:ListBucket on the bucket, or
S3 answers 403 instead of 404, and every GIF without a sidecar was dead-lettered. While a function
runs (its cold start and each invocation), every AWS call its code makes is checked against that
function's policy statements in the template, with the action and resource AWS would check, and a call
the statements do not allow fails as it would in AWS.

What is modelled: Allow statements (the template has no Deny); actions and resources with `*` and `?`;
the StringLike and StringEquals conditions; and S3's answer to a missing key, which is 404 only to a
caller allowed s3:ListBucket on the bucket (with the key as `s3:prefix`) and 403 to any other. A call
this module has no rule for is refused too, naming itself: grant a new kind of call in the template and
give it a rule here in the same change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from botocore.exceptions import ClientError

from gifcat_tooling.local.template import ACCOUNT, REGION

_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True)
class Need:
    """One permission a call needs: an action on a resource, with the request's condition keys."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


class UnmodelledCall(Exception):
    """An AWS call this module cannot say the permissions of."""


def _object(params: Mapping[str, Any]) -> str:
    return f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"


def _bucket(params: Mapping[str, Any]) -> str:
    return f"arn:aws:s3:::{params['Bucket']}"


def _table(params: Mapping[str, Any]) -> str:
    name = str(params["TableName"])
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


def _event_bus(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"


def _parameter(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{name.lstrip('/')}"


def _secret(secret_id: str) -> str:
    # A secret named without its ARN: the ARN ends with a random suffix that a grant matches with `-*`.
    return secret_id if secret_id.startswith("arn:") else (
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret_id}-xxxxxx"
    )


def needs(service: str, operation: str, params: Mapping[str, Any]) -> list[Need]:
    """What AWS checks before it answers this call (AWS's service authorization reference)."""
    if service == "s3":
        if operation in ("HeadObject", "GetObject"):
            action = "s3:GetObjectVersion" if params.get("VersionId") else "s3:GetObject"
            return [Need(action, _object(params))]
        if operation in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
            return [Need("s3:PutObject", _object(params))]
        if operation in ("ListObjectsV2", "ListObjects"):
            return [Need("s3:ListBucket", _bucket(params), {"s3:prefix": str(params.get("Prefix", ""))})]
        if operation == "HeadBucket":
            return [Need("s3:ListBucket", _bucket(params))]
    if service == "dynamodb" and operation in (
        "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable"
    ):
        index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
        return [Need(f"dynamodb:{operation}", _table(params) + index)]
    if service == "dynamodb" and operation == "BatchGetItem":
        return [Need("dynamodb:BatchGetItem", _table({"TableName": t})) for t in params["RequestItems"]]
    if service == "stepfunctions":
        if operation in ("StartExecution", "StartSyncExecution", "ListExecutions", "DescribeStateMachine"):
            return [Need(f"states:{operation}", str(params["stateMachineArn"]))]
        if operation in ("DescribeExecution", "StopExecution"):
            return [Need(f"states:{operation}", str(params["executionArn"]))]
    if service == "secretsmanager" and operation == "GetSecretValue":
        return [Need("secretsmanager:GetSecretValue", _secret(str(params["SecretId"])))]
    if service == "ssm" and operation == "GetParameter":
        return [Need("ssm:GetParameter", _parameter(str(params["Name"])))]
    if service == "sqs" and operation == "SendMessage":
        *_, account, name = str(params["QueueUrl"]).rstrip("/").split("/")
        return [Need("sqs:SendMessage", f"arn:aws:sqs:{REGION}:{account}:{name}")]
    if service == "events" and operation == "PutEvents":  # each entry's bus (default: "default")
        buses = {str(e.get("EventBusName") or "default") for e in params.get("Entries", [])}
        return [Need("events:PutEvents", _event_bus(bus)) for bus in sorted(buses)]
    if service == "sts" and operation == "GetCallerIdentity":
        return []  # allowed to every caller
    raise UnmodelledCall(
        f"{service}:{operation} has no IAM rule in gifcat_tooling/local/iam.py: grant it in "
        "template.yaml and say there what it needs"
    )


def _condition_holds(condition: Mapping[str, Mapping[str, Any]], context: Mapping[str, str]) -> bool:
    for operator, keys in condition.items():
        if operator not in ("StringLike", "StringEquals"):
            raise UnmodelledCall(f"condition {operator} is not modelled in gifcat_tooling/local/iam.py")
        for key, wanted in keys.items():
            if key not in context:  # a key the request does not carry: the condition does not hold
                return False
            values = wanted if isinstance(wanted, list) else [wanted]
            match = fnmatchcase if operator == "StringLike" else str.__eq__
            if not any(match(context[key], str(v)) for v in values):
                return False
    return True


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def allowed(statements: list[Mapping[str, Any]], need: Need) -> bool:
    """Whether an Allow statement grants the action on the resource, its condition holding."""
    for statement in statements:
        if statement.get("Effect") != "Allow":
            raise UnmodelledCall(f"only Allow statements are modelled: {statement}")
        actions = [a.lower() for a in _listed(statement.get("Action", []))]
        if not any(fnmatchcase(need.action.lower(), a) for a in actions):
            continue
        if not any(fnmatchcase(need.resource, r) for r in _listed(statement.get("Resource", []))):
            continue
        if _condition_holds(statement.get("Condition", {}), need.context):
            return True
    return False


def denied(service: str, operation: str, need: Need) -> ClientError:
    """The error AWS answers a call its caller may not make."""
    message = f"not authorized to perform: {need.action} on resource: {need.resource}"
    code = ("403" if operation == "HeadObject" else "AccessDenied") if service == "s3" else (
        "AccessDeniedException"
    )
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 403}},
        operation,
    )


_current = threading.local()


def caller() -> list[Mapping[str, Any]] | None:
    """The policy statements of the function whose code this thread runs, or None outside one."""
    statements: list[Mapping[str, Any]] | None = getattr(_current, "statements", None)
    return statements


@contextmanager
def running(statements: list[Mapping[str, Any]] | None) -> Iterator[None]:
    """Within the block, this thread's AWS calls are the function's, checked against `statements`
    (None: not checked)."""
    before = caller()
    _current.statements = statements
    try:
        yield
    finally:
        _current.statements = before


def checked_call(original: Any) -> Any:
    """botocore's BaseClient._make_api_call, checking each call a function makes against its policy."""

    def _make_api_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        statements = caller()
        if statements is None:
            return original(client, operation, params)
        service = client.meta.service_model.service_name
        for need in needs(service, operation, params):
            if not allowed(statements, need):
                raise denied(service, operation, need)
        try:
            return original(client, operation, params)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if service == "s3" and operation in ("HeadObject", "GetObject") and code in _MISSING:
                listing = Need("s3:ListBucket", _bucket(params), {"s3:prefix": str(params["Key"])})
                if not allowed(statements, listing):
                    raise denied(service, operation, listing) from exc
            raise

    return _make_api_call


def function_statements(policies: list[Any], function: str) -> list[Mapping[str, Any]]:
    """A function's statements from its template Policies (resolved): inline statements only."""
    statements: list[Mapping[str, Any]] = []
    for policy in policies:
        if not (isinstance(policy, Mapping) and set(policy) == {"Statement"}):
            raise UnmodelledCall(
                f"{function}: policy {policy!r} is not an inline statement list, which is all "
                "gifcat_tooling/local/iam.py models"
            )
        statements.extend(policy["Statement"])
    return statements
