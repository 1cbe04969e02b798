#!/usr/bin/env python3
"""Runs every benchmark, merges their JSON into benchmarks/results/latest.json, prints one table.

    python benchmarks/run_all.py [--full] [--skip embedding,pipeline] [--llm fake|local]

Each benchmark runs in its own process (one's imports, threads or RSS must not colour another's) and
sequentially (the machine is small: parallel runs would measure each other). --full adds the N=1000
pipeline run and the ViT-sized CLIP export of bench_embedding.py; without it the whole run is a few
minutes. A failing benchmark is recorded and the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import RESULTS, meta, table

HERE = Path(__file__).resolve().parent


def plan(full: bool, llm: str) -> list[tuple[str, list[str], list[str]]]:
    """(name, command, result files it writes)."""
    sizes = ["--n", "100", "--n", "1000"] if full else ["--n", "100"]
    return [
        ("triage", ["bench_triage.py"], ["triage.json"]),
        ("coldstart", ["bench_coldstart.py"], ["coldstart.json"]),
        ("embedding", ["bench_embedding.py", *([] if full else ["--skip-vit"])], ["embedding.json"]),
        ("pipeline", ["bench_pipeline.py", *sizes, "--llm", llm],
         ["pipeline_n100.json", *(["pipeline_n1000.json"] if full else [])]),
    ]


def summary_rows(merged: dict[str, Any]) -> list[list[Any]]:
    """The handful of numbers worth comparing between commits, one row each, with the ratio to the
    reference each benchmark measured in the same run (what compares between machines)."""
    rows: list[list[Any]] = []
    tri = merged.get("triage") or {}
    ref = (tri.get("embedding_call") or {}).get("latency_us") or {}
    if "in_process" in tri:
        ip = tri["in_process"]
        lat = ip["latency_us"]
        vs = (ip.get("vs_embedding_call") or {}).get("p50")
        rows.append(["triage in-process", f"p50 {lat['p50']} µs", f"p99 {lat['p99']} µs",
                     f"{ip['throughput_rps']:.0f} rec/s",
                     f"{vs}x an embedding call ({ref.get('p50')} µs)"])
    if "handler" in tri:
        h = tri["handler"]
        rows.append(["TriageFunction warm", f"p50 {h['warm_ms']['p50']} ms", f"p95 {h['warm_ms']['p95']} ms",
                     f"cold {h['cold_start_ms']} ms (in-process)",
                     f"{(h.get('vs_embedding_call') or {}).get('p50')}x an embedding call"])
    cold = merged.get("coldstart") or {}
    for name, c in (cold.get("functions") or {}).items():
        if "error" in c:
            rows.append([f"cold start {name}", "FAILED", c["error"][:50], "", ""])
        else:
            vs = (c.get("vs_triage") or {}).get("process_ms")
            rows.append([f"cold start {name}", f"import {c['import_ms']} ms", f"process {c['process_ms']} ms",
                         f"peak RSS {c['peak_rss_mb']} MB",
                         f"{vs}x triage, {c.get('vs_interpreter')}x `python -c pass`"])
    for m in ((merged.get("embedding") or {}).get("minilm") or {}).get("variants") or []:
        vs = m.get("vs_fp32_onnx") or {}
        torch = m.get("vs_torch") or {}
        rows.append([f"{m['model'].split('@')[0]} {m['threads']} thr", f"{m['per_record_ms']} ms/rec",
                     f"batched {m['batched_per_record_ms']} ms/rec", f"{m['throughput_rps']} rec/s",
                     f"{vs.get('per_record')}x / {vs.get('batched')}x fp32 ONNX"
                     + (f", {torch.get('per_record')}x / {torch.get('batched')}x torch" if torch else "")])
    for c in (merged.get("embedding") or {}).get("clip") or []:
        if "vs_fp32" in c:
            rows.append([f"{c['model']} {c['threads']} thr", f"embed {c['embed_ms']} ms", "", "",
                         f"{c['vs_fp32']['embed']}x fp32"])
    for key in sorted(k for k in merged if k.startswith("pipeline_n")):
        p = merged[key]
        if "gifs_per_s" in p:
            plain = (p.get("reference") or {}).get("plain_put_per_s")
            rows.append([f"pipeline N={p['n']}", f"{p['gifs_per_s']} GIFs/s",
                         f"lost {p['lost']} failed {p['failed']}",
                         f"p95 {p['latency_ms']['p95']} ms, CPU {p.get('cpu_cores_used')} cores",
                         f"{p.get('vs_plain_puts')}x plain puts ({plain}/s)"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="also N=1000 and the ViT-sized CLIP")
    parser.add_argument("--skip", default="", help="comma-separated: triage,coldstart,embedding,pipeline")
    parser.add_argument("--llm", choices=["fake", "local"], default="fake")
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}

    merged: dict[str, Any] = {"meta": meta(), "runs": {}}
    for name, command, outputs in plan(args.full, args.llm):
        if name in skip:
            continue
        print(f"== {name}: {' '.join(command)}", flush=True)
        started = time.time()
        argv_ = [sys.executable, str(HERE / command[0]), *command[1:]]
        proc = subprocess.run(argv_, cwd=HERE.parent, check=False)
        merged["runs"][name] = {"exit_code": proc.returncode, "seconds": round(time.time() - started, 1)}
        for fname in outputs:
            path = RESULTS / fname
            # Only results this run wrote: a stale file from an earlier commit must not pass for today's.
            if path.is_file() and path.stat().st_mtime >= started - 1:
                merged[fname.removesuffix(".json")] = json.loads(path.read_text(encoding="utf-8"))
            else:
                merged["runs"][name].setdefault("missing", []).append(fname)

    out = RESULTS / "latest.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2, default=str) + "\n", encoding="utf-8")
    m = merged["meta"]
    print(f"\ncommit {str(m['commit'])[:12]}{' (dirty)' if m['dirty'] else ''}  "
          f"{m['machine']['label']}  python {m['machine']['python']}  {m['timestamp']}")
    print(table(["benchmark", "", "", "", "vs the reference measured in the same run"], summary_rows(merged)))
    failed = {k: v for k, v in merged["runs"].items() if v["exit_code"] != 0 or v.get("missing")}
    for name, run in failed.items():
        print(f"!! {name}: exit {run['exit_code']}, missing {run.get('missing', [])}")
    print(f"wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
