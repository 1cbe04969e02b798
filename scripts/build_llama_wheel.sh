#!/usr/bin/env bash
# Build llama-cpp-python (pinned) into a wheel cache once, then install it with its server extras.
#
#   scripts/build_llama_wheel.sh [--build-only] [VENV]   # VENV defaults to $VIRTUAL_ENV, else python3
#
# --build-only fills the cache and installs nothing (scripts/setup_venv.sh runs it in the background
# while the other packages install). The cache is $GIFCAT_WHEELS, else $GIFCAT_CACHE/wheels, else
# ~/.cache/gifcat/wheels.
#
# Only what gifcat's local server loads is compiled: libllama and libggml* for this CPU. The default
# build also compiles the multimodal library (LLAVA_BUILD) and llama.cpp's llama-common (forced on by
# llama-cpp-python), which the Python package never loads; they are more than half of the files.
# Extra CMAKE_ARGS are appended (e.g. CMAKE_ARGS="-DGGML_NATIVE=OFF" for a wheel that runs on other
# CPUs). Each set of flags gets its own cache folder, llama_cpp_python-<version>-<key>/, where <key>
# hashes the flags, the CMake include's content and, for a native build, this CPU's flags.
set -euo pipefail

LLAMA_CPP_VERSION="0.3.36"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
include="$here/llama_server_only.cmake"

build_only=0
if [[ "${1:-}" == "--build-only" ]]; then
  build_only=1
  shift
fi
venv="${1:-${VIRTUAL_ENV:-}}"
if [[ -n "$venv" ]]; then
  python="$venv/bin/python"
else
  python="$(command -v python3)"
fi
[[ -x "$python" ]] || { echo "build_llama_wheel: no python at $python" >&2; exit 2; }

cache_root="${GIFCAT_CACHE:-$HOME/.cache/gifcat}"
wheels="${GIFCAT_WHEELS:-$cache_root/wheels}"
mkdir -p "$wheels"

server_args="-DLLAVA_BUILD=OFF -DGGML_NATIVE=ON -DCMAKE_PROJECT_llama.cpp_INCLUDE=$include"
user_args="${CMAKE_ARGS:-}"
args="$server_args${user_args:+ $user_args}"

# CMake keeps the last -DGGML_NATIVE=...: a native build is only good for CPUs with these flags.
native=ON
for arg in $args; do
  case "$arg" in -DGGML_NATIVE=*) native="${arg#-DGGML_NATIVE=}" ;; esac
done
cpu=""
if [[ "${native^^}" =~ ^(ON|1|TRUE|YES)$ ]]; then
  cpu="$(uname -m) $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
fi
key="$(
  printf '%s\n' "$LLAMA_CPP_VERSION" "${args//$include/server_only.cmake}" "$cpu"
  cat "$include"
)"
key="$(printf '%s' "$key" | sha256sum | cut -c1-12)"
dir="$wheels/llama_cpp_python-$LLAMA_CPP_VERSION-$key"

find_wheel() {  # prints nothing when there is none (or no folder yet)
  [[ -d "$1" ]] || return 0
  find "$1" -maxdepth 1 -name "llama_cpp_python-${LLAMA_CPP_VERSION}-*.whl" -print -quit
}

# Wheels from before the keyed folders (loose in $wheels) are not reused: a native one built on a CPU
# with AMX crashes (see llama_server_only.cmake).
wheel="$(find_wheel "$dir")"

if [[ -z "$wheel" ]]; then
  mkdir -p "$dir"
  # One build per key at a time: a second caller waits for the first and then reuses its wheel.
  exec 9>"$dir.lock"
  flock 9
  wheel="$(find_wheel "$dir")"
fi
if [[ -z "$wheel" ]]; then
  echo "build_llama_wheel: building llama-cpp-python==${LLAMA_CPP_VERSION} into $dir (takes minutes)"
  echo "build_llama_wheel: CMAKE_ARGS=$args"
  tmp="$(mktemp -d "$dir.tmp.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  started=$SECONDS
  # --no-cache-dir: pip's own wheel cache is keyed by the sdist alone, so it would hand back a wheel
  # built with other CMAKE_ARGS.
  CMAKE_ARGS="$args" "$python" -m pip wheel --no-cache-dir --no-deps --wheel-dir "$tmp" \
    "llama-cpp-python==${LLAMA_CPP_VERSION}"
  built="$(find_wheel "$tmp")"
  [[ -n "$built" ]] || { echo "build_llama_wheel: the build left no wheel in $tmp" >&2; exit 1; }
  printf 'llama-cpp-python==%s\nCMAKE_ARGS=%s\ncpu=%s\n' "$LLAMA_CPP_VERSION" "$args" "$cpu" >"$dir/flags.txt"
  mv "$built" "$dir/"  # same file system: the wheel appears whole or not at all
  wheel="$(find_wheel "$dir")"
  echo "build_llama_wheel: built $wheel in $((SECONDS - started)) s"
else
  echo "build_llama_wheel: reusing $wheel"
fi

if [[ "$build_only" == 1 ]]; then
  exit 0
fi
# Into a venv through scripts/pip_install.sh (uv when the venv has it): this runs after the compile, on
# the first run's critical path, where uv took 4.5 s against pip's 13 s.
install() {
  if [[ -n "$venv" ]]; then
    bash "$here/pip_install.sh" "$venv" "$@"
  else
    "$python" -m pip install "$@"
  fi
}
# The wheel first, forced: pip and uv keep an installed llama-cpp-python of the same version, so a wheel
# rebuilt with other flags (the AMX fix) would otherwise never reach a venv that has one.
install --force-reinstall --no-deps "$wheel"
# --find-links makes the installer take the cached wheel for llama-cpp-python and resolve only the
# server extras (uvicorn, fastapi, sse-starlette, starlette-context, pydantic-settings) from the index.
install --find-links "$(dirname "$wheel")" "llama-cpp-python[server]==${LLAMA_CPP_VERSION}"
"$python" -c "import llama_cpp, llama_cpp.server.app; print('llama-cpp-python', llama_cpp.__version__, 'ready')"
