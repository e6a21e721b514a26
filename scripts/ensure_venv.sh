#!/usr/bin/env bash
# Sourced by ./run_tests.sh and ./run_iteration.sh: creates .venv from
# requirements.txt when it is missing or older than requirements.txt, then
# activates it. A stamp file marks a completed install, so an install that was
# interrupted is redone instead of leaving a half-built environment in use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.requirements-installed"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

if [[ ! -f "$stamp" || "$root/requirements.txt" -nt "$stamp" ]]; then
  echo "[setup] installing $root/requirements.txt into $venv (first run takes a few minutes)" >&2
  if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet --requirement "$root/requirements.txt"
  touch "$stamp"
  echo "[setup] environment ready" >&2
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
