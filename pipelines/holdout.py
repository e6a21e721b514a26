"""A validation set held out of the labeled data, when the user names none.

Settings are chosen on validation data and never on test data
(docs/noisy_student.md#the-digits-protocol). A user who brings one labeled
folder still needs validation images, so the iteration takes a seeded,
stratified `HOLDOUT_FRACTION` of every class out of the labeled data and
copies the two parts into ImageNet-format TFRecords of their own (with their
class names, `dataset_info.json`): the teacher and students train on `train/`
only and are evaluated on `validation/`, so no training step can see a held-out
image, whatever the source. Copying the labeled set once is cheap at the sizes
people label by hand; for large labeled sets, pass a validation set instead.

`holdout.json` is written last: its presence marks a complete split, and a
rerun reuses it (refusing a different source, fraction or seed).
`validation_ids.txt` lists the held-out images by id (their path for image
folders).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf

from efficientnet.data import records
from efficientnet.data.datasets import open_source
from efficientnet.data.preprocessing import decode_image
from efficientnet.data.source import TRAIN, UNKNOWN_LABEL
from efficientnet.data.tfrecord_source import write_dataset_info
from efficientnet.util import fileio

HOLDOUT_FRACTION = 0.1
SUMMARY_FILE = "holdout.json"  # written last
IDS_FILE = "validation_ids.txt"
PARTS = ("train", "validation")
RECORDS_PER_FILE = 1024


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A boolean mask of the held-out examples: `fraction` of each class, at random.

    round(fraction × n) images of a class of n, but at least one when the
    class has two or more (so every class is validated) and never all of
    them (so every class is trained on); a class of one image stays in
    training. Negative labels (unreadable images) are never held out.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), bool)
    for label in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == label)
        count = len(members)
        held = min(max(round(fraction * count), 1), count - 1) if count >= 2 else 0
        mask[rng.permutation(members)[:held]] = True
    return mask


def dataset_spec(directory: str, part: str) -> str:
    """The `tfrecord:` spec of one part (train or validation) of a holdout directory."""
    return f"tfrecord:{os.path.join(directory, part, 'part-*.tfrecord')}"


def hold_out(
    spec: str, split: str | None, directory: str, *, fraction: float, seed: int, data_dir: str | None = None
) -> dict[str, Any]:
    """Splits `spec` (at `split`) into `directory/train` and `directory/validation`.

    Returns the summary (also `directory/holdout.json`): the two parts'
    dataset specs, counts per class, and how many images were unreadable
    (left out of both).
    """
    summary_path = os.path.join(directory, SUMMARY_FILE)
    wanted = {"source": spec, "split": split, "fraction": fraction, "seed": seed}
    if tf.io.gfile.exists(summary_path):
        summary = fileio.read_json(summary_path)
        if {key: summary.get(key) for key in wanted} != wanted:
            raise ValueError(f"{summary_path} holds a split of other data or settings; use a new --work_dir")
        return summary
    if tf.io.gfile.exists(directory):
        tf.io.gfile.rmtree(directory)  # an interrupted split: start it over

    source = open_source(spec, data_dir=data_dir)
    read_split = source.resolve_split(split, TRAIN)
    if not source.labeled:
        raise ValueError(f"{spec!r} has no labels (no class subfolders): it cannot be the labeled data")
    source.require_images(read_split)
    # Undecodable images count as unreadable (label -1): they go to neither part.
    labels = np.array(
        [
            example["label"] if _decodes(example["encoded"]) else UNKNOWN_LABEL
            for example in source.examples(read_split, decode=False).as_numpy_iterator()
        ],
        np.int64,
    )
    held = stratified_holdout(labels, fraction, seed)
    if not held.any():
        raise ValueError(f"{spec!r} has too few images per class to hold out a validation set; give one (--validation)")

    writers = {part: _ShardedWriter(os.path.join(directory, part)) for part in PARTS}
    validation_ids = []
    for index, example in enumerate(source.examples(read_split, decode=False).as_numpy_iterator()):
        if labels[index] == UNKNOWN_LABEL:
            continue
        part = "validation" if held[index] else "train"
        writers[part].write(records.encode_labeled(example["encoded"], example["label"]))
        if held[index]:
            validation_ids.append(example["id"].decode())
    num_classes = source.num_classes or int(labels.max()) + 1
    for part, writer in writers.items():
        writer.close()
        write_dataset_info(os.path.join(directory, part), num_classes, source.class_names, writer.counts)
    fileio.write_bytes(os.path.join(directory, IDS_FILE), "".join(f"{i}\n" for i in validation_ids).encode())

    readable = labels != UNKNOWN_LABEL
    summary = wanted | {
        "read_split": read_split,
        "train": dataset_spec(directory, "train"),
        "validation": dataset_spec(directory, "validation"),
        "num_train": int(np.sum(readable & ~held)),
        "num_validation": int(np.sum(held)),
        "validation_per_class": np.bincount(labels[held], minlength=num_classes).tolist(),
        "num_unreadable": int(np.sum(~readable)),
        "class_names": list(source.class_names) if source.class_names else None,
        "validation_ids": os.path.join(directory, IDS_FILE),
    }
    fileio.write_json(summary_path, summary)
    return summary


def _decodes(encoded: bytes) -> bool:
    try:
        decode_image(encoded)
    except tf.errors.InvalidArgumentError:
        return False
    return True


class _ShardedWriter:
    """TFRecord files `part-NNNNN.tfrecord` of at most RECORDS_PER_FILE records each."""

    def __init__(self, directory: str):
        self._directory, self._writer = directory, None
        self.counts: dict[str, int] = {}  # records per file name
        tf.io.gfile.makedirs(directory)

    def write(self, record: bytes) -> None:
        if self._writer is None or self.counts[self._name] == RECORDS_PER_FILE:
            self.close()
            self._name = f"part-{len(self.counts):05d}.tfrecord"
            self._writer = tf.io.TFRecordWriter(os.path.join(self._directory, self._name))
            self.counts[self._name] = 0
        self._writer.write(record)
        self.counts[self._name] += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
