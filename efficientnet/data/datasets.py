"""Dataset sources chosen by one string, yielding the same example dicts.

  digits                         scikit-learn's bundled handwritten digits (offline)
  tfds:NAME[/CONFIG][:VERSION]   a TFDS dataset, e.g. tfds:imagenet2012, tfds:cifar10
  tfrecord:GLOB                  ImageNet-format or pseudo-label TFRecords
  folder:PATH                    one subfolder per class holding JPEG/PNG files

Every source yields dicts with
  id     tf.string  unique and stable per example (file name, or record path#index)
  image  tf.uint8   [height, width, 3] (grayscale is replicated, alpha dropped)
  label  tf.int64   class index; -1 where the source withholds it (unlabeled data)
and pseudo-label records also carry `probabilities` (float32 [num_classes]).
Paths may be local or `gs://` (tf.io.gfile reads both).

Undecodable images in `tfrecord:` and `folder:` sources are skipped, logged with
the record's id (`path#index` or the file path) and counted in
`source.skipped_images`; they never stop training or labeling.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np
import tensorflow as tf

from efficientnet.data import records as record_formats
from efficientnet.util.registry import Registry

UNKNOWN_LABEL = -1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class Source:
    """Base class: a named collection of splits of example dicts."""

    spec: str
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    split_names: tuple[str, ...] | None = None  # None: the source has no splits

    def __init__(self) -> None:
        self.skipped_images = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_images")

    def examples(self, split: str | None = None, *, shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
        """Example dicts of `split` in a fixed order (files shuffled if asked)."""
        raise NotImplementedError

    def num_examples(self, split: str | None = None) -> int | None:
        """Number of examples in `split`, when known without reading the data."""
        return None

    def _check_split(self, split: str | None) -> None:
        if self.split_names is None:
            if split is not None:
                raise ValueError(f"{self.spec!r} has no splits (got split {split!r}); point the source at the files")
        elif split is None or split.split("[")[0] not in self.split_names:
            raise ValueError(f"{self.spec!r} needs a split, one of {list(self.split_names)}; got {split!r}")


SOURCES: Registry[type[Source]] = Registry("dataset source")


def open_source(spec: str, *, data_dir: str | None = None) -> Source:
    """Opens the source named by `spec` (see the module docstring).

    Raises:
      UnknownNameError: the scheme before ':' is not a registered source.
      FileNotFoundError / ValueError: the data is missing or malformed, naming it.
    """
    scheme, _, argument = spec.partition(":")
    source_class = SOURCES.get(scheme)
    source = source_class(argument, data_dir=data_dir)
    source.spec = spec
    return source


# --------------------------------------------------------------------------- digits

# The digits protocol (documented in README.md): a fixed permutation with seed 0;
# the first 500 images are the test split; of the rest, the first 15 per class are
# labeled; of what remains, the first 200 are a validation split for choosing
# settings (so never tuned on test) and the other 947 are unlabeled.
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

    def num_examples(self, split: str | None = None) -> int:
        self._check_split(split)
        return len(self._splits[split])

    def examples(self, split: str | None = None, *, shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
        self._check_split(split)
        indices = self._splits[split]
        labels = self._labels[indices] if split != "unlabeled" else np.full(len(indices), UNKNOWN_LABEL, np.int64)
        return tf.data.Dataset.from_tensor_slices(
            {
                "id": np.array([_digits_id(i) for i in indices]),
                "image": self._images[indices],
                "label": labels,
            }
        )


# --------------------------------------------------------------------------- TFDS


@SOURCES.register("tfds")
class TfdsSource(Source):
    """A TFDS dataset with `image` and `label` features.

    Reads prepared data from `data_dir`; when the data is not there yet, TFDS
    downloads and prepares it (datasets like imagenet2012 need their archives
    placed in the manual directory first, as TFDS explains).
    """

    def __init__(self, argument: str, data_dir: str | None = None):
        super().__init__()
        import tensorflow_datasets as tfds

        if not argument:
            raise ValueError("tfds source needs a dataset name, e.g. 'tfds:cifar10'")
        try:
            self._builder = tfds.builder(argument, data_dir=data_dir)
        except tfds.core.registered.DatasetNotFoundError:
            raise ValueError(f"unknown TFDS dataset {argument!r}; see tfds.list_builders() for the names") from None
        features = self._builder.info.features
        for key in ("image", "label"):
            if key not in features:
                raise ValueError(f"TFDS dataset {argument!r} has no {key!r} feature (features: {list(features)})")
        self.num_classes = features["label"].num_classes
        self.class_names = tuple(features["label"].names)
        self._name = argument

    @property
    def split_names(self) -> tuple[str, ...]:
        # Known once the data is prepared; before that TFDS itself checks.
        return tuple(self._builder.info.splits)

    def _check_split(self, split: str | None) -> None:
        if split is None:
            raise ValueError(f"{self.spec!r} needs a split, e.g. 'train'")
        if self.split_names:
            super()._check_split(split)

    def num_examples(self, split: str | None = None) -> int | None:
        self._check_split(split)
        splits = self._builder.info.splits
        return splits[split].num_examples if split in splits else None

    def examples(self, split: str | None = None, *, shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
        import tensorflow_datasets as tfds

        self._check_split(split)
        self._builder.download_and_prepare()
        dataset = self._builder.as_dataset(
            split=split, shuffle_files=shuffle_files, read_config=tfds.ReadConfig(shuffle_seed=seed)
        )
        prefix = f"{self._name}/{split}#"

        def standardize(index, example):
            image = example["image"]
            if image.shape[-1] == 1:
                image = tf.image.grayscale_to_rgb(image)
            example_id = example.get("file_name", example.get("id", prefix + tf.strings.as_string(index)))
            return {"id": example_id, "image": image, "label": tf.cast(example["label"], tf.int64)}

        return dataset.enumerate().map(standardize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# --------------------------------------------------------------------------- TFRecord


@SOURCES.register("tfrecord")
class TfrecordSource(Source):
    """ImageNet-format (`image/encoded`, `image/class/label`) or pseudo-label
    records (`image/encoded`, `probabilities`, `label`, `prob`), told apart by
    the first record. Labels are used as stored (0-based).

    The number of classes of ImageNet-format records is not stored in them:
    it comes from `num_classes` or from a `dataset_info.json` beside the files
    (`{"num_classes": N, "class_names": [...]}`), else stays unknown.
    """

    def __init__(self, argument: str, data_dir: str | None = None):
        super().__init__()
        if not argument:
            raise ValueError("tfrecord source needs a file pattern, e.g. 'tfrecord:/data/train-*'")
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
        path = os.path.join(directory, "dataset_info.json")
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path) as f:
                info = json.load(f)
            self.num_classes = info.get("num_classes", self.num_classes)
            self.class_names = tuple(info["class_names"]) if "class_names" in info else None

    def examples(self, split: str | None = None, *, shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
        self._check_split(split)
        files = tf.data.Dataset.from_tensor_slices(self.files)
        if shuffle_files:
            files = files.shuffle(len(self.files), seed=seed)
        features = record_formats.PSEUDOLABEL_FEATURES if self.pseudolabeled else record_formats.IMAGENET_FEATURES

        def read_file(path):
            def parse(index, record):
                parsed = tf.io.parse_single_example(record, features)
                example = {"id": path + "#" + tf.strings.as_string(index), "encoded": parsed["image/encoded"]}
                if self.pseudolabeled:
                    example["label"] = parsed["label"]
                    example["probabilities"] = tf.sparse.to_dense(parsed["probabilities"])
                else:
                    example["label"] = parsed["image/class/label"]
                return example

            return tf.data.TFRecordDataset(path).enumerate().map(parse)

        records = files.interleave(
            read_file, cycle_length=min(16, len(self.files)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        return decode_skipping_bad(records, self.skipped_images)


def _first_record(files: list[str]) -> bytes | None:
    for path in files:
        for record in tf.data.TFRecordDataset(path).take(1):
            return record.numpy()
    return None


# --------------------------------------------------------------------------- folder


@SOURCES.register("folder")
class FolderSource(Source):
    """`PATH/<class name>/<image file>`; classes are the sorted subfolder names."""

    def __init__(self, argument: str, data_dir: str | None = None):
        super().__init__()
        if not argument:
            raise ValueError("folder source needs a path, e.g. 'folder:/data/flowers/train'")
        if not tf.io.gfile.isdir(argument):
            raise FileNotFoundError(f"image folder {argument!r} does not exist")
        classes = sorted(
            name.rstrip("/")
            for name in tf.io.gfile.listdir(argument)
            if tf.io.gfile.isdir(os.path.join(argument, name))
        )
        if not classes:
            raise ValueError(f"image folder {argument!r} has no class subfolders")
        self.class_names = tuple(classes)
        self.num_classes = len(classes)
        self.paths, self.labels = [], []
        for label, name in enumerate(classes):
            for file_name in sorted(tf.io.gfile.listdir(os.path.join(argument, name))):
                if file_name.lower().endswith(IMAGE_EXTENSIONS):
                    self.paths.append(os.path.join(argument, name, file_name))
                    self.labels.append(label)
        if not self.paths:
            raise ValueError(f"image folder {argument!r} holds no {'/'.join(IMAGE_EXTENSIONS)} files")

    def num_examples(self, split: str | None = None) -> int:
        self._check_split(split)
        return len(self.paths)

    def examples(self, split: str | None = None, *, shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
        self._check_split(split)
        files = tf.data.Dataset.from_tensor_slices({"id": self.paths, "label": np.array(self.labels, np.int64)})
        if shuffle_files:
            files = files.shuffle(len(self.paths), seed=seed)
        records = files.map(
            lambda example: example | {"encoded": tf.io.read_file(example["id"])},
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        return decode_skipping_bad(records, self.skipped_images)


# --------------------------------------------------------------------------- decoding


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """JPEG/PNG/BMP/GIF bytes → uint8 [h, w, 3] (gray replicated, alpha dropped)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def decode_skipping_bad(records: tf.data.Dataset, skipped: tf.Variable) -> tf.data.Dataset:
    """Decodes `encoded` into `image`; skips, logs and counts undecodable ones.

    tf.data can only drop elements whose map failed (`ignore_errors`), which
    loses the element's identity. So each record becomes a one-element dataset
    holding either its decoded image or, when decoding failed, a failure marker
    that still carries the id; markers are logged, counted and filtered out.
    """

    def decoded_or_marker(example):
        rest = {key: value for key, value in example.items() if key != "encoded"}
        single = tf.data.Dataset.from_tensors(example)
        decoded = single.map(lambda e: rest | {"image": decode_image(e["encoded"]), "ok": True}).ignore_errors()
        marker = single.map(lambda e: rest | {"image": tf.zeros([0, 0, 3], tf.uint8), "ok": False})
        return decoded.concatenate(marker).take(1)

    def count_failure(example):
        def record():
            with tf.control_dependencies([skipped.assign_add(1)]):
                return tf.print("skipped undecodable image:", example["id"], output_stream=sys.stderr)

        tf.cond(example["ok"], tf.no_op, record)
        return example

    def drop_flag(example: dict[str, Any]):
        return {key: value for key, value in example.items() if key != "ok"}

    return (
        records.interleave(decoded_or_marker, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .map(count_failure)
        .filter(lambda example: example["ok"])
        .map(drop_flag)
    )
