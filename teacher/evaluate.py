"""Top-1 / top-5 accuracy of an exported model on a dataset split.

  python -m teacher.evaluate --model=runs/teacher/export --dataset=digits --split=test

Preprocessing (resolution, crop) comes from the export's model.json.
"""

from __future__ import annotations

import json

from absl import flags

from efficientnet import cli, export
from efficientnet.datasets import open_source
from efficientnet.training import evaluate

_MODEL = flags.DEFINE_string("model", None, "Export directory (or a model_dir holding export/).", required=True)
_DATASET = flags.DEFINE_string("dataset", "digits", "digits, tfds:NAME, tfrecord:GLOB or folder:PATH.")
_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate; empty for tfrecord/folder sources.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.")


def evaluate_export(model_path: str, dataset: str, split: str | None, *, data_dir=None, batch_size=256) -> dict:
    model, metadata = export.load_export(model_path)
    source = open_source(dataset, data_dir=data_dir)
    if source.num_classes not in (None, metadata["num_classes"]):
        raise ValueError(
            f"{model_path} predicts {metadata['num_classes']} classes but {dataset!r} has {source.num_classes}"
        )
    return evaluate(model, source, split, metadata["input"]["resolution"], batch_size)


def main(argv):
    del argv
    metrics = evaluate_export(
        _MODEL.value, _DATASET.value, _SPLIT.value or None, data_dir=_DATA_DIR.value, batch_size=_BATCH_SIZE.value
    )
    print(json.dumps(metrics))


if __name__ == "__main__":
    cli.run(main)
