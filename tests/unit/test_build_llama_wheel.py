"""scripts/build_llama_wheel.sh's wheel cache: which wheel it reuses, and when it builds, into which folder,
and how it installs it.

A stub interpreter stands in for the venv's python: it records each call (and the CMAKE_ARGS it got) and
`-m pip wheel` leaves an empty wheel file, so no compile runs. The venv's pip runs that python; a venv
with uv gets a stub uv that records its calls too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "build_llama_wheel.sh"
WHEEL = "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"

STUB = """#!/usr/bin/env bash
printf '%s\\tCMAKE_ARGS=%s\\n' "$*" "${CMAKE_ARGS:-}" >> "$STUB_LOG"
if [[ "$1 $2 $3" == "-m pip wheel" ]]; then
  while [[ $# -gt 0 ]]; do
    if [[ "$1" == --wheel-dir ]]; then : > "$2/WHEEL_NAME"; fi
    shift
  done
fi
""".replace("WHEEL_NAME", WHEEL)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    if shutil.which("flock") is None:
        pytest.fail("flock (util-linux) is needed by scripts/build_llama_wheel.sh")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(STUB)
    python.chmod(0o755)
    pip = venv / "bin" / "pip"  # a venv's pip is its python's: scripts/pip_install.sh calls it without uv
    pip.write_text('#!/usr/bin/env bash\nexec "$(dirname "$0")/python" -m pip "$@"\n')
    pip.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("CMAKE_ARGS", "GIFCAT_CACHE", "VIRTUAL_ENV")}
    return {**base, "GIFCAT_WHEELS": str(tmp_path / "wheels"), "STUB_LOG": str(tmp_path / "calls.log"),
            "VENV": str(venv)}


def run(env: dict[str, str], *args: str, cmake_args: str | None = None) -> list[str]:
    """Run the script; return the stub's calls made by this run."""
    log = Path(env["STUB_LOG"])
    before = log.read_text().splitlines() if log.exists() else []
    run_env = dict(env) if cmake_args is None else {**env, "CMAKE_ARGS": cmake_args}
    proc = subprocess.run(["bash", str(SCRIPT), *args, env["VENV"]], env=run_env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return log.read_text().splitlines()[len(before):]


def calls(lines: list[str], kind: str) -> list[str]:
    return [line for line in lines if line.startswith(f"-m pip {kind} ")]


def wheel_dirs(env: dict[str, str]) -> list[Path]:
    return sorted(p for p in Path(env["GIFCAT_WHEELS"]).glob("llama_cpp_python-0.3.36-*") if p.is_dir())


def test_builds_only_what_the_server_loads_then_reuses_the_wheel(env: dict[str, str]) -> None:
    first = run(env)
    (build,) = calls(first, "wheel")
    assert "--no-cache-dir" in build  # pip's wheel cache ignores CMAKE_ARGS
    flags = build.split("CMAKE_ARGS=", 1)[1].split()
    assert "-DLLAVA_BUILD=OFF" in flags
    assert any(f.startswith("-DCMAKE_PROJECT_llama.cpp_INCLUDE=") and f.endswith("llama_server_only.cmake")
               for f in flags)
    (folder,) = wheel_dirs(env)
    assert (folder / WHEEL).is_file()
    assert any(str(folder / WHEEL) in line for line in calls(first, "install"))

    second = run(env)
    assert calls(second, "wheel") == []
    installs = calls(second, "install")
    assert any(str(folder / WHEEL) in line for line in installs)
    # forced: a venv holding the same version built with other flags gets this build
    assert any("--force-reinstall" in line and str(folder / WHEEL) in line for line in installs)


def test_other_flags_get_their_own_cache_folder(env: dict[str, str]) -> None:
    run(env)
    portable = run(env, cmake_args="-DGGML_NATIVE=OFF")
    (build,) = calls(portable, "wheel")
    flags = build.split("CMAKE_ARGS=", 1)[1].split()
    # The caller's flags come last, so they win over the defaults (CMake keeps the last -D).
    assert flags[-1] == "-DGGML_NATIVE=OFF"
    assert len(wheel_dirs(env)) == 2
    again = run(env, cmake_args="-DGGML_NATIVE=OFF")
    assert calls(again, "wheel") == []


def test_a_loose_wheel_from_before_the_keyed_folders_is_not_reused(env: dict[str, str]) -> None:
    wheels = Path(env["GIFCAT_WHEELS"])
    wheels.mkdir()
    legacy = wheels / WHEEL  # where wheels were cached before the server-only flags, AMX kernels and all
    legacy.write_bytes(b"")

    lines = run(env)
    assert len(calls(lines, "wheel")) == 1
    assert not any(str(legacy) in line for line in calls(lines, "install"))


def test_build_only_installs_nothing(env: dict[str, str]) -> None:
    lines = run(env, "--build-only")
    assert len(calls(lines, "wheel")) == 1
    assert calls(lines, "install") == []
    assert not any(line.startswith("-c ") for line in lines)


def test_a_venv_with_uv_installs_the_wheel_through_uv_forced(env: dict[str, str]) -> None:
    """After the compile the install is on the first run's critical path: uv, as every other install."""
    uv = Path(env["VENV"]) / "bin" / "uv"
    uv.write_text('#!/usr/bin/env bash\nprintf \'uv %s\\n\' "$*" >> "$STUB_LOG"\n')
    uv.chmod(0o755)
    lines = run(env)
    (folder,) = wheel_dirs(env)
    installs = [line for line in lines if line.startswith("uv pip install ")]
    python = str(Path(env["VENV"]) / "bin" / "python")
    assert all(f"--python {python}" in line for line in installs)
    assert any("--force-reinstall --no-deps" in line and line.endswith(str(folder / WHEEL))
               for line in installs)
    assert any(f"--find-links {folder}" in line and "llama-cpp-python[server]==0.3.36" in line
               for line in installs)
    assert calls(lines, "install") == []  # pip installs nothing
