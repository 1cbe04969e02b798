#!/usr/bin/env python3
"""End-to-end throughput of the local pipeline: N uploads through the embedded AWS (real S3
notifications -> TriageFunction -> DynamoDB, or the state machine -> embed -> LLM -> DynamoDB).

    python benchmarks/bench_pipeline.py [--n 100] [--n 1000] [--workers 4] [--containers 4]
                                        [--llm fake|local] [--profile] [--faults]

Metadata cycles over dev.jsonl; GIF bodies are a few pre-drawn gifcat_tooling.local.demo.draw_gif images.
The clock runs from the first put to the moment every key has a finished result (not "pending");
keys without one by --timeout are "lost". By default the LLM is tests/support/fake_openai.py's scripted
server answering at once, so the number is the pipeline's; --llm local uses the real local Gemma server.
A warm-up of a few uploads (one per path) runs first unless --no-warmup, so the figure is the warm
pipeline's; cold starts are counted either way.

--profile samples every thread's stack (sys._current_frames, every 10 ms) during the measured run and
prints where the threads are: the leaf frames and the busiest repo/moto functions, by thread role.

--faults runs the pipeline twice in one invocation, clean and then hostile, and reports both rates:
in the hostile run every tenth upload is a hostile case (a sidecar nested 30,000 deep, bogus RFC 2047
metadata, a 1x1 GIF with 4000x4000 frames, a 64 KB emoji sidecar, a BOM sidecar, control characters,
a re-upload of identical bytes, new metadata on identical bytes, not a GIF, an empty object), and the
LLM endpoint (gifcat_tooling.local.llm_endpoint) answers 10% of calls with 429, 10% with 500 and leaves 5%
hanging past the client's timeout. It checks that no key is lost, none stays pending, and every
re-uploaded key's result describes its last upload (ETag, title).

Reference, measured in the same run since absolute rates differ 3-5x between machines: before the
measured uploads, the same kind of upload (body and metadata) is put min(N, 200) times outside uploads/,
where no notification fires, into the same embedded AWS: the rate at which it stores plain uploads.
`vs_plain_puts` is GIFs/s as a ratio to it.

Writes benchmarks/results/pipeline_n<N>.json (pipeline_faults_n<N>.json with --faults), with the CPU
model and flags in `meta`.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime
from types import FrameType
from typing import Any

from common import DEV_DATA, REPO, dev_records, percentiles, ratio, stdout_to_devnull, table, write_result

from gifcat.adapters.embeddings.artefacts import models_dir
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import draw_gif, upload
from gifcat_tooling.local.hostile import deep_json, emoji_sidecar, huge_frame_gif

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
                    interesting = ("moto/", "gifcat/", "gifcat_tooling/", "functions/", "botocore/endpoint")
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
LLM_FAULTS = {"429": 0.10, "500": 0.10, "hang": 0.05}


def llm_endpoint(
    stack: ExitStack, kind: str, faults: bool = False
) -> tuple[str, str, str, collections.Counter[str] | None]:
    """(base URL, model, description, the calls served by kind when the endpoint counts them)."""
    if faults:
        from gifcat_tooling.local.llm_endpoint import MODEL, HostileLlm

        hostile = stack.enter_context(HostileLlm(faults=LLM_FAULTS, hang_s=60.0))
        shares = ", ".join(f"{k} {v:.0%}" for k, v in LLM_FAULTS.items())
        return hostile.base_url, MODEL, f"scripted endpoint with faults ({shares})", hostile.counts
    if kind == "local":
        from gifcat.config import load_settings
        from gifcat_tooling.llama_server import local_llm_endpoint

        ep = stack.enter_context(local_llm_endpoint(load_settings()))
        return ep.base_url, ep.model, "local llama-cpp server (Gemma 3 270M)", None
    from tests.support.fake_openai import DEFAULT_MODEL, FakeOpenAI

    server = stack.enter_context(FakeOpenAI())
    return server.base_url, DEFAULT_MODEL, "scripted FakeOpenAI (instant answers)", None


def metadata_of(record: Any) -> dict[str, Any]:
    return {"title": record.title, "tags": record.tags, "description": record.description}


class ResultPoller:
    """Finished results by key, cheaply: one boto3 client (EmbeddedAws.client builds a new one per call,
    ~20 ms of CPU each) and a projected scan (moto's response serialiser is slow on whole result items)."""

    def __init__(self, aws: EmbeddedAws) -> None:
        self._ddb = aws.client("dynamodb")
        self._table = aws.outputs["ResultsTableName"]

    def scan(self, keys: set[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        pages = self._ddb.get_paginator("scan").paginate(
            TableName=self._table, ConsistentRead=True,
            ProjectionExpression="#k, #s, #u, decided_by, etag, title",
            ExpressionAttributeNames={"#k": "key", "#s": "status", "#u": "updated_at"},
        )
        for page in pages:
            for raw in page["Items"]:
                item = {name: next(iter(value.values())) for name, value in raw.items()}
                if item.get("key") in keys:
                    out[item["key"]] = item
        return out

    def finished(
        self, keys: set[str], last: dict[str, tuple[str, str | None]] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Keys whose item is finished and, for keys in `last`, describes that (etag, title) upload."""
        out = {}
        for key, item in self.scan(keys).items():
            if item.get("status") == "pending":
                continue
            if last and key in last and not describes_last(item, last[key]):
                continue
            out[key] = item
        return out


def describes_last(item: dict[str, Any], last: tuple[str, str | None]) -> bool:
    etag, title = last
    return item.get("etag") == etag and (title is None or item.get("title", "") == title)


# -- hostile uploads (--faults) -------------------------------------------------------------------
HOSTILE = (
    "deep-json", "bogus-rfc2047", "huge-frames", "emoji-sidecar", "bom-sidecar", "control-chars",
    "reupload-identical", "reupload-new-metadata", "not-a-gif", "empty",
)


def put_hostile(s3: Any, bucket: str, kind: str, key: str, earlier: tuple[str, bytes, dict[str, Any]] | None,
                huge: bytes) -> tuple[str, bytes, dict[str, Any] | None]:
    """One hostile upload; returns (key, body, user metadata or None when a sidecar carries it)."""
    body = draw_gif(kind)
    if kind == "deep-json":
        upload(s3, bucket, key, body, None, "sidecar", deep_json())
        return key, body, None
    if kind == "bogus-rfc2047":
        s3.put_object(Bucket=bucket, Key=key, Body=body,
                      Metadata={"title": "=?x-klingon?Q?Qapla=27?=", "tags": "=?utf-8?B?@@not base64@@?="})
        return key, body, None
    if kind == "huge-frames":
        meta = {"title": "Hmm", "tags": ["#reaction"]}
        upload(s3, bucket, key, huge, meta)
        return key, huge, meta
    if kind == "emoji-sidecar":
        upload(s3, bucket, key, body, None, "sidecar", emoji_sidecar())
        return key, body, None
    if kind == "bom-sidecar":
        upload(s3, bucket, key, body, None, "sidecar",
               b"\xef\xbb\xbf" + json.dumps({"title": "Kiss", "tags": ["kiss", "love"]}).encode())
        return key, body, None
    if kind == "control-chars":
        control = {"title": "Pizza\x00 GIF\x07", "tags": ["pizza\x1b[31m", "\x00"],
                   "description": "a\r\n\x0bb"}
        upload(s3, bucket, key, body, None, "sidecar", json.dumps(control).encode())
        return key, body, None
    if kind in ("reupload-identical", "reupload-new-metadata") and earlier is not None:
        key, body, meta = earlier
        if kind == "reupload-new-metadata":
            meta = {"title": f"{meta.get('title', '')} (renamed)", "tags": ["#reaction"]}
        upload(s3, bucket, key, body, meta)
        return key, body, meta
    if kind == "not-a-gif":
        s3.put_object(Bucket=bucket, Key=key, Body=b"%PDF-1.7 not a gif")
        return key, b"%PDF-1.7 not a gif", None
    s3.put_object(Bucket=bucket, Key=key, Body=b"")
    return key, b"", None


def run(n: int, workers: int, containers: int, llm: str, timeout_s: float, warmup: bool,
        profile: bool, poll_s: float, uploaders: int = 1, faults: bool = False) -> dict[str, Any]:
    records = dev_records(DEV_DATA)
    bodies = [draw_gif(f"bench {i}") for i in range(BODIES)]
    huge = huge_frame_gif() if faults else b""
    with ExitStack() as stack:
        base_url, model, llm_kind, llm_calls = llm_endpoint(stack, llm, faults)
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
        # The reference: plain uploads into the same embedded S3, outside uploads/ (no notification).
        ref_n = min(n, 200)
        t = time.perf_counter()
        for i in range(ref_n):
            r = records[i % len(records)]
            upload(s3, bucket, f"bench-ref/{i:05d}.gif", bodies[i % BODIES], metadata_of(r))
        plain_put_per_s = ref_n / (time.perf_counter() - t)
        cold_before = {name: fn.cold_starts for name, fn in aws.runner.functions.items()}

        keys_in_order = [f"uploads/bench/{i:05d} {records[i % len(records)].id}.gif" for i in range(n)]
        kinds: collections.Counter[str] = collections.Counter()
        hostile_at: dict[int, str] = {}
        if faults:  # every tenth upload is hostile, the kinds in turn
            for i in range(9, n, 10):
                kind = hostile_at[i] = HOSTILE[(i // 10) % len(HOSTILE)]
                kinds[kind] += 1
                # A re-upload puts an ordinary upload of a moment ago again; the others get their own key.
                own = f"uploads/bench/{i:05d} {kind}.gif"
                keys_in_order[i] = keys_in_order[i - 5] if kind.startswith("reupload") else own
        keys = set(keys_in_order)
        # The (etag, title) each key's result must describe: its last upload (re-uploads reuse a key).
        last: dict[str, tuple[str, str | None]] = {}
        put_lock = threading.Lock()
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
                at = time.time()
                if i in hostile_at:
                    j = i - 5  # an ordinary upload of a moment ago
                    earlier = (keys_in_order[j], bodies[j % BODIES], metadata_of(records[j % len(records)]))
                    key, body, meta = put_hostile(s3, bucket, hostile_at[i], key, earlier, huge)
                else:
                    body, meta = bodies[i % BODIES], metadata_of(records[i % len(records)])
                    upload(s3, bucket, key, body, meta)
                with put_lock:  # re-uploads: the latest put of a key is the one its result must describe
                    put_at[key] = at
                    last[key] = (hashlib.md5(body).hexdigest(), (meta or {}).get("title") if meta else None)

            # --uploaders > 1 offers more load than one thread can: the pipeline then queues, and on one
            # process the extra threads cost more CPU per GIF (GIL contention). See docs/results/README.md.
            with ThreadPoolExecutor(max_workers=uploaders) as pool:
                list(pool.map(put, range(n), keys_in_order))
            put_s = time.perf_counter() - t0
            done: dict[str, dict[str, Any]] = {}
            deadline = time.monotonic() + timeout_s
            # Poll sparingly: every scan is work for the same moto process that runs the pipeline.
            while time.monotonic() < deadline:
                done = poller.finished(keys, last if faults else None)
                now = time.perf_counter() - t0
                for k in done:
                    seen_at.setdefault(k, now)
                if len(done) == len(keys):
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
        span_s = last_done if len(done) == len(keys) and last_done > 0 else elapsed_s
        final = poller.scan(keys)
        pending = sum(1 for r in final.values() if r.get("status") == "pending")
        stale = sum(1 for k, r in final.items() if k in last and not describes_last(r, last[k]))
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
            "llm_calls": dict(llm_calls) if llm_calls is not None else None,
            "warmup_s": round(warm_s, 2),
            "put_s": round(put_s, 2),
            "put_rate_per_s": round(n / put_s, 1) if put_s else None,
            "elapsed_s": round(span_s, 2),
            # Uploads per second (re-uploads count: each went through the pipeline).
            "gifs_per_s": round((n if len(done) == len(keys) else len(done)) / span_s, 2) if span_s else 0.0,
            "reference": {"plain_puts": ref_n, "plain_put_per_s": round(plain_put_per_s, 1)},
            "keys": len(keys),
            "finished": len(done),
            "lost": len(keys) - len(done),
            "lost_keys": sorted(keys - set(done))[:20],
            "pending_at_end": pending,
            "stale_at_end": stale,
            "hostile_uploads": dict(kinds),
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
        out["vs_plain_puts"] = ratio(out["gifs_per_s"], plain_put_per_s, 3)
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
    parser.add_argument("--faults", action="store_true",
                        help="a clean run, then one with hostile uploads and a faulty LLM (see above)")
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
        runs: list[tuple[str, bool]] = [("clean", False), ("faults", True)] if args.faults else [("", False)]
        measured: dict[str, dict[str, Any]] = {}
        for label, faults in runs:
            with ExitStack() as quiet:
                if not args.verbose:
                    quiet.enter_context(stdout_to_devnull())
                # A scan costs the moto process ~N x 0.1 ms of CPU (17% of all CPU at N=1000, every 0.5 s):
                # poll less as N grows. The finish time comes from updated_at: the interval does not skew it.
                poll = args.poll if args.poll is not None else min(2.0, max(0.25, n / 500))
                r = run(n, args.workers, args.containers, args.llm, args.timeout, not args.no_warmup,
                        args.profile, poll, args.uploaders, faults)
            measured[label] = r
            results.append(r)
            print(f"{label or 'run'}:" if args.faults else "", end="\n" if args.faults else "")
            print(table(
                ["N", "GIFs/s", "vs plain puts", "elapsed s", "put/s", "lost", "pending", "stale", "failed",
                 "p50 ms", "p95 ms", "executions", "LLM"],
                [[r["n"], r["gifs_per_s"], f"{r['vs_plain_puts']}x", r["elapsed_s"], r["put_rate_per_s"],
                  r["lost"], r["pending_at_end"], r["stale_at_end"], r["failed"], r["latency_ms"]["p50"],
                  r["latency_ms"]["p95"], r["state_machine_executions"], r["llm"]]],
            ))
            print(f"decided_by {r['decided_by']}  statuses {r['statuses']}  "
                  f"cold starts {r['cold_starts_during_run']}  CPU {r['cpu_cores_used']} cores, "
                  f"{r['cpu_ms_per_gif']} ms/GIF")
            if r.get("llm_calls"):
                print(f"LLM endpoint served {r['llm_calls']}  hostile uploads {r['hostile_uploads']}")
            if "profile" in r:
                print_profile(r["profile"])
        if args.faults:
            clean, hostile = measured["clean"], measured["faults"]
            summary = {
                "n": n,
                "clean_gifs_per_s": clean["gifs_per_s"],
                "faults_gifs_per_s": hostile["gifs_per_s"],
                "ratio": (round(hostile["gifs_per_s"] / clean["gifs_per_s"], 2)
                          if clean["gifs_per_s"] else None),
                "clean": clean,
                "faults": hostile,
            }
            path = write_result(f"pipeline_faults_n{n}", summary)
            print(f"\nclean {summary['clean_gifs_per_s']} GIFs/s, with faults {summary['faults_gifs_per_s']} "
                  f"GIFs/s ({summary['ratio']}x)")
        else:
            path = write_result(f"pipeline_n{n}", measured[""])
        print(f"wrote {path}")
    ok = all(r["lost"] == 0 and r["pending_at_end"] == 0 and r["stale_at_end"] == 0 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
