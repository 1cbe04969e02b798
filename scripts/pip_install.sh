#!/usr/bin/env bash
# `pip install ARGS` into VENV, carried out by uv when VENV has it (the Makefile installs it first).
#
#   scripts/pip_install.sh VENV ARGS...          # uv: $UV, else VENV/bin/uv
#
# uv downloads and unpacks in parallel: on this 2-core machine a fresh venv's `.[local]` took 16 s with
# uv against 200 s with pip, which fetches one file at a time. uv reads no pip configuration, so the
# indexes, links and constraints pip is configured with here (a local mirror, the CPU-only torch wheel)
# are passed on, and uv resolves across them as pip does (best match, not the first index that has a
# name). Without uv in VENV this is plain pip.
set -euo pipefail

venv="${1:?usage: pip_install.sh VENV ARGS...}"
shift
bin="$venv/bin"
uv="${UV:-$bin/uv}"
if [[ ! -x "$uv" ]]; then
  exec "$bin/pip" install "$@"
fi

declare -A seen=()
args=()
add() {  # add FLAG VALUE, once
  [[ -n "${seen[$1 $2]:-}" ]] && return 0
  seen[$1 $2]=1
  args+=("$1" "$2")
}
# `pip config list` prints every scope (files and PIP_* variables) as key='value'.
while IFS= read -r line; do
  key="${line%%=*}"
  value="${line#*=}"
  value="${value#\'}"
  value="${value%\'}"
  for v in $value; do
    case "${key##*.}" in
      index-url) add --index-url "$v" ;;
      extra-index-url) add --extra-index-url "$v" ;;
      find-links) add --find-links "$v" ;;
      constraint) add --constraint "$v" ;;
    esac
  done
done < <("$bin/pip" config list 2>/dev/null || true)

exec "$uv" pip install --python "$bin/python" --index-strategy unsafe-best-match "${args[@]}" "$@"
