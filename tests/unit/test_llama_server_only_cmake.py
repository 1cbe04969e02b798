"""scripts/llama_server_only.cmake, run by CMake as llama.cpp's project include: what a native build of
the local LLM server compiles. Configured here with CMake itself (a tiny project, no llama.cpp), and the
flags it sets are handed to the C compiler with a -march after them, as ggml adds -march=native: a
Sapphire Rapids target stands for a CPU with AMX whatever CPU runs the test."""

from __future__ import annotations

import json
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INCLUDE = REPO / "scripts" / "llama_server_only.cmake"

PROJECT = """cmake_minimum_required(VERSION 3.16)
project(probe C CXX)
include("{include}")
file(WRITE "${{CMAKE_BINARY_DIR}}/flags.txt" "C=${{CMAKE_C_FLAGS}}\\nCOMMON=${{LLAMA_BUILD_COMMON}}\\n")
"""


def cmake_project(tmp_path: Path, project: str, *args: str, files: dict[str, str] | None = None) -> Path:
    """Configure a tiny project (its CMakeLists.txt and `files`) that includes the include; its build dir."""
    if any(shutil.which(tool) is None for tool in ("cmake", "cc", "c++")):
        pytest.fail("cmake and a C/C++ compiler are needed to build the local LLM server")
    src, build = tmp_path / "src", tmp_path / "build"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(project.format(include=INCLUDE.as_posix()))
    for name, text in (files or {}).items():
        (src / name).write_text(text)
    subprocess.run(["cmake", "-S", str(src), "-B", str(build), *args], check=True, capture_output=True,
                   timeout=120)
    return build


def configure(tmp_path: Path) -> dict[str, str]:
    lines = (cmake_project(tmp_path, PROJECT) / "flags.txt").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def macros(flags: str, march: str = "sapphirerapids") -> set[str]:
    out = subprocess.run(["cc", *flags.split(), f"-march={march}", "-dM", "-E", "-x", "c", "/dev/null"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith("#define ")}


def test_the_unused_common_library_is_switched_off(tmp_path: Path) -> None:
    assert configure(tmp_path)["COMMON"] == "OFF"


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="AMX is an x86-64 extension")
def test_a_native_build_leaves_out_the_amx_kernels_that_crash_and_keeps_avx(tmp_path: Path) -> None:
    flags = configure(tmp_path)["C"]
    defined = macros(flags)
    amx = {"__AMX_INT8__", "__AMX_TILE__", "__AMX_BF16__"}
    target = macros("")
    assert amx <= target  # the target has AMX: the check below means something
    # ggml compiles its AMX kernels only under __AMX_INT8__ (ggml-cpu/amx/*.cpp): they stay out...
    assert not amx & defined
    # ...and nothing else is lost: the AVX-512 and VNNI kernels the target enables are still there.
    assert target - amx <= defined
    assert not amx & macros(flags, "native")  # and on this machine's own CPU


TARGETS = """cmake_minimum_required(VERSION 3.21)
project(probe C CXX)
include("{include}")
add_library(llama SHARED llama.cpp)
add_library(ggml-cpu SHARED ggml-cpu.c)
"""


def test_libllama_is_compiled_at_o1_and_the_ggml_kernels_keep_o3(tmp_path: Path) -> None:
    """The build's time goes to libllama; the arithmetic the server waits on runs in ggml-cpu."""
    files = {"llama.cpp": "int llama_probe() { return 1; }\n",
             "ggml-cpu.c": "int ggml_probe(void) { return 2; }\n"}
    build = cmake_project(tmp_path, TARGETS, "-DCMAKE_BUILD_TYPE=Release",
                          "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", files=files)
    commands = json.loads((build / "compile_commands.json").read_text())
    last_o = {Path(c["file"]).name: re.findall(r"(?:^|\s)(-O\w)", c["command"])[-1] for c in commands}
    # the last -O on the command line is the one GCC and Clang use
    assert last_o == {"llama.cpp": "-O1", "ggml-cpu.c": "-O3"}
