"""The embedded AWS's DynamoDB updates an item atomically, as DynamoDB does: moto applies an update's
SET actions one by one to the stored item, so without gifcat_tooling.local.moto_dynamodb_atomic a reader
on another thread could see a result half written (its status set, its stage traces not yet)."""

from __future__ import annotations

import threading
import time

import boto3

from gifcat_tooling.local import moto_dynamodb_atomic
from gifcat_tooling.local.aws import free_port

ATTRIBUTES = 100  # a wide update takes long enough for a concurrent read to land inside it
READS = 75  # without the patch, 2 to 3 of 75 reads saw an update half applied


def test_a_reader_never_sees_an_update_half_applied() -> None:
    from moto.server import ThreadedMotoServer

    moto_dynamodb_atomic.install()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        ddb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        key = {"pk": {"S": "k"}}
        ddb.put_item(TableName="t", Item={**key, **{f"a{i}": {"N": "0"} for i in range(ATTRIBUTES)}})
        names = {f"#a{i}": f"a{i}" for i in range(ATTRIBUTES)}
        update = "SET " + ", ".join(f"#a{i} = :v" for i in range(ATTRIBUTES))
        stop = threading.Event()

        writes = 0

        def write() -> None:
            nonlocal writes
            version = 0
            while not stop.is_set():
                version += 1
                ddb.update_item(
                    TableName="t",
                    Key=key,
                    UpdateExpression=update,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":v": {"N": str(version)}},
                )
                writes += 1

        writer = threading.Thread(target=write)
        writer.start()
        # A count of reads, not a time window: on a loaded machine a few seconds held only ten reads.
        torn, reads, deadline = 0, 0, time.monotonic() + 120.0
        try:
            while reads < READS and time.monotonic() < deadline:
                item = ddb.get_item(TableName="t", Key=key)["Item"]
                torn += len({item[f"a{i}"]["N"] for i in range(ATTRIBUTES)}) > 1
                reads += 1
        finally:
            stop.set()
            writer.join()
        assert reads == READS and writes >= 10, f"{reads} reads beside {writes} writes"
        assert torn == 0, f"{torn} of {reads} reads saw an update half applied"
    finally:
        server.stop()
