"""`gifcat demo --scenario backfill`: the embedded AWS with the upload trigger off, the sample uploads
put into the bucket (nothing classifies them), then the backfill state machine over `uploads/`. Prints
the results table and the run's summary; exits 0 only when every object has a result item.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any


def run_backfill_demo(
    root: Path, out: Any = sys.stdout, timeout_s: float = 300.0, verbose: bool = False
) -> int:
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat_tooling.local.demo import demo_stack, print_table, upload_samples
    from gifcat_tooling.operations.backfill import BackfillRequest, render, run_backfill

    started = time.perf_counter()
    with demo_stack(root, out, verbose, upload_trigger=False) as aws:
        bucket = aws.outputs["UploadsBucketName"]
        keys = list(upload_samples(aws.s3, bucket))
        assert aws.runner.drain(10)
        print(f"put {len(keys)} objects under uploads/ (results now: {len(aws.results())}); "
              "running the backfill...", file=out, flush=True)
        begun = time.time()
        summary = run_backfill(
            sfn=aws.client("stepfunctions"),
            s3=aws.s3,
            table=ResultsTable(aws.outputs["ResultsTableName"], aws.client("dynamodb")),
            state_machine_arn=aws.outputs["BackfillStateMachineArn"],
            request=BackfillRequest(bucket=bucket, prefix="uploads/"),
            suffix=aws.stack.parameters["UploadSuffix"],
            timeout_s=timeout_s,
        )
        results = {r.key: r for r in aws.results() if r.key in keys}
        print_table(out, dict.fromkeys(keys, begun), results)
        print("\n" + render(summary), file=out)
        missing = sorted(set(keys) - set(results))
        print(f"\n{len(results)}/{len(keys)} objects have a result item; "
              f"{time.perf_counter() - started:.1f} s in all.", file=out)
        if missing or not summary.complete:
            print(f"no result for: {', '.join(missing) or '-'}; execution {summary.status}", file=out)
            return 1
        return 0
