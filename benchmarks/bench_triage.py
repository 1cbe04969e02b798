#!/usr/bin/env python3
"""Triage latency: the cascade's tag and rule stages in-process, and the real TriageFunction handler.

    python benchmarks/bench_triage.py [--records 10000] [--invocations 300] [--skip-handler]

1. In-process: LocalPipeline(until=RULES) over dev.jsonl repeated to ~10k records; per-record latency
   (p50/p95/p99 in microseconds) and records per second.
2. Handler: functions/triage/app.py run by the embedded AWS's LocalFunction, called directly with S3
   events for objects already uploaded (S3 head/get and DynamoDB put go to moto over loopback HTTP, so
   this measures handler + boto3 + moto, not AWS). The first call is the cold start (module import,
   settings, taxonomy, boto3 clients). Objects are uploaded outside the notification prefix so no
   asynchronous invocation warms the function first or competes with the measured calls.
3. Reference, in the same run: one MiniLM embedding call per record (the embedding stage's encoder,
   graph and threads as settings.yaml names them, on the text that stage builds from the same records).
   Both triage figures are also reported as a ratio to it (`vs_embedding_call`): the absolute times
   differ 3-5x between machines, the ratio much less.

Writes benchmarks/results/triage.json (with the CPU model and flags in `meta`).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from common import DEV_DATA, REPO, dev_records, percentiles, ratio, stdout_to_devnull, table, write_result

from gifcat.config import load_settings
from gifcat.domain.model import StageName, Status
from gifcat.domain.taxonomy import load_taxonomy
from gifcat_tooling.pipeline import LocalPipeline


def bench_in_process(records: list[Any], target: int) -> dict[str, Any]:
    settings = load_settings()
    taxonomy = load_taxonomy(settings.taxonomy)
    items = [r.item() for r in records]
    repeat = max(1, round(target / len(items)))
    work = items * repeat
    with LocalPipeline(settings, taxonomy, until=StageName.RULES) as pipeline:
        for item in items[:50]:  # warm-up: regex caches, pydantic validators
            pipeline.classify(item)
        samples_us: list[float] = []
        decided = 0
        gc.collect()
        started = time.perf_counter()
        for item in work:
            t0 = time.perf_counter_ns()
            result = pipeline.classify(item)
            samples_us.append((time.perf_counter_ns() - t0) / 1000.0)
            decided += result.status is Status.CLASSIFIED
        wall = time.perf_counter() - started
    pct = {k: round(v, 1) for k, v in percentiles(samples_us).items()}
    return {
        "records": len(work),
        "distinct": len(items),
        "decided_share": round(decided / len(work), 4),
        "latency_us": {**pct, "mean": round(sum(samples_us) / len(samples_us), 1)},
        "throughput_rps": round(len(work) / wall, 1),
        "wall_s": round(wall, 3),
    }


def bench_embedding_call(records: list[Any], repeat: int = 2) -> dict[str, Any]:
    """The reference: one MiniLM call per record, as the embedding stage makes it."""
    from gifcat.adapters.cpus import thread_count
    from gifcat.adapters.embeddings.artefacts import locate_minilm, models_dir
    from gifcat.adapters.embeddings.factory import load_text_encoder
    from gifcat.domain.stages.embedding import EmbeddingOptions, item_text

    options = load_settings().options("embedding", EmbeddingOptions)
    model, threads = options.text_model, thread_count(options.threads)  # "auto" resolved here
    files = locate_minilm(models_dir())
    encoder = load_text_encoder(files, options)
    texts = [item_text(r.title, r.tags, r.description, frozenset()) for r in records]
    for text in texts[:20]:  # warm-up: onnxruntime allocates its arenas on the first calls
        encoder.encode_one(text)
    samples_us: list[float] = []
    for _ in range(repeat):
        for text in texts:
            t0 = time.perf_counter_ns()
            encoder.encode_one(text)
            samples_us.append((time.perf_counter_ns() - t0) / 1000.0)
    pct = {k: round(v, 1) for k, v in percentiles(samples_us).items()}
    return {"model": files.identity_of(model), "threads": threads, "calls": len(samples_us),
            "latency_us": {**pct, "mean": round(sum(samples_us) / len(samples_us), 1)}}


def s3_event(bucket: str, key: str, size: int) -> dict[str, Any]:
    return {
        "Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-01-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/"), "size": size}},
        }]
    }


def bench_handler(records: list[Any], invocations: int, pool: int = 40) -> dict[str, Any]:
    from gifcat_tooling.local.aws import EmbeddedAws
    from gifcat_tooling.local.demo import draw_gif, upload

    settings = load_settings()
    taxonomy = load_taxonomy(settings.taxonomy)
    # Only records triage decides: the handler then does head + get + PutItem and starts no execution,
    # so the measurement is the triage path and nothing of the state machine runs behind it.
    with LocalPipeline(settings, taxonomy, until=StageName.RULES) as pipeline:
        decided = [r for r in records if pipeline.classify(r.item()).status is Status.CLASSIFIED][:pool]
    body = draw_gif("bench")
    with EmbeddedAws(REPO, workers=1, containers_per_function=1) as aws:
        bucket = aws.outputs["UploadsBucketName"]
        events = []
        for i, r in enumerate(decided):
            key = f"bench/{i:04d} {r.id}.gif"  # outside uploads/: no S3 notification fires
            meta = {"title": r.title, "tags": r.tags, "description": r.description}
            upload(aws.s3, bucket, key, body, meta)
            events.append(s3_event(bucket, key, len(body)))
        fn = aws.runner.functions[aws.stack.physical_name("TriageFunction")]
        assert fn.cold_starts == 0
        t0 = time.perf_counter()
        result, errored = fn.invoke(events[0])
        cold_ms = (time.perf_counter() - t0) * 1000.0
        if errored:
            raise SystemExit(f"TriageFunction failed: {result}")
        warm_ms: list[float] = []
        errors = 0
        statuses: dict[str, int] = {}
        for i in range(invocations):
            t0 = time.perf_counter()
            result, errored = fn.invoke(events[i % len(events)])
            warm_ms.append((time.perf_counter() - t0) * 1000.0)
            errors += errored
            if not errored:
                for o in result["outcomes"]:
                    statuses[o["status"]] = statuses.get(o["status"], 0) + 1
    pct = {k: round(v, 2) for k, v in percentiles(warm_ms).items()}
    return {
        "cold_start_ms": round(cold_ms, 1),
        "warm_ms": {**pct, "mean": round(sum(warm_ms) / len(warm_ms), 2)},
        "invocations": invocations,
        "distinct_objects": len(events),
        "errors": errors,
        "outcomes": statuses,
        # The benchmark process has gifcat, pydantic and boto3 imported already: the fresh-process
        # figure is bench_coldstart.py's.
        "note": "handler + boto3 + moto over loopback, one container, sequential calls; "
        "cold start measured in an already-warm process",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dev", type=Path, default=DEV_DATA)
    parser.add_argument("--records", type=int, default=10_000, help="in-process records (dev.jsonl repeated)")
    parser.add_argument("--invocations", type=int, default=300, help="warm handler invocations")
    parser.add_argument("--skip-handler", action="store_true")
    args = parser.parse_args(argv)

    records = dev_records(args.dev)
    out: dict[str, Any] = {"in_process": bench_in_process(records, args.records)}
    if not args.skip_handler:
        with stdout_to_devnull():
            out["handler"] = bench_handler(records, args.invocations)
    ref = out["embedding_call"] = bench_embedding_call(records)
    ref_lat = ref["latency_us"]
    ip_lat = out["in_process"]["latency_us"]
    out["in_process"]["vs_embedding_call"] = {
        q: ratio(ip_lat[q], ref_lat[q], 4) for q in ("p50", "p99", "mean")
    }
    if "handler" in out:
        warm = out["handler"]["warm_ms"]
        out["handler"]["vs_embedding_call"] = {
            q: ratio(warm[q] * 1000.0, ref_lat[q], 2) for q in ("p50", "p95", "mean")
        }

    ip = out["in_process"]
    lat = ip["latency_us"]
    ref_note = f"{ref['model']}, {ref['threads']} threads"
    rows = [["triage in-process (µs/record)", lat["p50"], lat["p95"], lat["p99"],
             f"{ip['throughput_rps']:.0f} rec/s",
             f"{ip['vs_embedding_call']['p50']}x",
             f"{ip['records']} records, {ip['decided_share']:.0%} decided"]]
    if "handler" in out:
        h = out["handler"]
        w = h["warm_ms"]
        rows.append(["TriageFunction warm (ms/invoke)", w["p50"], w["p95"], w["p99"],
                     f"{1000 / w['mean']:.0f} inv/s", f"{h['vs_embedding_call']['p50']}x",
                     f"cold start {h['cold_start_ms']:.0f} ms (warm process), {h['errors']} errors"])
    rows.append(["reference: embedding call (µs/record)", ref_lat["p50"], ref_lat["p95"], ref_lat["p99"],
                 f"{1e6 / ref_lat['mean']:.0f} rec/s", "1x", ref_note])
    print(table(["triage", "p50", "p95", "p99", "throughput", "p50 vs embedding call", "notes"], rows))
    print(f"wrote {write_result('triage', out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
