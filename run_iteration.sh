#!/usr/bin/env bash
# Noisy Student iterations: round 0 trains the teacher; round k labels the
# unlabeled data with round k-1's model and trains student k; then report.md.
#
#   ./run_iteration.sh --round 2 [--work_dir DIR] [--dataset SPEC] [--config FILE] [--seed N] [--verbosity N] [--oracle]
#   ./run_iteration.sh --round 1 --labeled SPEC --unlabeled SPEC [--validation SPEC] [--test SPEC] [--config FILE]
#
# Defaults: the embedded digits data, configs/digits.json, runs/digits; with
# --labeled, configs/own_data_cpu.json and runs/own-data (see README, "Your own
# images"): without --validation, 10% of the labeled data is held out.
# Does its own set-up (creates or reuses .venv from requirements.txt). Rerun
# the same command after an interruption: finished steps are skipped.
set -euo pipefail
caller_dir=$PWD
cd "$(dirname "$0")"

usage() {
  echo "usage: $0 --round N [--work_dir DIR] [--config FILE] [--seed N] [--verbosity N] [--oracle]" >&2
  echo "         [--dataset SPEC | --labeled SPEC --unlabeled SPEC [--validation SPEC] [--test SPEC]]" >&2
  exit 2
}
# Paths the user types are relative to where they typed them, not to this script.
absolute() { case "$1" in /*|*://*) echo "$1" ;; *) echo "$caller_dir/$1" ;; esac; }
absolute_spec() {
  case "$1" in
    folder:*|images:*|tfrecord:*) echo "${1%%:*}:$(absolute "${1#*:}")" ;;
    *) echo "$1" ;;
  esac
}

args=()
while [[ $# -gt 0 ]]; do
  [[ "$1" == -h || "$1" == --help ]] && usage
  # The one switch: also train the oracle bound (the unlabeled data's true labels).
  if [[ "$1" == --oracle ]]; then
    args+=("--oracle"); shift; continue
  fi
  name=${1%%=*}
  case "$name" in
    --round|--seed|--verbosity|--work_dir|--config|--dataset|--labeled|--unlabeled|--validation|--test) ;;
    *) echo "error: unknown argument '$1'" >&2; usage ;;
  esac
  if [[ "$1" == *=* ]]; then
    value=${1#*=}; shift
  else
    [[ $# -ge 2 ]] || { echo "error: $1 needs a value" >&2; usage; }
    value=$2; shift 2
  fi
  case "$name" in
    --work_dir) value=$(absolute "$value") ;;
    # A preset named as in the README (configs/…) is found from any directory.
    --config) [[ -e "$(absolute "$value")" || ! -e "$value" ]] && value=$(absolute "$value") ;;
    --dataset|--labeled|--unlabeled|--validation|--test) value=$(absolute_spec "$value") ;;
  esac
  args+=("$name=$value")
done

source scripts/ensure_venv.sh
exec python -m pipelines.iterate "${args[@]}"
