"""`gifcat demo --scenario backfill`: the embedded AWS with the upload trigger off, the sample uploads
put into the bucket (nothing classifies them), then the backfill state machine over `uploads/`. Prints
the results table and the run's summary; exits 0 only when every object has a result item.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest.mock import patch


def run_backfill_demo(
    root: Path, out: Any = sys.stdout, timeout_s: float = 300.0, verbose: bool = False
) -> int:
    from gifcat.adapters.dynamodb import ResultsTable
    from gifcat.adapters.embeddings.artefacts import models_dir
    from gifcat.config import load_settings
    from gifcat_tooling.backfill import BackfillRequest, render, run_backfill
    from gifcat_tooling.llama_server import local_llm_endpoint, wants_local_server
    from gifcat_tooling.local.aws import EmbeddedAws
    from gifcat_tooling.local.demo import body_for, print_table, samples, upload

    started = time.perf_counter()
    settings = load_settings()
    quiet = {} if verbose else {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    function_env = {"GIFCAT_MODELS_DIR": str(models_dir()), **quiet}
    parameters: dict[str, str] = {}
    with ExitStack() as stack:
        stack.enter_context(patch.dict(os.environ, quiet))
        if wants_local_server(settings):
            print("starting the local LLM server (llama-cpp-python, Gemma 3 270M)...", file=out, flush=True)
            endpoint = stack.enter_context(local_llm_endpoint(settings))
            parameters = {"LlmBaseUrl": endpoint.base_url, "LlmModel": endpoint.model}
        print("starting the embedded AWS (upload trigger off) and deploying template.yaml...", file=out,
              flush=True)
        aws = stack.enter_context(
            EmbeddedAws(root, parameters=parameters, function_env=function_env, upload_trigger=False)
        )
        bucket = aws.outputs["UploadsBucketName"]
        keys = []
        for sample in samples():
            sidecar = b"{not json" if sample.get("kind") == "bad_sidecar" else None
            upload(aws.s3, bucket, sample["key"], body_for(sample), sample.get("metadata"),
                   sample.get("via", "metadata"), sidecar)
            keys.append(sample["key"])
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
