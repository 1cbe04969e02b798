"""`threads: auto`: the CPUs a process can keep busy, not the cores it sees (gifcat.adapters.cpus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gifcat.adapters.cpus import cgroup_cpu_limit, cpus_for, thread_count, usable_cpus


@pytest.mark.parametrize(
    ("scheduled", "memory_mb", "limit", "expected"),
    [
        (2, None, None, 2),     # a laptop or CI runner: the cores it may run on
        (2, 2048, None, 1),     # the embed function: 1.16 vCPUs' time on 2 visible vCPUs
        (2, 3008, None, 2),     # the learn function: 1.70, nearer 2 (two threads were faster there)
        (6, 10240, None, 6),    # Lambda's largest: 5.79 vCPUs' time on 6
        (2, 128, None, 1),      # never below one
        (64, None, 1.4, 1),     # a container capped at 1.4 CPUs on a 64-core host
        (64, None, 4.0, 4),
        (2, None, 8.0, 2),      # a quota above the cores the process may use does not add any
        (8, 3008, 4.0, 2),      # both: the lower wins
    ],
)
def test_cpus_for_counts_whole_cpus_of_time(scheduled: int, memory_mb: int | None, limit: float | None,
                                            expected: int) -> None:
    assert cpus_for(scheduled, memory_mb, limit) == expected


def _v1(root: Path, quota: str, period: str = "100000") -> Path:
    folder = root / "cpu,cpuacct" / "job"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text(quota + "\n")
    (folder / "cpu.cfs_period_us").write_text(period + "\n")
    proc = root / "proc-self-cgroup"
    proc.write_text("4:memory:/other\n2:cpu,cpuacct:/job\n1:name=systemd:/\n")
    return proc


def test_cgroup_v1_quota_is_read_from_the_process_own_cgroup(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_v1(tmp_path, "115800"), tmp_path) == pytest.approx(1.158)


def test_cgroup_v1_without_a_quota_is_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_v1(tmp_path, "-1"), tmp_path) is None


@pytest.mark.parametrize(("cpu_max", "expected"), [("250000 100000\n", 2.5), ("max 100000\n", None)])
def test_cgroup_v2_cpu_max(tmp_path: Path, cpu_max: str, expected: float | None) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "cpu.max").write_text(cpu_max)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text("0::/app\n")
    assert cgroup_cpu_limit(proc, tmp_path) == expected


def test_unreadable_or_garbled_cgroup_files_are_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(tmp_path / "missing", tmp_path) is None
    proc = _v1(tmp_path, "not a number")
    assert cgroup_cpu_limit(proc, tmp_path) is None


def test_thread_count_resolves_auto_and_keeps_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
    assert thread_count("auto") == usable_cpus() == 1
    assert thread_count(3) == 3 and thread_count(0) == 0
    with pytest.raises(ValueError, match="'auto'"):
        thread_count("two")
    with pytest.raises(ValueError):
        thread_count(-1)
