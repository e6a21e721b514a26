"""`digits`: the UCI handwritten digits, shipped in the package, the offline default dataset.

The 1,797 8x8 images come as `digits.csv.gz` beside this module (origin and
licence in `digits.NOTICE.txt`): the same file, in the same order, as
scikit-learn's `load_digits()`. They are read with numpy rather than through
scikit-learn, because Keras imports scikit-learn whenever it is installed,
which costs every TensorFlow process of the pipeline more than a second.

The digits protocol (docs/noisy_student.md#the-digits-protocol, README): a
fixed permutation with seed 0; the first 500 images are the test split; of
the rest, the first 15 per class are labeled; of what remains, the first 200
are a validation split for choosing settings (so nothing is tuned on test)
and the other 947 are unlabeled.

`digits:per_class=N` (1 ≤ N ≤ 15) is the scarce-label variant: the labeled
split keeps the first N per class of those 15, and every other split stays
the same images, so results of both protocols compare on one test set and one
unlabeled pool. The split `unlabeled_with_labels` is the unlabeled pool with
its true labels: it exists only to train the oracle, the bound that tells how
much of the teacher's gap to full supervision a student closes.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import tensorflow as tf

from efficientnet.data.source import EVAL, SOURCES, TRAIN, UNKNOWN_LABEL, Shard, Source

DIGITS_SEED = 0
DIGITS_TEST_SIZE = 500
DIGITS_LABELED_PER_CLASS = 15
PER_CLASS_ARGUMENT = "per_class="
ORACLE_SPLIT = "unlabeled_with_labels"
DIGITS_VALIDATION_SIZE = 200
DIGITS_MAX_PIXEL = 16  # the digits are 4-bit intensities 0..16
DIGITS_FILE = Path(__file__).with_name("digits.csv.gz")


@functools.cache
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: 8x8 uint8 images with intensities 0..16, and their labels 0..9."""
    table = np.loadtxt(DIGITS_FILE, delimiter=",", dtype=np.uint8)
    images, labels = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False  # shared by every caller
    return images, labels


def digits_split_indices(labeled_per_class: int = DIGITS_LABELED_PER_CLASS) -> dict[str, np.ndarray]:
    """Indices into `load_digits()` for each digits split.

    With fewer than 15 labeled images per class, the labeled split is the
    first `labeled_per_class` of each class's 15; the images it drops are used
    nowhere, so validation, unlabeled and test are the same for every N.
    """
    if not 1 <= labeled_per_class <= DIGITS_LABELED_PER_CLASS:
        raise ValueError(f"digits: per_class must be 1..{DIGITS_LABELED_PER_CLASS}, got {labeled_per_class}")
    _, labels = load_digits()
    order = np.random.default_rng(DIGITS_SEED).permutation(len(labels))
    test, rest = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    labeled_mask, kept_mask = np.zeros(len(rest), bool), np.zeros(len(rest), bool)
    for digit in range(10):
        of_digit = np.flatnonzero(labels[rest] == digit)
        labeled_mask[of_digit[:DIGITS_LABELED_PER_CLASS]] = True
        kept_mask[of_digit[:labeled_per_class]] = True
    pool = rest[~labeled_mask]
    return {
        "train": rest[kept_mask],
        "validation": pool[:DIGITS_VALIDATION_SIZE],
        "unlabeled": pool[DIGITS_VALIDATION_SIZE:],
        ORACLE_SPLIT: pool[DIGITS_VALIDATION_SIZE:],
        "test": test,
    }


def digits_withheld_labels() -> dict[str, int]:
    """True labels of the unlabeled split by example id.

    Only for measuring pseudo-label accuracy: training code reads the unlabeled
    split through `DigitsSource`, which yields label -1.
    """
    _, labels = load_digits()
    return {_digits_id(i): int(labels[i]) for i in digits_split_indices()["unlabeled"]}


def _digits_id(index: int) -> str:
    return f"digits/{index}"


@SOURCES.register("digits")
class DigitsSource(Source):
    """The 1,797 real 8x8 handwritten digits of UCI, shipped with the package."""

    num_classes = 10
    class_names = tuple(str(digit) for digit in range(10))
    split_names = ("train", "validation", "unlabeled", "test", ORACLE_SPLIT)

    def __init__(self, argument: str = "", data_dir: str | None = None):
        super().__init__()
        images, self._labels = load_digits()
        gray = np.rint(images * (255 / DIGITS_MAX_PIXEL)).astype(np.uint8)
        self._images = np.repeat(gray[..., None], 3, axis=-1)
        self._splits = digits_split_indices(_labeled_per_class(argument))

    def default_split(self, purpose: str) -> str:
        return {TRAIN: "train", EVAL: "test"}[purpose]

    def num_examples(self, split: str | None = None) -> int:
        self.check_split(split)
        return len(self._splits[split])

    def num_files(self, split: str | None = None) -> int:
        return self.num_examples(split)  # held in memory: `shard=` deals out single images

    def _raw(self, split, *, shard: Shard, shuffle_files, seed, decode) -> tf.data.Dataset:
        index, count = shard
        indices = self._splits[split][index::count]
        labels = self._labels[indices] if split != "unlabeled" else np.full(len(indices), UNKNOWN_LABEL, np.int64)
        return tf.data.Dataset.from_tensor_slices(
            {"id": np.array([_digits_id(i) for i in indices]), "image": self._images[indices], "label": labels}
        )


def _labeled_per_class(argument: str) -> int:
    """N of `digits:per_class=N`; 15 (the standard protocol) without an argument."""
    if not argument:
        return DIGITS_LABELED_PER_CLASS
    value = argument.removeprefix(PER_CLASS_ARGUMENT)
    if argument == value or not value.isdigit():
        raise ValueError(f"the digits source takes 'digits' or 'digits:per_class=N', got 'digits:{argument}'")
    return int(value)
