#!/usr/bin/env bash
# How the 40-label recipe of configs/digits_4_per_class.json was chosen, on the
# validation split only (docs/results.md#choosing-the-40-label-recipe-on-validation).
# Each variant is the standard recipe (configs/digits.json) derived for 4 labels
# per class as pipelines.label_curve derives it, run for three rounds with one
# TensorFlow thread, so that the variants of one seed share a bit-identical
# teacher and differ only in what they change:
#   soft      soft pseudo-labels, confidence >= 0.3 (the recipe before)
#   hard      hard pseudo-labels (the teacher's argmax, one-hot), confidence >= 0.3
#   hard_t07  hard pseudo-labels, confidence >= 0.7
#   soft_t07  soft pseudo-labels, confidence >= 0.7
#   hard_t07_m9  hard_t07 with the students' RandAugment magnitude 9 instead of 5
# The runs of `hard` also train the oracle (the same for every variant of a seed).
#
#   scripts/choose_digits_40.sh [WORK_ROOT] [VARIANT:SEED ...]
#
# WORK_ROOT defaults to runs/choose40; the runs default to every variant with
# seed 0, then hard and hard_t07 with seeds 1 and 2, then hard_t07_m9 with
# seeds 0, 1, 2, two at a time (about 15
# minutes a run on one core of the 2-core Intel Xeon). Resumable like
# ./run_iteration.sh. Ends with the validation accuracy of every finished run.
set -euo pipefail
cd "$(dirname "$0")/.."
work_root=${1:-runs/choose40}
shift || true
runs=("$@")
[[ ${#runs[@]} -gt 0 ]] || runs=(soft:0 hard:0 hard_t07:0 soft_t07:0 hard:1 hard_t07:1 hard:2 hard_t07:2 hard_t07_m9:0 hard_t07_m9:1 hard_t07_m9:2)
source scripts/ensure_venv.sh
python - "$work_root/configs" <<'EOF'
import copy, os, sys
from efficientnet.util import fileio
from pipelines.iteration import load_config
from pipelines.label_curve import derive_config

base = derive_config(load_config("configs/digits.json"), 4) | {"rounds": [{}, {}, {}]}
for name, label_type, threshold, magnitude in [
    ("soft", "soft", 0.3, 5), ("hard", "hard", 0.3, 5), ("hard_t07", "hard", 0.7, 5), ("soft_t07", "soft", 0.7, 5),
    ("hard_t07_m9", "hard", 0.7, 9),
]:
    config = copy.deepcopy(base)
    config["pseudolabel"] |= {"label_type": label_type, "confidence_threshold": threshold}
    config["student"] |= {"randaugment_magnitude": magnitude}
    if label_type == "hard":  # the students' default is soft
        config["student"] |= {"label_type": label_type}
    config["description"] = (
        f"40 labels, {label_type} pseudo-labels, confidence >= {threshold}, students' RandAugment magnitude "
        f"{magnitude}, three rounds"
    )
    fileio.write_json(os.path.join(sys.argv[1], f"{name}.json"), config)
EOF
run() {
  local variant=${1%%:*} seed=${1##*:} oracle=()
  [[ $variant == hard ]] && oracle=(--oracle)
  local dir=$work_root/$variant/seed$seed
  mkdir -p "$(dirname "$dir")"
  echo "[choose40] $variant, seed $seed -> $dir (log: $dir.log)" >&2
  TF_NUM_INTRAOP_THREADS=1 ./run_iteration.sh --round 3 --seed "$seed" --config "$work_root/configs/$variant.json" \
    --work_dir "$dir" "${oracle[@]}" >>"$dir.log" 2>&1 || echo "error: $variant, seed $seed failed; see $dir.log" >&2
}
for ((i = 0; i < ${#runs[@]}; i += 2)); do
  run "${runs[i]}" &
  if ((i + 1 < ${#runs[@]})); then run "${runs[i + 1]}" & fi
  wait
done
python - "$work_root"/*/seed*/report.json <<'EOF'
import json, sys

for path in sys.argv[1:]:
    models = json.load(open(path))["models"]
    print(path, *(f"{m['role']}{m['round']}={m['validation']:.3f}" for m in models))
EOF
