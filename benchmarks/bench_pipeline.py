#!/usr/bin/env python3
"""End-to-end throughput of the local pipeline: N uploads through the embedded AWS (real S3
notifications -> TriageFunction -> DynamoDB, or the state machine -> embed -> LLM -> DynamoDB).

    python benchmarks/bench_pipeline.py [--n 100] [--n 1000] [--workers 4] [--containers 4]
                                        [--llm fake|local] [--profile]

Metadata cycles over dev.jsonl; GIF bodies are a few pre-drawn gifcat.local.demo.draw_gif images.
The clock runs from the first put to the moment every key has a finished result (not "pending");
keys without one by --timeout are "lost". By default the LLM is tests/support/fake_openai.py's scripted
server answering at once, so the number is the pipeline's; --llm local uses the real local Gemma server.
A warm-up of a few uploads (one per path) runs first unless --no-warmup, so the figure is the warm
pipeline's; cold starts are counted either way.

--profile samples every thread's stack (sys._current_frames, every 10 ms) during the measured run and
prints where the threads are: the leaf frames and the busiest repo/moto functions, by thread role.

Writes benchmarks/results/pipeline_n<N>.json.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from types import FrameType
from typing import Any

from common import DEV_DATA, REPO, dev_records, percentiles, stdout_to_devnull, table, write_result

from gifcat.embeddings.artefacts import models_dir
from gifcat.local.aws import EmbeddedAws
from gifcat.local.demo import draw_gif, upload

BODIES = 6  # distinct GIF bodies, reused: drawing is not what is measured


# -- a tiny sampling profiler --------------------------------------------------------------------
class Sampler:
    """Samples all threads' stacks; counts leaf frames and (inclusive) interesting functions.

    Wall-clock sampling on purpose: a thread waiting on a lock, a socket or time.sleep shows up, which a
    CPU profiler would hide, and with the GIL shared by ~100 threads the waits are the story.
    """

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.samples = 0
        self.leaf: collections.Counter[str] = collections.Counter()
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.roles: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @staticmethod
    def _where(frame: FrameType) -> str:
        code = frame.f_code
        path = code.co_filename
        for marker in ("site-packages/", "/work/main/", "/lib/python3"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        return f"{path}:{code.co_name}"

    def _role(self, frames: list[FrameType]) -> str:
        names = " ".join(self._where(f) for f in frames)
        for needle, role in (
            ("lambda_runner.py:_work", "async-invoke worker"),
            ("execution_worker.py", "sfn execution"),
            ("program.py", "sfn execution"),
            ("socketserver.py:process_request_thread", "moto/http request"),
            ("serve_forever", "http server loop"),
            ("bench_pipeline.py:main", "benchmark main"),
        ):
            if needle in names:
                return role
        return "other"

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.wait(self.interval_s):
            self.samples += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack: list[FrameType] = []
                f: FrameType | None = frame
                while f is not None:
                    stack.append(f)
                    f = f.f_back
                role = self._role(stack)
                self.roles[role] += 1
                self.leaf[f"[{role}] {self._where(stack[0])}"] += 1
                seen = set()
                for fr in stack:
                    w = self._where(fr)
                    interesting = ("moto/", "gifcat/", "functions/", "botocore/endpoint")
                    if w in seen or not any(k in w for k in interesting):
                        continue
                    seen.add(w)
                    self.inclusive[w] += 1

    def report(self, top: int = 15) -> dict[str, Any]:
        n = max(self.samples, 1)
        return {
            "samples": self.samples,
            "interval_s": self.interval_s,
            "threads_by_role_avg": {k: round(v / n, 1) for k, v in self.roles.most_common()},
            "leaf_top": [[k, round(v / n, 2)] for k, v in self.leaf.most_common(top)],
            "inclusive_top": [[k, round(v / n, 2)] for k, v in self.inclusive.most_common(top)],
        }


# -- the run ---------------------------------------------------------------------------------------
def llm_endpoint(stack: ExitStack, kind: str) -> tuple[str, str, str]:
    if kind == "local":
        from gifcat.config import load_settings
        from gifcat.llm.local_server import local_llm_endpoint

        ep = stack.enter_context(local_llm_endpoint(load_settings()))
        return ep.base_url, ep.model, "local llama-cpp server (Gemma 3 270M)"
    from tests.support.fake_openai import DEFAULT_MODEL, FakeOpenAI

    server = stack.enter_context(FakeOpenAI())
    return server.base_url, DEFAULT_MODEL, "scripted FakeOpenAI (instant answers)"


def metadata_of(record: Any) -> dict[str, Any]:
    return {"title": record.title, "tags": record.tags, "description": record.description}


class ResultPoller:
    """Finished results by key, cheaply: one boto3 client (EmbeddedAws.client builds a new one per call,
    ~20 ms of CPU each) and a projected scan (moto's response serialiser is slow on whole result items)."""

    def __init__(self, aws: EmbeddedAws) -> None:
        self._ddb = aws.client("dynamodb")
        self._table = aws.outputs["ResultsTableName"]

    def finished(self, keys: set[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        pages = self._ddb.get_paginator("scan").paginate(
            TableName=self._table, ConsistentRead=True,
            ProjectionExpression="#k, #s, #u, decided_by",
            ExpressionAttributeNames={"#k": "key", "#s": "status", "#u": "updated_at"},
        )
        for page in pages:
            for raw in page["Items"]:
                item = {name: next(iter(value.values())) for name, value in raw.items()}
                if item.get("key") in keys and item.get("status") != "pending":
                    out[item["key"]] = item
        return out


def run(n: int, workers: int, containers: int, llm: str, timeout_s: float, warmup: bool,
        profile: bool, poll_s: float, uploaders: int = 1) -> dict[str, Any]:
    records = dev_records(DEV_DATA)
    bodies = [draw_gif(f"bench {i}") for i in range(BODIES)]
    with ExitStack() as stack:
        base_url, model, llm_kind = llm_endpoint(stack, llm)
        aws = stack.enter_context(EmbeddedAws(
            REPO, parameters={"LlmBaseUrl": base_url, "LlmModel": model},
            function_env={"GIFCAT_MODELS_DIR": str(models_dir())},
            workers=workers, containers_per_function=containers,
        ))
        bucket = aws.outputs["UploadsBucketName"]
        s3 = aws.s3
        warm_s = 0.0
        poller = ResultPoller(aws)
        if warmup:
            # dev.jsonl's first records: some decided by triage, some not, so triage, embed and escalate warm.
            t = time.perf_counter()
            keys = set()
            for i, r in enumerate(records[:12]):
                key = f"uploads/warmup/{i:03d}.gif"
                upload(s3, bucket, key, bodies[i % BODIES], metadata_of(r))
                keys.add(key)
            deadline = time.monotonic() + timeout_s
            while len(poller.finished(keys)) < len(keys) and time.monotonic() < deadline:
                time.sleep(0.2)
            warm_s = time.perf_counter() - t
        cold_before = {name: fn.cold_starts for name, fn in aws.runner.functions.items()}

        keys_in_order = [f"uploads/bench/{i:05d} {records[i % len(records)].id}.gif" for i in range(n)]
        keys = set(keys_in_order)
        put_at: dict[str, float] = {}
        seen_at: dict[str, float] = {}
        sampler = Sampler() if profile else None
        with ExitStack() as prof:
            if sampler:
                prof.enter_context(sampler)
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            wall0 = time.time()
            def put(i: int, key: str) -> None:
                put_at[key] = time.time()
                upload(s3, bucket, key, bodies[i % BODIES], metadata_of(records[i % len(records)]))

            # --uploaders > 1 offers more load than one thread can: the pipeline then queues, and on one
            # process the extra threads cost more CPU per GIF (GIL contention). See README "Results".
            with ThreadPoolExecutor(max_workers=uploaders) as pool:
                list(pool.map(put, range(n), keys_in_order))
            put_s = time.perf_counter() - t0
            done: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + timeout_s
            # Poll sparingly: every scan is work for the same moto process that runs the pipeline.
            while time.monotonic() < deadline:
                done = poller.finished(keys)
                now = time.perf_counter() - t0
                for k in done:
                    seen_at.setdefault(k, now)
                if len(done) == n:
                    break
                time.sleep(poll_s)
            elapsed_s = time.perf_counter() - t0
            cpu_s = time.process_time() - cpu0

        # Finish time per key from the item's updated_at (seconds resolution at worst: fine at N>=100).
        latencies, last_done = [], 0.0
        for k, item in done.items():
            try:
                at = datetime.fromisoformat(item["updated_at"]).timestamp()
            except (KeyError, TypeError, ValueError):
                continue
            latencies.append((at - put_at[k]) * 1000.0)
            last_done = max(last_done, at - wall0)
        span_s = last_done if len(done) == n and last_done > 0 else elapsed_s
        statuses = collections.Counter(r.get("status") for r in done.values())
        decided_by = collections.Counter(r.get("decided_by") or "-" for r in done.values())
        cold = {name.rsplit("-", 1)[-1]: fn.cold_starts - cold_before[name]
                for name, fn in aws.runner.functions.items()}
        execs = len(aws.client("stepfunctions").list_executions(
            stateMachineArn=aws.outputs["StateMachineArn"], maxResults=1000)["executions"])
        out: dict[str, Any] = {
            "n": n,
            "workers": workers,
            "uploaders": uploaders,
            "containers_per_function": containers,
            "llm": llm_kind,
            "warmup_s": round(warm_s, 2),
            "put_s": round(put_s, 2),
            "put_rate_per_s": round(n / put_s, 1) if put_s else None,
            "elapsed_s": round(span_s, 2),
            "gifs_per_s": round(len(done) / span_s, 2) if span_s else 0.0,
            "finished": len(done),
            "lost": n - len(done),
            "failed": statuses.get("failed", 0),
            "statuses": dict(statuses),
            "decided_by": dict(decided_by),
            "state_machine_executions": execs,
            "latency_ms": {k: round(v) for k, v in percentiles(latencies).items()},
            # One process runs moto, the handlers and the state machine: ~1.0 means the GIL is the ceiling.
            "cpu_cores_used": round(cpu_s / elapsed_s, 2) if elapsed_s else None,
            "cpu_ms_per_gif": round(cpu_s * 1000 / max(len(done), 1), 1),
            "cold_starts_during_run": cold,
            "async_failures": len(aws.runner.async_failures),
            "timeout_s": timeout_s,
            "poll_s": poll_s,
        }
        if sampler:
            out["profile"] = sampler.report()
        return out


def print_profile(profile: dict[str, Any]) -> None:
    print(f"\nprofile: {profile['samples']} samples; average threads by role:")
    for role, count in profile["threads_by_role_avg"].items():
        print(f"  {count:6.1f}  {role}")
    print("\nleaf frames (average threads there):")
    for where, v in profile["leaf_top"]:
        print(f"  {v:6.2f}  {where}")
    print("\nrepo/moto/botocore functions on the stack (average threads inside):")
    for where, v in profile["inclusive_top"]:
        print(f"  {v:6.2f}  {where}")


def _without_n(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--n":
            skip = True
        elif not arg.startswith("--n="):
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, action="append", help="uploads (repeatable; default 100)")
    parser.add_argument("--workers", type=int, default=4, help="async-invocation workers (S3 -> triage)")
    parser.add_argument("--containers", type=int, default=4, help="warm containers per function")
    parser.add_argument("--llm", choices=["fake", "local"], default="fake")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every result")
    parser.add_argument("--poll", type=float, help="seconds between result scans (default: N/500, 0.25..2)")
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--uploaders", type=int, default=1, help="threads putting objects concurrently")
    parser.add_argument("--verbose", action="store_true", help="keep the handlers' log lines on stdout")
    args = parser.parse_args(argv)

    sizes = args.n or [100]
    if len(sizes) > 1:
        # One process per size: moto's backends are process-global, so a second EmbeddedAws in the same
        # process finds the first one's stack (CreateTable: ResourceInUseException). Fresh is fairer too.
        rest = _without_n(argv if argv is not None else sys.argv[1:])
        codes = [subprocess.run([sys.executable, __file__, *rest, "--n", str(n)], check=False).returncode
                 for n in sizes]
        return max(codes)
    results = []
    for n in sizes:
        with ExitStack() as quiet:
            if not args.verbose:
                quiet.enter_context(stdout_to_devnull())
            # A scan costs the moto process ~N x 0.1 ms of CPU (it was 17% of all CPU at N=1000, every 0.5 s):
            # poll less as N grows. The finish time comes from updated_at, so the interval does not skew it.
            poll = args.poll if args.poll is not None else min(2.0, max(0.25, n / 500))
            r = run(n, args.workers, args.containers, args.llm, args.timeout, not args.no_warmup,
                    args.profile, poll, args.uploaders)
        results.append(r)
        path = write_result(f"pipeline_n{n}", r)
        print(table(
            ["N", "GIFs/s", "elapsed s", "put/s", "lost", "failed", "p50 ms", "p95 ms", "executions", "LLM"],
            [[r["n"], r["gifs_per_s"], r["elapsed_s"], r["put_rate_per_s"], r["lost"], r["failed"],
              r["latency_ms"]["p50"], r["latency_ms"]["p95"], r["state_machine_executions"], r["llm"]]],
        ))
        print(f"decided_by {r['decided_by']}  statuses {r['statuses']}  "
              f"cold starts {r['cold_starts_during_run']}  CPU {r['cpu_cores_used']} cores, "
              f"{r['cpu_ms_per_gif']} ms/GIF")
        if "profile" in r:
            print_profile(r["profile"])
        print(f"wrote {path}")
    return 0 if all(r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
