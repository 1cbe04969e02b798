"""The CPUs this process can keep busy, for thread pools sized to them (`stages.embedding.threads: auto`).

os.cpu_count() and onnxruntime count the cores a process sees, not the CPU time it is given:
- a Lambda function sees two vCPUs from 1,769 MB up but gets CPU time in proportion to its memory, one
  vCPU's worth per 1,769 MB (2,048 MB: 1.16);
- a container under a CPU quota (cgroup v1 `cpu.cfs_quota_us`, v2 `cpu.max`) sees every core of its host.
A thread without CPU time of its own only waits for the one that has it: under a 1.16-CPU quota one
onnxruntime thread beat two, for MiniLM and for CLIP's image tower (docs/results/README.md "Speed, memory,
cold start").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

LAMBDA_MB_PER_VCPU = 1769  # Lambda's memory for one full vCPU
_PROC_CGROUP = Path("/proc/self/cgroup")
_CGROUP_ROOT = Path("/sys/fs/cgroup")


def scheduled_cpus() -> int:
    """The CPUs the scheduler lets this process run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cgroup_cpu_limit(proc_cgroup: Path = _PROC_CGROUP, cgroup_root: Path = _CGROUP_ROOT) -> float | None:
    """CPUs' worth of time per period the process's cgroup allows (v2 `cpu.max`, else v1
    `cpu.cfs_quota_us` / `cpu.cfs_period_us`); None when unlimited or unreadable."""
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        here = path.lstrip("/")
        try:
            if controllers == "":  # the v2 unified hierarchy: "0::/path"
                quota, _, period = (cgroup_root / here / "cpu.max").read_text().partition(" ")
                if quota.strip() != "max":
                    return int(quota) / int(period)
            elif "cpu" in controllers.split(","):
                folder = cgroup_root / controllers / here
                quota_us = int((folder / "cpu.cfs_quota_us").read_text())
                if quota_us > 0:
                    return quota_us / int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
    return None


def cpus_for(scheduled: int, lambda_memory_mb: int | None, cgroup_limit: float | None) -> int:
    """Whole CPUs a process can keep busy: the `scheduled` ones it may run on, lowered to what a Lambda
    function's memory or a cgroup's CPU quota buys, rounded to the nearest whole CPU (never below 1).

    Nearest, because that is where a second onnxruntime thread started to pay: under a 1.16-CPU quota
    one thread was faster than two, for MiniLM and CLIP's image tower; under 1.70 two were
    (benchmarks/bench_embed_threads.py)."""
    cpus = scheduled
    if lambda_memory_mb is not None:
        cpus = min(cpus, _nearest(lambda_memory_mb / LAMBDA_MB_PER_VCPU))
    if cgroup_limit is not None:
        cpus = min(cpus, _nearest(cgroup_limit))
    return max(1, cpus)


def _nearest(cpus: float) -> int:
    return math.floor(cpus + 0.5)


def usable_cpus() -> int:
    """`cpus_for` this process, on this machine (AWS_LAMBDA_FUNCTION_MEMORY_SIZE in a Lambda)."""
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
    return cpus_for(scheduled_cpus(), int(memory) if memory.isdigit() else None, cgroup_cpu_limit())


def thread_count(threads: int | str) -> int:
    """A thread setting as onnxruntime takes it: "auto" is `usable_cpus()`; a number stays (0 lets
    onnxruntime choose, one per core it sees)."""
    if threads == "auto":
        return usable_cpus()
    if isinstance(threads, int) and threads >= 0:
        return threads
    raise ValueError(f"threads must be a number from 0 or 'auto', not {threads!r}")
