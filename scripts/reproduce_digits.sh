#!/usr/bin/env bash
# The digits tables of docs/results.md, from scratch: every protocol and variant over
# seeds 0, 1 and 2, each run in its own work directory with the oracle bound,
# then one mean ± std table per variant (pipelines.compare_runs).
#
#   scripts/reproduce_digits.sh [--one_thread] [WORK_ROOT] [VARIANT ...]
#
# WORK_ROOT defaults to runs/reproduce. Variants (configs/<variant>.json):
# digits (150 labels), digits_4_per_class (40 labels), digits_larger_students,
# digits_hard_labels; all four by default. A run takes 10-13 minutes on a
# 2-core CPU (larger students about 30), so all of them take about 3.5 hours.
# --one_thread runs a variant's three seeds side by side, each process with one
# TensorFlow thread, into WORK_ROOT/<variant>_one_thread/seedN: one thread fixes
# the float summation order, so variants that share a teacher recipe (digits and
# digits_hard_labels) train bit-identical teachers and oracles, and can be
# compared run for run (docs/results.md#soft-vs-hard-pseudo-labels).
# Resumable: rerun the same command and finished steps (recorded in each run's
# rounds.json) are skipped.
# The tables go to WORK_ROOT/<variant>[_one_thread].md as well as to the console.
set -euo pipefail
cd "$(dirname "$0")/.."
one_thread=false
if [[ "${1:-}" == "--one_thread" ]]; then
  one_thread=true
  shift
fi
work_root=${1:-runs/reproduce}
shift || true
variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(digits digits_4_per_class digits_larger_students digits_hard_labels)
for variant in "${variants[@]}"; do
  [[ -f "configs/$variant.json" ]] || { echo "error: no configs/$variant.json" >&2; exit 2; }
done

source scripts/ensure_venv.sh
for variant in "${variants[@]}"; do
  name=$variant
  $one_thread && name=${variant}_one_thread
  dirs=() pids=()
  for seed in 0 1 2; do
    dir="$work_root/$name/seed$seed"
    dirs+=("$dir")
    command=(./run_iteration.sh --round 2 --oracle --seed "$seed" --config "configs/$variant.json" --work_dir "$dir")
    if $one_thread; then
      echo "[reproduce] $variant, seed $seed, one thread, side by side -> $dir (log: $dir.log)" >&2
      mkdir -p "$(dirname "$dir")"
      TF_NUM_INTRAOP_THREADS=1 "${command[@]}" >"$dir.log" 2>&1 &
      pids+=($!)
    else
      echo "[reproduce] $variant, seed $seed -> $dir" >&2
      "${command[@]}" >/dev/null
    fi
  done
  failed=false
  for pid in "${pids[@]}"; do
    wait "$pid" || failed=true
  done
  $failed && { echo "error: a run of $variant failed; see ${dirs[*]/%/.log}" >&2; exit 1; }
  python -m pipelines.compare_runs "${dirs[@]}" | tee "$work_root/$name.md"
done
