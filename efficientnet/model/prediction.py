"""The top-k classes of an export for every image of a dataset, as JSON lines.

`python -m pipelines.predict` is the command; `predict_to_jsonl` is what it
and the tests call. Images are read as stored (`Source.examples(decode=False)`,
so any dataset spec works, the same ids as everywhere else) and classified
through the one inference path (`Predictor`: the export's own resolution and
eval crop). Each image gives one line, in input order:

  {"id": "photos/3/a.png", "top_k": [{"class": "3", "index": 3, "probability": 0.91}, ...]}
  {"id": "photos/3/broken.png", "error": "Unknown image file format. ..."}

An undecodable image (or a record that could not be read) gets an `error`
line and is counted; it never stops the run, as in the labeling job. Class
names come from the export's metadata, else the index as a string. The file
is written under a temporary name and renamed at the end, so an interrupted
run leaves no partial file under the output name.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from efficientnet.data.datasets import open_source
from efficientnet.data.source import for_python_loop
from efficientnet.model import export
from efficientnet.model.inference import Predictor, softmax
from efficientnet.util import fileio
from efficientnet.util.progress import ProgressLine

DEFAULT_TOP_K = 5
DEFAULT_BATCH_SIZE = 64  # images decoded and classified per call
PROBABILITY_DIGITS = 6  # enough to order the classes; the lines stay readable


@dataclasses.dataclass(frozen=True)
class PredictionSummary:
    """What a prediction run wrote."""

    output: str
    num_classified: int
    num_undecodable: int


def top_k(probabilities: np.ndarray, k: int, class_names: list[str] | None) -> list[dict]:
    """The k most probable classes of one image, most probable first (ties: lower index first)."""
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [
        {
            "class": class_names[index] if class_names else str(index),
            "index": int(index),
            "probability": round(float(probabilities[index]), PROBABILITY_DIGITS),
        }
        for index in order
    ]


def predict_to_jsonl(
    export_dir: str,
    input_spec: str,
    output: str,
    *,
    split: str | None = None,
    data_dir: str | None = None,
    top_k_classes: int = DEFAULT_TOP_K,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> PredictionSummary:
    """Writes one JSON line per image of `input_spec`/`split` into `output` (module docstring).

    `top_k_classes` larger than the model's number of classes is clipped to it.
    Bad settings, a missing export or dataset and an unwritable output
    directory raise ValueError / FileNotFoundError naming the flag or file,
    before the model is loaded.
    """
    if top_k_classes < 1:
        raise ValueError(f"--top_k must be >= 1, got {top_k_classes}")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    if tf.io.gfile.isdir(output):
        raise ValueError(f"--output {output!r} is a directory; name the .jsonl file to write")
    source = open_source(input_spec, data_dir=data_dir)
    source.check_split(split)
    source.require_images(split)  # a spec that yields no image is a reading error, not N error lines
    export_dir = export.resolve_export_dir(export_dir)
    fileio.check_writable_dir(os.path.dirname(output) or ".", "the directory of --output")
    predictor = Predictor.from_export(export_dir)
    k = min(top_k_classes, predictor.num_classes)
    class_names = predictor.class_names

    examples = source.examples(split, decode=False).map(lambda example: (example["id"], example["encoded"]))
    label = f"predict {input_spec}" + (f" {split}" if split else "")
    progress = ProgressLine(label, source.num_examples(split))
    classified = undecodable = 0
    with fileio.atomic_writer(output, "w") as f:
        for ids, encoded in for_python_loop(examples.batch(batch_size).prefetch(1)):
            views, good, errors = predictor.views_of_encoded(list(encoded))
            lines: list[dict] = [{} for _ in ids]
            if good:
                for index, row in zip(good, softmax(predictor.logits(views, batch_size)), strict=True):
                    lines[index] = {"id": ids[index].decode(), "top_k": top_k(row, k, class_names)}
            for index, message in errors:
                lines[index] = {"id": ids[index].decode(), "error": message}
            f.write("".join(json.dumps(line) + "\n" for line in lines))
            classified += len(good)
            undecodable += len(errors)
            progress.advance(len(ids), failed=len(errors))
    progress.close()
    return PredictionSummary(output, classified, undecodable)
