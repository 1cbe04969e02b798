"""Results table adapter: conditional writes, so duplicates and late events never win over newer results."""

from __future__ import annotations

from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from gifcat.domain.result import WriteKind, put_request, record_request, takeover_request


def _condition_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ResultsTable:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._ddb = client or boto3.client("dynamodb")

    def _write(self, operation: str, request: dict[str, Any]) -> bool:
        try:
            getattr(self._ddb, operation)(TableName=self.table_name, **request)
        except ClientError as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    def put(self, item: dict[str, Any], *, kind: WriteKind = "result") -> bool:
        """Write triage's result; False when a newer (or finished) result is already there."""
        return self._write("put_item", put_request(item, kind=kind))

    def take_over(self, item: dict[str, Any], stored: dict[str, Any] | None, *, force: bool) -> bool:
        """A rerun's pending item in place of `stored`; False when the item changed since it was read."""
        return self._write("put_item", takeover_request(item, stored, force=force))

    def record(self, pk: str, fields: dict[str, Any], *, execution: str, only_pending: bool = False) -> bool:
        """Finish the execution's own item; False when a newer upload's triage has taken it over."""
        return self._write(
            "update_item", record_request(pk, fields, execution=execution, only_pending=only_pending)
        )

    def get(self, pk: str) -> dict[str, Any] | None:
        got = self._ddb.get_item(TableName=self.table_name, Key={"pk": {"S": pk}}, ConsistentRead=True)
        if "Item" not in got:
            return None
        deserializer = TypeDeserializer()
        return {k: deserializer.deserialize(v) for k, v in got["Item"].items()}

    def scan(self) -> list[dict[str, Any]]:
        deserializer = TypeDeserializer()
        items: list[dict[str, Any]] = []
        for page in self._ddb.get_paginator("scan").paginate(TableName=self.table_name, ConsistentRead=True):
            items.extend({k: deserializer.deserialize(v) for k, v in raw.items()} for raw in page["Items"])
        return items
