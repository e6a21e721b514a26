"""`digits`: scikit-learn's bundled handwritten digits, the offline default dataset.

The digits protocol (docs/noisy_student.md#the-digits-protocol, README): a
fixed permutation with seed 0; the first 500 images are the test split; of
the rest, the first 15 per class are labeled; of what remains, the first 200
are a validation split for choosing settings (so nothing is tuned on test)
and the other 947 are unlabeled.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from efficientnet.data.source import EVAL, SOURCES, TRAIN, UNKNOWN_LABEL, Shard, Source

DIGITS_SEED = 0
DIGITS_TEST_SIZE = 500
DIGITS_LABELED_PER_CLASS = 15
DIGITS_VALIDATION_SIZE = 200
DIGITS_MAX_PIXEL = 16  # sklearn's digits are 4-bit intensities 0..16


def digits_split_indices() -> dict[str, np.ndarray]:
    """Indices into `sklearn.datasets.load_digits()` for each digits split."""
    from sklearn.datasets import load_digits

    labels = load_digits().target
    order = np.random.default_rng(DIGITS_SEED).permutation(len(labels))
    test, rest = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    labeled_mask = np.zeros(len(rest), bool)
    for digit in range(10):
        labeled_mask[np.flatnonzero(labels[rest] == digit)[:DIGITS_LABELED_PER_CLASS]] = True
    pool = rest[~labeled_mask]
    return {
        "train": rest[labeled_mask],
        "validation": pool[:DIGITS_VALIDATION_SIZE],
        "unlabeled": pool[DIGITS_VALIDATION_SIZE:],
        "test": test,
    }


def digits_withheld_labels() -> dict[str, int]:
    """True labels of the unlabeled split by example id.

    Only for measuring pseudo-label accuracy: training code reads the unlabeled
    split through `DigitsSource`, which yields label -1.
    """
    from sklearn.datasets import load_digits

    labels = load_digits().target
    return {_digits_id(i): int(labels[i]) for i in digits_split_indices()["unlabeled"]}


def _digits_id(index: int) -> str:
    return f"digits/{index}"


@SOURCES.register("digits")
class DigitsSource(Source):
    """scikit-learn's 1,797 real 8x8 handwritten digits (UCI), bundled offline."""

    num_classes = 10
    class_names = tuple(str(digit) for digit in range(10))
    split_names = ("train", "validation", "unlabeled", "test")

    def __init__(self, argument: str = "", data_dir: str | None = None):
        super().__init__()
        if argument:
            raise ValueError(f"the digits source takes no argument, got 'digits:{argument}'")
        from sklearn.datasets import load_digits

        digits = load_digits()
        gray = np.rint(digits.images * (255 / DIGITS_MAX_PIXEL)).astype(np.uint8)
        self._images = np.repeat(gray[..., None], 3, axis=-1)
        self._labels = digits.target.astype(np.int64)
        self._splits = digits_split_indices()

    def default_split(self, purpose: str) -> str:
        return {TRAIN: "train", EVAL: "test"}[purpose]

    def num_examples(self, split: str | None = None) -> int:
        self.check_split(split)
        return len(self._splits[split])

    def _raw(self, split, *, shard: Shard, shuffle_files, seed, decode) -> tf.data.Dataset:
        index, count = shard
        indices = self._splits[split][index::count]
        labels = self._labels[indices] if split != "unlabeled" else np.full(len(indices), UNKNOWN_LABEL, np.int64)
        return tf.data.Dataset.from_tensor_slices(
            {"id": np.array([_digits_id(i) for i in indices]), "image": self._images[indices], "label": labels}
        )
