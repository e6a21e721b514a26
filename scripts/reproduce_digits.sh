#!/usr/bin/env bash
# The README's digits tables, from scratch: every protocol and variant over
# seeds 0, 1 and 2, each run in its own work directory with the oracle bound,
# then one mean ± std table per variant (pipelines.compare_runs).
#
#   scripts/reproduce_digits.sh [WORK_ROOT] [VARIANT ...]
#
# WORK_ROOT defaults to runs/reproduce. Variants (configs/<variant>.json):
# digits (150 labels), digits_4_per_class (40 labels), digits_larger_students,
# digits_hard_labels; all four by default. A run takes 10-13 minutes on a
# 2-core CPU (larger students about 30), so all of them take about 3.5 hours.
# Resumable: rerun the same command and finished steps (recorded in each run's
# rounds.json) are skipped.
# The tables go to WORK_ROOT/<variant>.md as well as to the console.
set -euo pipefail
cd "$(dirname "$0")/.."
work_root=${1:-runs/reproduce}
shift || true
variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(digits digits_4_per_class digits_larger_students digits_hard_labels)
for variant in "${variants[@]}"; do
  [[ -f "configs/$variant.json" ]] || { echo "error: no configs/$variant.json" >&2; exit 2; }
done

source scripts/ensure_venv.sh
for variant in "${variants[@]}"; do
  dirs=()
  for seed in 0 1 2; do
    dir="$work_root/$variant/seed$seed"
    echo "[reproduce] $variant, seed $seed -> $dir" >&2
    ./run_iteration.sh --round 2 --oracle --seed "$seed" --config "configs/$variant.json" --work_dir "$dir" >/dev/null
    dirs+=("$dir")
  done
  python -m pipelines.compare_runs "${dirs[@]}" | tee "$work_root/$variant.md"
done
