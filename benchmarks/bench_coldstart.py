#!/usr/bin/env python3
"""Cold start of each Lambda handler: a fresh interpreter imports the handler module with the environment
template.yaml gives the function (so the import builds its services and loads its models, as at a real
cold start), and reports the time and the process's peak RSS.

    python benchmarks/bench_coldstart.py [--repeat 3] [--only triage,embed]

Per function: `libs_ms` (Powertools + gifcat.runtime imports), `handler_ms` (the handler module: its own
imports plus build_triage/build_*_step, i.e. settings, taxonomy, boto3 clients, ONNX sessions),
`import_ms` (both), `process_ms` (the whole subprocess, interpreter start-up and exit included) and
`peak_rss_mb` (ru_maxrss of the subprocess). Medians over --repeat runs; RSS is the max.
Nothing calls AWS or the LLM: the environment only names dummy resources.

References measured in the same run, since absolute times differ 3-5x between machines: each function's
times as a ratio to the triage function's (`vs_triage`, of the medians; `vs_triage_paired`, the median of
each round's ratio), and the bare interpreter's start and exit (`python -c pass`, `interpreter_ms`) with
each process time as a ratio to it (`vs_interpreter`). The functions take turns, one run each a round,
so that a machine that speeds up or slows down during the run moves every function alike.

Writes benchmarks/results/coldstart.json (with the CPU model and flags in `meta`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from common import REPO, ratio, table, write_result

from gifcat.adapters.embeddings.artefacts import models_dir
from gifcat_tooling.local.template import REGION, Stack, load_template

# name -> (logical id in template.yaml, handler file relative to the repo)
FUNCTIONS: dict[str, tuple[str, str]] = {
    "triage": ("TriageFunction", "functions/triage/app.py"),
    "triage_step": ("TriageStepFunction", "functions/triage/step.py"),
    "embed": ("EmbedFunction", "functions/embed/app.py"),
    "escalate": ("EscalateFunction", "functions/escalate/app.py"),
}

# Runs in the fresh interpreter. ru_maxrss is KiB on Linux.
CHILD = r"""
import importlib.util, json, resource, sys, time
t0 = time.perf_counter()
code_dir, path = sys.argv[1], sys.argv[2]
sys.path.insert(0, code_dir)
import aws_lambda_powertools, aws_lambda_powertools.utilities.parser, gifcat.runtime
t1 = time.perf_counter()
spec = importlib.util.spec_from_file_location("handler_module", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t2 = time.perf_counter()
assert callable(getattr(module, "handler"))
print(json.dumps({"libs_ms": (t1 - t0) * 1000, "handler_ms": (t2 - t1) * 1000, "import_ms": (t2 - t0) * 1000,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def function_env(stack: Stack, logical_id: str) -> dict[str, str]:
    props = stack.function_properties(logical_id)
    env = {k: str(v) for k, v in props.get("Environment", {}).get("Variables", {}).items()}
    env.update({
        # Dummy resources: nothing is called at import time.
        "RESULTS_TABLE": "gifcat-bench-results",
        "STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:123456789012:stateMachine:gifcat-bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_LAMBDA_FUNCTION_NAME": stack.physical_name(logical_id),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props.get("MemorySize", 128)),
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
    })
    if logical_id == "EmbedFunction":
        env["GIFCAT_MODELS_DIR"] = str(models_dir())  # the image's /opt/models, built locally
    if logical_id == "EscalateFunction":
        env["GIFCAT_LLM_BASE_URL"] = "http://127.0.0.1:9/v1"  # discard port: must not be called
    # A clean environment (not ours): only what the function gets, plus what an interpreter needs.
    for key in ("PATH", "HOME", "LANG", "TMPDIR"):
        if key in os.environ:
            env.setdefault(key, os.environ[key])
    return env


def measure(code_dir: str, path: str, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, code_dir, path], env=env, cwd=REPO, capture_output=True, text=True,
        check=False, timeout=300,
    )
    process_ms = (time.perf_counter() - started) * 1000.0
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["exit " + str(proc.returncode)])[-1]}
    line = [x for x in proc.stdout.splitlines() if x.startswith("{") and '"import_ms"' in x][-1]
    return {**json.loads(line), "process_ms": process_ms}


def interpreter_ms(repeat: int) -> float:
    """The reference: a bare interpreter's start and exit, the floor under every process_ms."""
    runs = []
    for _ in range(max(3, repeat)):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=60)
        runs.append((time.perf_counter() - started) * 1000.0)
    return round(statistics.median(runs), 1)


def add_ratios(out: dict[str, Any], interpreter: float) -> None:
    """vs_triage and vs_interpreter for every function measured (triage's own is 1.0)."""
    triage = out.get("triage", {})
    for r in out.values():
        if "error" in r:
            continue
        r["vs_interpreter"] = ratio(r["process_ms"], interpreter)
        if "error" not in triage and triage:
            r["vs_triage"] = {k: ratio(r[k], triage[k]) for k in ("import_ms", "process_ms")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(FUNCTIONS)}")
    args = parser.parse_args(argv)
    wanted = args.only.split(",") if args.only else list(FUNCTIONS)

    stack = Stack(load_template(REPO / "template.yaml"), REPO)
    envs = {name: function_env(stack, FUNCTIONS[name][0]) for name in wanted}
    rounds: list[dict[str, dict[str, Any]]] = []
    for _ in range(args.repeat):  # one run of each function a round
        rounds.append({name: measure(str((REPO / FUNCTIONS[name][1]).parent), str(REPO / FUNCTIONS[name][1]),
                                     envs[name]) for name in wanted})
    out: dict[str, Any] = {}
    for name in wanted:
        logical_id = FUNCTIONS[name][0]
        runs = [r[name] for r in rounds]
        ok = [r for r in runs if "error" not in r]
        if not ok:
            out[name] = {"function": logical_id, "error": runs[0]["error"]}
            continue

        def med(key: str, ok: list[dict[str, Any]] = ok) -> float:
            return round(statistics.median(r[key] for r in ok), 1)

        out[name] = {
            "function": logical_id,
            "memory_mb": int(stack.function_properties(logical_id).get("MemorySize", 128)),
            "libs_ms": med("libs_ms"),
            "handler_ms": med("handler_ms"),
            "import_ms": med("import_ms"),
            "process_ms": med("process_ms"),
            "peak_rss_mb": round(max(r["peak_rss_kb"] for r in ok) / 1024, 1),
            "runs": len(ok),
            "failed_runs": len(runs) - len(ok),
        }
        paired = [r[name]["process_ms"] / r["triage"]["process_ms"] for r in rounds
                  if "error" not in r[name] and "error" not in r.get("triage", {"error": "not measured"})]
        if paired:
            out[name]["vs_triage_paired"] = {"process_ms": round(statistics.median(paired), 2),
                                             "min": round(min(paired), 2), "max": round(max(paired), 2)}

    interpreter = interpreter_ms(args.repeat)
    add_ratios(out, interpreter)
    rows = []
    for name, r in out.items():
        if "error" in r:
            rows.append([name, "-", "-", "-", "-", "-", "-", "-", "-", f"FAILED: {r['error'][:70]}"])
        else:
            times = [r["libs_ms"], r["handler_ms"], r["import_ms"], r["process_ms"]]
            vs = r.get("vs_triage", {}).get("process_ms")
            pair = r.get("vs_triage_paired", {})
            rows.append([name, *times, f"{vs}x" if vs is not None else "-",
                         f"{pair['process_ms']}x ({pair['min']}-{pair['max']})" if pair else "-",
                         r["peak_rss_mb"], r["memory_mb"], ""])
    rows.append(["python -c pass", "-", "-", "-", interpreter, "-", "-", "-", "-", "reference"])
    print(table(["function", "libs ms", "handler ms", "import ms", "process ms", "process vs triage",
                 "paired (range)", "peak RSS MB", "mem MB", ""], rows))
    result = {"repeat": args.repeat, "interpreter_ms": interpreter, "functions": out}
    print(f"wrote {write_result('coldstart', result)}")
    return 1 if any("error" in r for r in out.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
