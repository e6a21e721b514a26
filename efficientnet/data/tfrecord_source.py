"""`tfrecord:GLOB`: ImageNet-format or pseudo-label TFRecords (efficientnet/data/records.py)."""

from __future__ import annotations

import os

import tensorflow as tf

from efficientnet.data import records
from efficientnet.data.source import SOURCES, Shard, Source
from efficientnet.util import fileio

DATASET_INFO_FILE = "dataset_info.json"  # beside ImageNet-format files: classes they do not store


def write_dataset_info(
    directory: str, num_classes: int, class_names: list[str] | None, files: dict[str, int] | None = None
) -> None:
    """Records what ImageNet-format files in `directory` do not store, for `TfrecordSource`:
    their classes and, optionally, the number of records of each file (by name)."""
    info = {"num_classes": num_classes, "class_names": list(class_names) if class_names else None}
    fileio.write_json(os.path.join(directory, DATASET_INFO_FILE), info | ({"files": files} if files else {}))


@SOURCES.register("tfrecord")
class TfrecordSource(Source):
    """ImageNet-format (`image/encoded`, `image/class/label`) or pseudo-label
    records (`image/encoded`, `probabilities`, `label`, `prob`), told apart by
    the first record. Labels are used as stored (0-based).

    The number of classes of ImageNet-format records is not stored in them:
    it comes from `num_classes` or from a `dataset_info.json` beside the files
    (`{"num_classes": N, "class_names": [...]}`, `write_dataset_info`), else
    stays unknown. The number of records is known when that file also counts
    the records of exactly the files the pattern matches (`"files": {name: count}`). The id
    of a record is `PATH#INDEX`, its position in its file; shards are whole
    files, so ids do not depend on how the files are split between readers.
    """

    reads_files = True

    def __init__(self, argument: str, data_dir: str | None = None):
        super().__init__()
        if not argument:
            raise ValueError("tfrecord source needs a file pattern, e.g. 'tfrecord:/data/train-*'")
        self._pattern, self._num_examples = argument, None
        self.files = sorted(tf.io.gfile.glob(argument))
        if not self.files:
            raise FileNotFoundError(f"no files match tfrecord pattern {argument!r}")
        first = _first_record(self.files)
        if first is None:
            raise ValueError(f"the files matching {argument!r} hold no records")
        feature = tf.train.Example.FromString(first).features.feature
        self.pseudolabeled = "probabilities" in feature
        if self.pseudolabeled:
            self.num_classes = len(feature["probabilities"].float_list.value)
        elif "image/class/label" not in feature or "image/encoded" not in feature:
            raise ValueError(
                f"{self.files[0]!r} is neither ImageNet format (image/encoded, image/class/label) nor "
                f"pseudo-label format (image/encoded, probabilities, label, prob); it has {sorted(feature)}"
            )
        self._read_dataset_info(os.path.dirname(self.files[0]))

    def _read_dataset_info(self, directory: str) -> None:
        path = os.path.join(directory, DATASET_INFO_FILE)
        if tf.io.gfile.exists(path):
            info = fileio.read_json(path)
            self.num_classes = info.get("num_classes", self.num_classes)
            self.class_names = tuple(info["class_names"]) if info.get("class_names") else None
            counts = info.get("files") or {}
            if sorted(counts) == sorted(os.path.basename(path) for path in self.files):
                self._num_examples = sum(counts.values())

    def num_examples(self, split: str | None = None) -> int | None:
        self.check_split(split)
        return self._num_examples

    def looked_for(self, split: str | None) -> str:
        return f"records in the {len(self.files)} file(s) matching {self._pattern!r}"

    def num_shards(self, split: str | None = None) -> int:
        return len(self.files)

    def _raw(self, split, *, shard: Shard, shuffle_files, seed, decode) -> tf.data.Dataset:
        index, count = shard
        files = self.files[index::count]
        names = tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string))
        if shuffle_files:
            names = names.shuffle(len(files), seed=seed)

        def read_file(path):
            return (
                tf.data.TFRecordDataset(path)
                .enumerate()
                .map(lambda i, record: {"id": path + "#" + tf.strings.as_string(i), "record": record})
            )

        return names.interleave(
            read_file, cycle_length=max(1, min(16, len(files))), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    def parse(self, record):
        features = records.PSEUDOLABEL_FEATURES if self.pseudolabeled else records.IMAGENET_FEATURES
        parsed = tf.io.parse_single_example(record["record"], features)
        example = {"id": record["id"], "encoded": parsed["image/encoded"]}
        if self.pseudolabeled:
            return example | {"label": parsed["label"], "probabilities": tf.sparse.to_dense(parsed["probabilities"])}
        return example | {"label": parsed["image/class/label"]}


def _first_record(files: list[str]) -> bytes | None:
    for path in files:
        for record in tf.data.TFRecordDataset(path).take(1):
            return record.numpy()
    return None
