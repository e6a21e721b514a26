#!/usr/bin/env bash
# The label-efficiency curve (docs/results.md#label-efficiency-curve): the
# iteration with the oracle at 1, 2, 4, 8 and 15 labeled digits per class,
# seeds 0, 1 and 2, then a table and a plot in WORK_DIR (runs/label-curve).
#
#   scripts/label_curve.sh [--work_dir DIR] [--config FILE] [--per_class 1,2,4,8,15] [--seeds 0,1,2] [--round 2] [--jobs K]
#   nohup scripts/label_curve.sh > runs/label-curve.log 2>&1 &     # in the background
#
# Paths are relative to the repository root. Resumable: rerun the same command
# and finished runs are skipped, interrupted ones resume from their checkpoints.
# Does its own set-up, as ./run_iteration.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/ensure_venv.sh
exec python -m pipelines.label_curve "$@"
