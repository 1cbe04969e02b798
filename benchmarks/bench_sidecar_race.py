"""A GIF and its sidecar put close together, in either order: does every GIF end with a result made from
its sidecar? On the embedded AWS with the upload trigger on, N keys per scenario, one after another
(`--parallel` keys in flight at once; with more, the trigger's queue backs up and each GIF's event is
read after its sidecar is there, which hides the race this measures):

    a  the GIF (no metadata), then its sidecar at once
    b  the sidecar, then its GIF at once
    c  the GIF, then its sidecar 0 to 300 ms later
    d  both at once, from two threads
    e  a key with a result already (an upload without metadata), uploaded again with another GIF, then
       its sidecar at once

    python benchmarks/bench_sidecar_race.py [--n 100] [--parallel 1] [--scenarios abcde]

The sidecar's tags make the tag stage decide "food", so a result made without it (a GIF with no
metadata ends skipped) shows as "lost". Also counted: items left pending, and the classify machine's
runs the sidecars started (reruns with `metadata_changed_only`). The LLM is tests/support/fake_openai.py's
scripted server. Writes benchmarks/results/sidecar_race.json; exits 1 when a sidecar was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from common import REPO, cpu_info, stdout_to_devnull, write_result

from gifcat.adapters.embeddings.artefacts import models_dir
from gifcat_tooling.local.aws import EmbeddedAws
from gifcat_tooling.local.demo import draw_gif

SIDECAR = {"title": "Pizza GIF", "tags": ["pizza", "cheese", "food"]}


def _runs(sfn: Any, arn: str) -> list[dict[str, Any]]:
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
    return [e for page in pages for e in page["executions"]]


def _settle(aws: EmbeddedAws, sfn: Any, arn: str) -> None:
    """Until every asynchronous invocation is delivered and no run of the machine is running."""
    while True:
        assert aws.runner.drain(600), "the trigger's invocations did not drain"
        if not any(e["status"] == "RUNNING" for e in _runs(sfn, arn)):
            time.sleep(0.5)  # a run a just-drained invocation started
            if aws.runner.drain(600) and not any(e["status"] == "RUNNING" for e in _runs(sfn, arn)):
                return
        time.sleep(0.2)


def scenario(aws: EmbeddedAws, name: str, n: int, parallel: int, seed: int) -> dict[str, Any]:
    bucket, arn = aws.outputs["UploadsBucketName"], aws.outputs["StateMachineArn"]
    sfn = aws.client("stepfunctions")
    first, second = draw_gif("race"), draw_gif("race again")
    sidecar = json.dumps(SIDECAR).encode()
    delays = [random.Random(seed + i).uniform(0.0, 0.3) for i in range(n)]
    keys = [f"uploads/race-{name}-{i:03d}.gif" for i in range(n)]
    local = threading.local()

    def s3() -> Any:
        if not hasattr(local, "s3"):
            local.s3 = aws.client("s3")
        return local.s3

    def put_gif(key: str, body: bytes = first) -> None:
        s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/gif")

    def put_sidecar(key: str) -> None:
        s3().put_object(Bucket=bucket, Key=key + ".json", Body=sidecar, ContentType="application/json")

    def one(i: int) -> None:
        key = keys[i]
        if name == "a":
            put_gif(key)
            put_sidecar(key)
        elif name == "b":
            put_sidecar(key)
            put_gif(key)
        elif name == "c":
            put_gif(key)
            time.sleep(delays[i])
            put_sidecar(key)
        elif name == "d":
            together = threading.Barrier(2)
            other = threading.Thread(target=lambda: (together.wait(), put_sidecar(key)))
            other.start()
            together.wait()
            put_gif(key)
            other.join()
        elif name == "e":
            put_gif(key, second)
            put_sidecar(key)

    if name == "e":  # each key has its first upload's result before the race
        for key in keys:
            put_gif(key)
        _settle(aws, sfn, arn)
    before = {e["executionArn"] for e in _runs(sfn, arn)}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, range(n)))
    _settle(aws, sfn, arn)
    seconds = time.perf_counter() - started
    runs = [sfn.describe_execution(executionArn=e["executionArn"])
            for e in _runs(sfn, arn) if e["executionArn"] not in before]
    reruns = [r for r in runs if json.loads(r.get("input") or "{}").get("metadata_changed_only")]
    items = {r.key: r for r in aws.results()}
    outcome: Counter[str] = Counter()
    for key in keys:
        item = items.get(key)
        if item is None:
            outcome["missing"] += 1
        elif item.status.value == "pending":
            outcome["pending"] += 1
        elif item.title == SIDECAR["title"] and item.primary == "food":
            outcome["right"] += 1
        else:
            outcome["lost"] += 1
    return {
        "scenario": name, "n": n, "parallel": parallel, **{k: outcome[k] for k in
                                                           ("right", "lost", "pending", "missing")},
        "runs": len(runs), "sidecar_reruns": len(reruns),
        "runs_not_succeeded": sum(r["status"] != "SUCCEEDED" for r in runs),
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100, help="keys per scenario")
    parser.add_argument("--parallel", type=int, default=1, help="keys in flight at once")
    parser.add_argument("--scenarios", default="abcde")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    quiet = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    os.environ.update(quiet)
    rows = []
    with stdout_to_devnull(), ExitStack() as stack:
        from tests.support.fake_openai import DEFAULT_MODEL, FakeOpenAI, first_category

        server = stack.enter_context(FakeOpenAI())
        server.responder = first_category
        aws = stack.enter_context(EmbeddedAws(
            REPO, parameters={"LlmBaseUrl": server.base_url, "LlmModel": DEFAULT_MODEL},
            function_env={"GIFCAT_MODELS_DIR": str(models_dir()), **quiet},
        ))
        for name in args.scenarios:
            rows.append(scenario(aws, name, args.n, args.parallel, args.seed))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for row in rows:
        print(f"{row['scenario']}: {row['right']} of {row['n']} with their sidecar, {row['lost']} lost, "
              f"{row['pending']} pending, {row['missing']} without a result; {row['runs']} runs "
              f"({row['sidecar_reruns']} started by sidecars, {row['runs_not_succeeded']} not succeeded); "
              f"{row['seconds']} s")
    path = write_result("sidecar_race", {"cpu_model": cpu_info()["model"], "scenarios": rows})
    print(f"wrote {path}", file=sys.stderr)
    return 0 if all(r["lost"] == r["pending"] == r["missing"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
