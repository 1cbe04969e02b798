"""The Distributed Map's S3 ItemReader in moto 5.2.5's interpreter, made to read a listing as AWS's does.

moto's `listObjectsV2` reader makes one ListObjectsV2 call: it stops at the first 1,000 keys (AWS's
reader follows continuation tokens and reads every key), it fails on an empty prefix (AWS runs the map
over no items), and it hands on `LastModified` as a datetime where AWS gives a string. Each of those is
fixed here; the rest of the map (children, concurrency) is moto's own.
"""

from __future__ import annotations

from typing import Any

from gifcat_tooling.local.patching import once


def list_all(s3_client: Any, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object under the prefix, page after page, with JSON values only (as AWS's reader gives)."""
    items: list[dict[str, Any]] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(**parameters):
        for obj in page.get("Contents", []):
            items.append(
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in obj.items()}
            )
    return items


@once
def install() -> None:
    """Patches moto's S3 item reader (once per process)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
        resource_eval_s3,
    )

    reader = resource_eval_s3.ResourceEvalS3

    def _handle_list_objects_v2(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        s3_client = reader._get_s3_client(
            resource_runtime_part=resource_runtime_part, state_credentials=state_credentials
        )
        env.stack.append(list_all(s3_client, env.stack.pop()))

    reader._handle_list_objects_v2 = staticmethod(_handle_list_objects_v2)
