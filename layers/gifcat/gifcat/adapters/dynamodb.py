"""Results table adapter: conditional writes, so duplicates and late events never win over newer results."""

from __future__ import annotations

from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from gifcat.result import put_request


class ResultsTable:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._ddb = client or boto3.client("dynamodb")

    def put(self, item: dict[str, Any], *, force: bool = False) -> bool:
        """Write the result; False when a newer (or finished) result is already there."""
        try:
            self._ddb.put_item(TableName=self.table_name, **put_request(item, force=force))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

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
