#!/usr/bin/env bash
# Build llama-cpp-python (pinned) into a wheel cache once, then install it with its server extras.
#
#   scripts/build_llama_wheel.sh [VENV]      # VENV defaults to $VIRTUAL_ENV, else the python3 on PATH
#
# The wheel is compiled from source (CPU, ~5-10 min on 2 cores) only when the cache has none:
# $GIFCAT_WHEELS, else $GIFCAT_CACHE/wheels, else ~/.cache/gifcat/wheels. Pass CMAKE_ARGS through to
# change the build (e.g. CMAKE_ARGS="-DGGML_NATIVE=OFF" for a wheel that runs on other CPUs).
set -euo pipefail

LLAMA_CPP_VERSION="0.3.36"

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

find_wheel() {
  find "$wheels" -maxdepth 1 -name "llama_cpp_python-${LLAMA_CPP_VERSION}-*.whl" -print -quit
}

wheel="$(find_wheel)"
if [[ -z "$wheel" ]]; then
  echo "build_llama_wheel: building llama-cpp-python==${LLAMA_CPP_VERSION} into $wheels (takes minutes)"
  "$python" -m pip wheel --no-deps --wheel-dir "$wheels" "llama-cpp-python==${LLAMA_CPP_VERSION}"
  wheel="$(find_wheel)"
  [[ -n "$wheel" ]] || { echo "build_llama_wheel: the build left no wheel in $wheels" >&2; exit 1; }
else
  echo "build_llama_wheel: reusing $wheel"
fi

# --find-links makes pip take the cached wheel for llama-cpp-python and resolve only the server extras
# (uvicorn, fastapi, sse-starlette, starlette-context, pydantic-settings) from the index.
"$python" -m pip install --find-links "$wheels" "$wheel" "llama-cpp-python[server]==${LLAMA_CPP_VERSION}"
"$python" -c "import llama_cpp, llama_cpp.server.app; print('llama-cpp-python', llama_cpp.__version__, 'ready')"
