#!/usr/bin/env python3
"""A local backfill of N objects: the embedded AWS with the upload trigger off, N GIFs put under
`uploads/backfill/` (metadata cycling over dev.jsonl; every tenth as a sidecar, so the listing holds more
than N keys and more than one page for N >= 910), then the backfill state machine (a Distributed Map
in moto's interpreter) over the prefix.

    python benchmarks/bench_backfill.py [--n 1000] [--concurrency 10] [--llm fake|local]

The clock runs from StartExecution to the execution's end; the puts are not timed. "Lost" is a listed
GIF with no result item afterwards. By default the LLM is tests/support/fake_openai.py's scripted
server answering at once (the local Gemma would dominate: ~1-20 s a call on this machine under load),
so the figure is the pipeline's: listing, children, triage, embeddings, the LLM step's client, writes.

Writes benchmarks/results/backfill_n<N>.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from common import DEV_DATA, REPO, cpu_info, dev_records, stdout_to_devnull, write_result

from gifcat.adapters.dynamodb import ResultsTable
from gifcat.adapters.embeddings.artefacts import models_dir
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import draw_gif, upload
from gifcat_tooling.operations.backfill import BackfillRequest, render, run_backfill

BODIES = 6
PREFIX = "uploads/backfill/"


def run(n: int, concurrency: int, llm: str, timeout_s: float) -> dict[str, Any]:
    records = dev_records(DEV_DATA)
    bodies = [draw_gif(f"backfill {i}") for i in range(BODIES)]
    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    os.environ.update(quiet)
    with ExitStack() as stack:
        if llm == "local":
            from gifcat.config import load_settings
            from gifcat_tooling.llama_server import local_llm_endpoint

            ep = stack.enter_context(local_llm_endpoint(load_settings()))
            base_url, model, llm_kind = ep.base_url, ep.model, "local llama-cpp server (Gemma 3 270M)"
        else:
            from tests.support.fake_openai import DEFAULT_MODEL, FakeOpenAI, first_category

            server = stack.enter_context(FakeOpenAI())
            server.responder = first_category
            base_url, model = server.base_url, DEFAULT_MODEL
            llm_kind = "scripted FakeOpenAI (instant answers)"
        aws = stack.enter_context(EmbeddedAws(
            REPO, parameters={"LlmBaseUrl": base_url, "LlmModel": model},
            function_env={"GIFCAT_MODELS_DIR": str(models_dir()), **quiet},
            upload_trigger=False,
        ))
        bucket = aws.outputs["UploadsBucketName"]
        s3 = aws.s3

        def put(i: int) -> None:
            r = records[i % len(records)]
            meta = {"title": r.title, "tags": r.tags, "description": r.description}
            via = "sidecar" if i % 10 == 9 else "metadata"
            upload(s3, bucket, f"{PREFIX}{i:05d}.gif", bodies[i % BODIES], meta, via=via)

        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(put, range(n)))
        put_s = time.perf_counter() - t
        listed = sum(
            len(p.get("Contents", []))
            for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX)
        )
        assert not aws.results(), "the upload trigger is off: nothing should be classified yet"
        load_before = os.getloadavg()
        cpu0 = time.process_time()
        summary = run_backfill(
            sfn=aws.client("stepfunctions"), s3=s3,
            table=ResultsTable(aws.outputs["ResultsTableName"], aws.client("dynamodb")),
            state_machine_arn=aws.outputs["BackfillStateMachineArn"],
            request=BackfillRequest(bucket=bucket, prefix=PREFIX, max_concurrency=concurrency),
            timeout_s=timeout_s,
        )
        cpu_s = time.process_time() - cpu0
        load_after = os.getloadavg()
        items = [i for i in aws.results() if i.key.startswith(PREFIX)]
        stage_ms: dict[str, list[float]] = {}
        for item in items:
            for stage, ms in item.timings_ms.items():
                stage_ms.setdefault(stage, []).append(float(ms))
        return {
            "n": n,
            "listed_keys": listed,
            "concurrency": concurrency,
            "llm": llm_kind,
            "cpu_model": cpu_info()["model"],
            "put_s": round(put_s, 2),
            "summary": summary.as_dict(),
            "lost": len(summary.missing),
            "pending": sum(1 for i in items if i.status == "pending"),
            "objects_per_s": round(summary.rate, 2),
            "process_cpu_s": round(cpu_s, 1),
            "cpu_per_object_ms": round(1000 * cpu_s / max(n, 1), 1),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "decided_by": dict(Counter(str(i.decided_by or i.status) for i in items)),
            "stage_ms_mean": {k: round(sum(v) / len(v), 1) for k, v in stage_ms.items()},
            "_render": render(summary),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10, help="the map's MaxConcurrency")
    parser.add_argument("--llm", choices=["fake", "local"], default="fake")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)
    with stdout_to_devnull():
        result = run(args.n, args.concurrency, args.llm, args.timeout)
    text = result.pop("_render")
    print(text)
    print(f"lost {result['lost']}, pending {result['pending']}; {result['objects_per_s']} objects/s on "
          f"{result['cpu_model']} ({os.cpu_count()} CPUs), load {result['loadavg_before']} -> "
          f"{result['loadavg_after']}; {result['cpu_per_object_ms']} ms of CPU per object")
    path = write_result(f"backfill_n{args.n}", result)
    print(f"wrote {path}", file=sys.stderr)
    return 0 if result["lost"] == 0 and result["summary"]["complete"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
