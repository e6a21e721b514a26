"""`python -m pipelines.iterate`: Noisy Student iterations, teacher → label → student → …

  python -m pipelines.iterate --round=2 --work_dir=runs/digits --config=configs/digits.json
  python -m pipelines.iterate --round=1 --labeled=folder:data/labeled --unlabeled=folder:data/pile \
      --test=folder:data/test --work_dir=runs/mine --config=configs/own_data_cpu.json

`./run_iteration.sh` runs this after its set-up. What a run does, resumes and
writes is described in pipelines/iteration.py, the library this CLI is a thin
layer over.
"""

from __future__ import annotations

from absl import flags

from efficientnet.util import cli
from pipelines import report
from pipelines.iteration import DIGITS_CONFIG, OWN_DATA_CONFIG, run_iteration

_ROUND = flags.DEFINE_integer("round", 2, "Last round to run (0 = teacher only).")
_WORK_DIR = flags.DEFINE_string("work_dir", None, "Directory (local or gs://) for every round's outputs.")
_CONFIG = flags.DEFINE_string(
    "config", None, f"Per-round settings (JSON); default {DIGITS_CONFIG}, or {OWN_DATA_CONFIG} with --labeled."
)
_DATASET = flags.DEFINE_string("dataset", None, "Use this dataset spec for every role of the config.")
_SEED = flags.DEFINE_integer("seed", None, "Override the config's training seed (for repeats over seeds).")
_ORACLE = flags.DEFINE_boolean(
    "oracle",
    False,
    "Also train the oracle: the round-1 student on the true labels of the unlabeled data (the config's `oracle` "
    "entry), the bound the report measures students against. One more student run.",
)
_ROLE_FLAGS = {
    "labeled": flags.DEFINE_string("labeled", None, "Labeled data, e.g. folder:PATH with one subfolder per class."),
    "unlabeled": flags.DEFINE_string("unlabeled", None, "Unlabeled data, e.g. folder:PATH or 'images:PATH/**/*.jpg'."),
    "validation": flags.DEFINE_string(
        "validation", None, "Labeled data to choose settings on; default: 10% of --labeled, held out."
    ),
    "test": flags.DEFINE_string("test", None, "Labeled data to report on; default: none (validation only)."),
}


def main(argv):
    del argv
    data = {role: flag.value for role, flag in _ROLE_FLAGS.items()}
    own_data = bool(data["labeled"])
    config_path = _CONFIG.value or (OWN_DATA_CONFIG if own_data else DIGITS_CONFIG)
    work_dir = _WORK_DIR.value or ("runs/own-data" if own_data else "runs/digits")
    summary = run_iteration(
        work_dir, _ROUND.value, config_path, _DATASET.value, _SEED.value, data, oracle=_ORACLE.value
    )
    print(report.console_summary(summary))


if __name__ == "__main__":
    cli.run(main)
