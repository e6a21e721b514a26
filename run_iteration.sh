#!/usr/bin/env bash
# Noisy Student iterations: round 0 trains the teacher; round k labels the
# unlabeled data with round k-1's model and trains student k.
#
#   ./run_iteration.sh --round 2 [--work_dir DIR] [--dataset SPEC] [--config FILE]
#
# Does its own set-up (creates or reuses .venv from requirements.txt).
set -euo pipefail
cd "$(dirname "$0")"

round=2
work_dir=runs/digits
dataset=digits
config=""
usage() { echo "usage: $0 --round N [--work_dir DIR] [--dataset SPEC] [--config FILE]" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --round) round="${2:?--round needs a value}"; shift 2 ;;
    --round=*) round="${1#*=}"; shift ;;
    --work_dir) work_dir="${2:?--work_dir needs a value}"; shift 2 ;;
    --work_dir=*) work_dir="${1#*=}"; shift ;;
    --dataset) dataset="${2:?--dataset needs a value}"; shift 2 ;;
    --dataset=*) dataset="${1#*=}"; shift ;;
    --config) config="${2:?--config needs a value}"; shift 2 ;;
    --config=*) config="${1#*=}"; shift ;;
    -h|--help) usage ;;
    *) echo "error: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ "$round" =~ ^[0-9]+$ ]] || { echo "error: --round must be a non-negative integer, got '$round'" >&2; exit 2; }

source scripts/ensure_venv.sh

# What exists today: the EfficientNet core. Show the model the digits rounds use.
echo "[round plan] rounds 0..$round on dataset '$dataset' in '$work_dir'${config:+ with config '$config'}"
python -m efficientnet.summary --model=efficientnet-b0 --width=0.25 --depth=0.25 \
  --resolution=32 --small_images --num_classes=10

cat >&2 <<'MSG'
[not yet implemented] the pipeline steps after the model core are missing:
  - input pipeline and the embedded digits split (issue 3)
  - teacher training and export (issue 4)
  - Beam pseudo-labeling (issue 5)
  - student training, the round manifest and the report (issue 6)
Nothing was trained; see README.md for what works today.
MSG
exit 1
