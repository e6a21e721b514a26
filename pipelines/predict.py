"""Classify every image of a dataset with an exported model: one JSON line per image.

  python -m pipelines.predict --export=runs/digits/round2-student/export \\
      --input=folder:/data/photos --output=predictions.jsonl --top_k=3

  python -m pipelines.predict --export=gs://bucket/b7/export --input='tfrecord:gs://bucket/new/*' \\
      --output=gs://bucket/predictions/new.jsonl

Writes `{"id", "top_k": [{"class", "index", "probability"}, ...]}` per image, in
input order, or `{"id", "error"}` for an image that cannot be decoded (counted,
never fatal); see efficientnet/model/prediction.py, the library function behind
it. A progress line with images/s (and an ETA where the source can count its
images) runs on stderr, and a last line says how many images were classified,
how many were undecodable, and where the file is. Bad input ends with one
`error: ...` line and exit status 2, before the model is loaded.
"""

from __future__ import annotations

import sys

from absl import flags

from efficientnet.model.prediction import DEFAULT_BATCH_SIZE, DEFAULT_TOP_K, predict_to_jsonl
from efficientnet.util import cli

_EXPORT = flags.DEFINE_string("export", None, "Export directory (model.keras + model.json), local or gs://.")
_INPUT = flags.DEFINE_string("input", None, "Dataset spec: folder:PATH, images:GLOB, tfrecord:GLOB, tfds:NAME, digits.")
_SPLIT = flags.DEFINE_string("split", None, "Split for digits and tfds: sources (e.g. test).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_OUTPUT = flags.DEFINE_string("output", None, "The JSON-lines file to write (local or gs://).")
_TOP_K = flags.DEFINE_integer(
    "top_k", DEFAULT_TOP_K, "Classes per image, most probable first (clipped to the model's)."
)
_BATCH_SIZE = flags.DEFINE_integer("batch_size", DEFAULT_BATCH_SIZE, "Images per model call.")


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}; flags are written --name=value")
    for flag in (_EXPORT, _INPUT, _OUTPUT):
        if not flag.value:
            raise ValueError(f"--{flag.name} is required")
    summary = predict_to_jsonl(
        _EXPORT.value,
        _INPUT.value,
        _OUTPUT.value,
        split=_SPLIT.value,
        data_dir=_DATA_DIR.value,
        top_k_classes=_TOP_K.value,
        batch_size=_BATCH_SIZE.value,
    )
    print(
        f"classified {summary.num_classified:,} images ({summary.num_undecodable:,} undecodable) into {summary.output}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    cli.run(main)
