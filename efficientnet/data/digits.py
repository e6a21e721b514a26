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

`digits:unlabeled_shift=corrupted` is the out-of-domain variant: the same 947
unlabeled images (same ids, same true labels for the oracle and for
pseudo-label accuracy), each under one ImageNet-C corruption of
`corruptions.py` at one severity, both drawn with seed 0, so the pool is no
longer the labeled data's distribution (docs/noisy_student.md#the-digits-protocol).
They are corrupted at 32 px, the digits configs' model resolution, after the
pipeline's own bicubic upsampling (`preprocessing.resize`), as the robustness
benchmark corrupts digits: at 8 px one noisy pixel would become a 4x4 blob and
every blur would be below a pixel. Arguments combine, comma-separated, in any
order: `digits:per_class=4,unlabeled_shift=corrupted`.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import tensorflow as tf

from efficientnet.data.corruptions import BENCHMARK_CORRUPTIONS, SEVERITIES, corrupt
from efficientnet.data.preprocessing import resize, to_uint8
from efficientnet.data.source import EVAL, SOURCES, TRAIN, UNKNOWN_LABEL, Shard, Source

DIGITS_SEED = 0
DIGITS_TEST_SIZE = 500
DIGITS_LABELED_PER_CLASS = 15
ORACLE_SPLIT = "unlabeled_with_labels"
POOL_SPLITS = ("unlabeled", ORACLE_SPLIT)
# The model resolution of every digits config (configs/digits*.json), where the shift is applied.
DIGITS_SHIFT_SIDE = 32
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


def digits_rgb(images: np.ndarray) -> np.ndarray:
    """Digits' 0..16 intensities → uint8 RGB [N, 8, 8, 3], grey scaled to 0..255 and replicated."""
    gray = np.rint(images * (255 / DIGITS_MAX_PIXEL)).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


@functools.cache
def corrupted_pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unlabeled pool of `unlabeled_shift=corrupted`, in the split's order.

    Returns (uint8 images [947, 32, 32, 3], the corruption of each, its
    severity). Each image gets one of the 15 benchmark corruptions and a
    severity 1..5, uniformly and independently, from seed 0; the images that
    share a pair are corrupted together, so the pool is the same on every open.
    """
    images, _ = load_digits()
    pool = digits_rgb(images[digits_split_indices()["unlabeled"]])
    upsampled = to_uint8(resize(pool, DIGITS_SHIFT_SIDE)).numpy()
    rng = np.random.default_rng(DIGITS_SEED)
    names = np.array(BENCHMARK_CORRUPTIONS)[rng.integers(len(BENCHMARK_CORRUPTIONS), size=len(pool))]
    severities = rng.choice(SEVERITIES, size=len(pool))
    shifted = np.empty_like(upsampled)
    for name in BENCHMARK_CORRUPTIONS:
        for severity in SEVERITIES:
            chosen = (names == name) & (severities == severity)
            if chosen.any():
                shifted[chosen] = corrupt(upsampled[chosen], name, severity, DIGITS_SEED)
    for array in (shifted, names, severities):
        array.flags.writeable = False  # shared by every caller
    return shifted, names, severities


# Each shift: a function giving the unlabeled pool's images in the split's order.
UNLABELED_SHIFTS = {"corrupted": lambda: corrupted_pool()[0]}


@dataclasses.dataclass(frozen=True)
class DigitsVariant:
    """What a `digits:` spec's arguments choose; the defaults are the standard protocol."""

    labeled_per_class: int = DIGITS_LABELED_PER_CLASS
    unlabeled_shift: str | None = None

    @property
    def spec(self) -> str:
        """The dataset spec that selects this variant, the inverse of `parse_digits_argument`."""
        arguments = (
            [f"per_class={self.labeled_per_class}"] if self.labeled_per_class != DIGITS_LABELED_PER_CLASS else []
        )
        arguments += [f"unlabeled_shift={self.unlabeled_shift}"] if self.unlabeled_shift else []
        return "digits" + (":" + ",".join(arguments) if arguments else "")


def parse_digits_argument(argument: str) -> DigitsVariant:
    """`per_class=N` and `unlabeled_shift=KIND`, comma-separated, either or both, in any order.

    Raises:
      ValueError: an unknown, repeated or malformed argument, or an unknown shift, naming the spec.
    """
    spec = f"digits:{argument}"
    usage = f"the digits source takes 'digits[:per_class=N][,unlabeled_shift={'|'.join(UNLABELED_SHIFTS)}]'"
    values: dict[str, str] = {}
    for item in argument.split(",") if argument else ():
        key, equals, value = item.partition("=")
        if not equals or key in values or key not in ("per_class", "unlabeled_shift"):
            raise ValueError(f"{usage}, got '{spec}'")
        values[key] = value
    per_class = values.get("per_class", str(DIGITS_LABELED_PER_CLASS))
    if not per_class.isdigit():
        raise ValueError(f"{usage}, got '{spec}'")
    shift = values.get("unlabeled_shift")
    if shift is not None and shift not in UNLABELED_SHIFTS:
        raise ValueError(f"digits: unlabeled_shift must be one of {', '.join(UNLABELED_SHIFTS)}, got '{spec}'")
    return DigitsVariant(int(per_class), shift)


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
        variant = parse_digits_argument(argument)
        images, self._labels = load_digits()
        self._splits = digits_split_indices(variant.labeled_per_class)
        rgb = digits_rgb(images)
        self._images = {split: rgb[indices] for split, indices in self._splits.items()}
        if variant.unlabeled_shift:
            shifted = UNLABELED_SHIFTS[variant.unlabeled_shift]()
            self._images.update(dict.fromkeys(POOL_SPLITS, shifted))

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
            {
                "id": np.array([_digits_id(i) for i in indices]),
                "image": self._images[split][index::count],
                "label": labels,
            }
        )
