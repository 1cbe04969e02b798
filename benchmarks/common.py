"""Shared by the benchmarks: where things are, run metadata (commit, machine, time), percentiles, output.

Every benchmark writes benchmarks/results/<name>.json with a `meta` block (commit, CPU model and SIMD
flags, load), so two runs (two commits, two machines) can be diffed; run_all.py merges them into
latest.json. Absolute times differ 3-5x between the machines this project runs on, so each benchmark
also measures a reference in the same run and reports its figure as a ratio to it (`ratio()`).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DEV_DATA = REPO.parent / "shared" / "data" / "dev.jsonl"

# Runnable as `python benchmarks/x.py` from anywhere: the repo (tests.support), the layer and the tooling
# on the path.
for _path in (REPO, REPO / "layers" / "gifcat", REPO / "tooling"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    # A dirty tree is flagged: the numbers then belong to uncommitted code, not to the commit.
    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain", "-uno"))}


# The flags that move these figures: int8 matmuls run 3-5x faster with VNNI (AVX-512 or AVX) than on
# plain AVX2, and llama.cpp and onnxruntime pick kernels by them at run time.
CPU_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16",
)


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """The CPU model and the SIMD flags that matter here, from /proc/cpuinfo (first processor)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first processor is enough: the others are the same model
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "flags": {f: f in flags for f in CPU_FLAGS},
        "int8_vnni": bool(flags & {"avx512_vnni", "avx_vnni"}),
        # Set on some machines for old OpenBLAS builds; it slows numpy, so a figure should say so.
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def machine_label(cpu: dict[str, Any] | None = None) -> str:
    """One line for tables and the README: 'AMD EPYC, 2 cores, AVX-512 VNNI'."""
    cpu = cpu or cpu_info()
    f = cpu["flags"]
    simd = ("AVX-512 VNNI" if f.get("avx512_vnni") else "AVX-VNNI" if f.get("avx_vnni")
            else "AVX-512 (no VNNI)" if f.get("avx512f") else "AVX2" if f.get("avx2") else "no AVX2")
    return f"{cpu['model']}, {os.cpu_count()} cores, {simd}"


def ratio(value: float | None, reference: float | None, digits: int = 2) -> float | None:
    """value / reference, measured in the same run: what compares across machines."""
    if value is None or not reference:
        return None
    return round(value / reference, digits)


def meta() -> dict[str, Any]:
    cpu = cpu_info()
    return {
        **git_commit(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "label": machine_label(cpu),
            "cpu": cpu,
            "nproc": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "argv": sys.argv,
    }


def percentiles(values: Sequence[float], qs: Sequence[float] = (0.5, 0.95, 0.99)) -> dict[str, float]:
    """Nearest-rank percentiles (no interpolation: a p99 is a latency some call really had)."""
    ordered = sorted(values)
    if not ordered:
        return {f"p{round(q * 100)}": 0.0 for q in qs}
    return {f"p{round(q * 100)}": ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in qs}


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"meta": meta(), **payload}, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(row: Sequence[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs)

    lines = [fmt(r) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextmanager
def beside_a_busy_process() -> Iterator[None]:
    """One CPU-bound process (a Python busy loop) for the duration: a machine doing other work, or a
    Lambda whose share of its second vCPU is taken."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it reach its loop
        yield
    finally:
        busy.kill()
        busy.wait()


def dev_records(path: Path = DEV_DATA) -> list[Any]:
    from gifcat.domain.records import read_records

    return read_records(path)


@contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """Handlers log JSON lines (Powertools) to stdout for every call: keep that cost, drop the noise.

    File-descriptor level, because Powertools binds its handler to the sys.stdout of import time.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
