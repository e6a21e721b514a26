"""Top-1 / top-5 accuracy of an exported model on a dataset split.

  python -m teacher.evaluate --model=runs/teacher/export --dataset=digits --split=test

Preprocessing (resolution, crop) comes from the export's model.json.
"""

from __future__ import annotations

import json

from absl import flags

from efficientnet.model.evaluation import evaluate_export
from efficientnet.util import cli

_MODEL = flags.DEFINE_string("model", None, "Export directory (or a model_dir holding export/).", required=True)
_DATASET = flags.DEFINE_string("dataset", "digits", "digits, tfds:NAME, tfrecord:GLOB or folder:PATH.")
_SPLIT = flags.DEFINE_string(
    "split", None, "Split to evaluate; default: test (validation for TFDS sets without test), none for file sources."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.")


def main(argv):
    del argv
    metrics = evaluate_export(
        _MODEL.value, _DATASET.value, _SPLIT.value or None, data_dir=_DATA_DIR.value, batch_size=_BATCH_SIZE.value
    )
    print(json.dumps(metrics))


if __name__ == "__main__":
    cli.run(main)
