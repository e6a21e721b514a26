"""Reading an unlabeled corpus into Beam as `(id, encoded image bytes)`.

Any `efficientnet.data.datasets` spec works; each kind is read the way that scales
for it, and each gives every image an id that is unique within the corpus and
the same on every rerun (the balancing step joins on it):

  tfrecord:GLOB  `ReadAllFromTFRecord(with_filename=True)`: a splittable read,
                 files are cut into byte ranges that workers read in parallel,
                 so one huge file is not one worker's job. A range reader does
                 not know a record's position in its file, so the id is
                 `PATH#<sha256 of the record, 24 hex digits>` instead of the
                 `PATH#INDEX` of `efficientnet.data.datasets`. Identical records in
                 one file share an id; they are the same image with the same
                 prediction, and the join writes one copy per selection, so
                 balancing stays exact. `image/encoded` is passed on untouched
                 (the original JPEG/PNG bytes).
  folder:PATH    `fileio.MatchFiles` on `PATH/*/*` (the source's class-subfolder
                 layout; the folder names are ignored, the images are treated as
                 unlabeled), reshuffled so that reading is spread over workers;
                 the id is the file path, as in `efficientnet.data.datasets`, and
                 the bytes are the file's.
  digits, tfds:NAME
                 iterated through `Source.examples(split)` in one DoFn: digits
                 is in memory and TFDS manages its own files, decoding included.
                 Images are re-encoded as PNG (lossless) for the records and the
                 stream is reshuffled so inference still runs on all workers.
                 The id is the source's (`digits/INDEX`, the TFDS file name or
                 `NAME/SPLIT#INDEX`). Reading is sequential: for a large TFDS
                 corpus, point `tfrecord:` at ImageNet-format files instead.

Records that are not `tf.train.Example`s with an `image/encoded` feature go to
the dead-letter output like undecodable images.
"""

from __future__ import annotations

import hashlib
import os

import apache_beam as beam
import tensorflow as tf
from apache_beam.io import fileio as beam_fileio
from apache_beam.io.tfrecordio import ReadAllFromTFRecord

from efficientnet.data.datasets import IMAGE_EXTENSIONS, open_source

FAILED = "failed"  # tag of the dead-letter output
RECORD_HASH_DIGITS = 24  # 96 bits: collisions within one file are out of reach


def source_kind(spec: str) -> str:
    """`tfrecord`, `folder`, `digits` or `tfds`; anything else is refused."""
    kind = spec.partition(":")[0]
    if kind not in ("tfrecord", "folder", "digits", "tfds"):
        raise ValueError(f"--input must be a tfrecord:, folder:, tfds: or digits source, got {spec!r}")
    return kind


def check_input(spec: str, split: str | None, data_dir: str | None) -> None:
    """Fails early, in the launcher, with a message naming what is wrong.

    Only cheap checks: listing a large folder or bucket is the pipeline's job.
    """
    kind = source_kind(spec)
    argument = spec.partition(":")[2]
    if kind in ("tfrecord", "folder"):
        if split is not None:
            raise ValueError(f"{spec!r} has no splits; drop --split={split} and point the spec at the files")
        if kind == "tfrecord" and not tf.io.gfile.glob(argument):
            raise FileNotFoundError(f"no files match tfrecord pattern {argument!r}")
        if kind == "folder" and not tf.io.gfile.isdir(argument):
            raise FileNotFoundError(f"image folder {argument!r} does not exist")
    else:
        open_source(spec, data_dir=data_dir).num_examples(split)  # checks the split, listing the valid ones


def record_id(path: str, record: bytes) -> str:
    return f"{path}#{hashlib.sha256(record).hexdigest()[:RECORD_HASH_DIGITS]}"


def _image_bytes_of_record(path_and_record: tuple[str, bytes]):
    path, record = path_and_record
    example_id = record_id(path, record)
    try:
        feature = tf.train.Example.FromString(record).features.feature
        values = feature["image/encoded"].bytes_list.value if "image/encoded" in feature else []
    except Exception as error:  # noqa: BLE001 (any parse failure is a dead letter)
        yield beam.pvalue.TaggedOutput(FAILED, {"id": example_id, "error": f"not a tf.train.Example: {error}"})
        return
    if len(values) != 1:
        yield beam.pvalue.TaggedOutput(FAILED, {"id": example_id, "error": "record has no image/encoded bytes"})
        return
    yield example_id, values[0]


def _read_file(readable) -> tuple[str, bytes]:
    return readable.metadata.path, readable.read()


class _SourceExamplesFn(beam.DoFn):
    """Iterates a `digits`/`tfds:` split, PNG-encoding each image."""

    def __init__(self, spec: str, split: str, data_dir: str | None):
        self._spec, self._split, self._data_dir = spec, split, data_dir

    def process(self, unused_element):
        source = open_source(self._spec, data_dir=self._data_dir)
        for example in source.examples(self._split):
            yield example["id"].numpy().decode(), tf.io.encode_png(example["image"]).numpy()


class ReadImages(beam.PTransform):
    """`{"images": (id, encoded bytes), "failed": {"id", "error"}}` of `spec`."""

    def __init__(self, spec: str, split: str | None = None, data_dir: str | None = None):
        super().__init__()
        self._spec, self._split, self._data_dir = spec, split, data_dir

    def expand(self, pipeline):
        kind = source_kind(self._spec)
        argument = self._spec.partition(":")[2]
        if kind == "tfrecord":
            outputs = (
                pipeline
                | "Pattern" >> beam.Create([argument])
                | "ReadRecords" >> ReadAllFromTFRecord(with_filename=True)
                | "ImageBytes" >> beam.FlatMap(_image_bytes_of_record).with_outputs(FAILED, main="images")
            )
            return {"images": outputs.images, FAILED: outputs[FAILED]}
        if kind == "folder":
            images = (
                pipeline
                | "Match" >> beam_fileio.MatchFiles(os.path.join(argument, "*", "*"))
                | "KeepImages" >> beam.Filter(lambda metadata: metadata.path.lower().endswith(IMAGE_EXTENSIONS))
                | "SpreadFiles" >> beam.Reshuffle()
                | "Open" >> beam_fileio.ReadMatches()
                | "ReadBytes" >> beam.Map(_read_file)
            )
        else:
            images = (
                pipeline
                | "Start" >> beam.Create([None])
                | "Examples" >> beam.ParDo(_SourceExamplesFn(self._spec, self._split, self._data_dir))
                | "Spread" >> beam.Reshuffle()
            )
        # Files and in-memory examples can only fail later, at decoding.
        return {"images": images, FAILED: pipeline | "NoReadFailures" >> beam.Create([])}
