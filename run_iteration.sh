#!/usr/bin/env bash
# Noisy Student iterations: round 0 trains the teacher; round k labels the
# unlabeled data with round k-1's model and trains student k; then report.md.
#
#   ./run_iteration.sh --round 2 [--work_dir DIR] [--dataset SPEC] [--config FILE] [--seed N] [--verbosity N]
#
# Defaults: the embedded digits data, configs/digits.json, runs/digits.
# Does its own set-up (creates or reuses .venv from requirements.txt). Rerun
# the same command after an interruption: finished steps are skipped.
set -euo pipefail
cd "$(dirname "$0")"

args=()
usage() { echo "usage: $0 --round N [--work_dir DIR] [--dataset SPEC] [--config FILE] [--seed N] [--verbosity N]" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --round|--work_dir|--dataset|--config|--seed|--verbosity)
      [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; usage; }
      args+=("$1=$2"); shift 2 ;;
    --round=*|--work_dir=*|--dataset=*|--config=*|--seed=*|--verbosity=*) args+=("$1"); shift ;;
    -h|--help) usage ;;
    *) echo "error: unknown argument '$1'" >&2; usage ;;
  esac
done

source scripts/ensure_venv.sh
exec python -m pipelines.iterate "${args[@]}"
