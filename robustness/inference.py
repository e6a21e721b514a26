"""Exports → logits for the robustness benchmarks.

Every benchmark evaluates one or more exported models on the same images. A model's input
config (resolution) comes from its export metadata, and the
view of an image is one of two:

  eval_view   `preprocessing.eval_image`, the project's one eval crop, for datasets of
              uncropped images (ImageNet, ImageNet-A, digits, any source);
  whole_view  the whole image resized to the model's resolution, for benchmarks whose images
              were already centre-cropped by their builder exactly like eval_image at 224 px
              (TFDS imagenet2012_corrupted crops res/(res+32)·min(h, w) and resizes to 224
              bicubically; ImageNet-P frames are 224 px crops). Cropping them again would zoom
              in a further 12.5% beyond the benchmark's view.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from efficientnet.data import preprocessing
from efficientnet.model import export

View = Callable[[tf.Tensor, int], tf.Tensor]


def eval_view(image: tf.Tensor, resolution: int) -> tf.Tensor:
    return preprocessing.eval_image(image, resolution)


def whole_view(image: tf.Tensor, resolution: int) -> tf.Tensor:
    return preprocessing.resize(image, resolution)


@dataclasses.dataclass(frozen=True)
class Classifier:
    """An exported model ready to turn images at its own resolution into logits."""

    name: str
    export: str
    resolution: int
    num_classes: int
    forward: Callable[[tf.Tensor], tf.Tensor] = dataclasses.field(repr=False, compare=False)

    def logits(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """float32 logits [N, num_classes] of images [N, res, res, 3] (uint8 or raw float pixels)."""
        if images.shape[1:3] != (self.resolution, self.resolution):
            raise ValueError(f"{self.name} takes {self.resolution} px images, got {images.shape[1:3]}")
        outputs = [
            self.forward(tf.convert_to_tensor(images[start : start + batch_size], tf.float32)).numpy()
            for start in range(0, len(images), batch_size)
        ]
        if not outputs:
            return np.zeros((0, self.num_classes), np.float32)
        return np.concatenate(outputs).astype(np.float32)


def _frozen_forward(model, resolution: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """The inference graph with the weights folded in as constants.

    Freezing lets TensorFlow's graph optimiser fold batch normalisation into the convolutions:
    ~1.4x the images per second of `model(x, training=False)` for the tiny CPU models (1,790 vs
    1,300 img/s at 32 px, batch 500), with the same logits up to float rounding. Falls back to
    the plain traced call if freezing fails.
    """
    traced = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        frozen = convert_variables_to_constants_v2(
            traced.get_concrete_function(tf.TensorSpec([None, resolution, resolution, 3], tf.float32))
        )
    except Exception:  # an optimisation only: the traced call is always correct
        return traced
    # Wrapped in a tf.function so that calls bind the input once at tracing, not per call.
    return tf.function(lambda images: tf.nest.flatten(frozen(images))[0], reduce_retracing=True)


def load_classifiers(export_paths: Mapping[str, str]) -> dict[str, Classifier]:
    """Loads each export once (two names for the same path share one model)."""
    loaded: dict[str, Classifier] = {}
    by_path: dict[str, Classifier] = {}
    for name, path in export_paths.items():
        if path not in by_path:
            model, metadata = export.load_export(path)
            resolution = int(metadata["input"]["resolution"])
            forward = _frozen_forward(model, resolution)
            by_path[path] = Classifier(name, path, resolution, metadata["num_classes"], forward)
        loaded[name] = dataclasses.replace(by_path[path], name=name)
    return loaded


def require_num_classes(classifiers: Mapping[str, Classifier], num_classes: int | None, what: str) -> None:
    """Refuses models whose class count does not match the dataset's, naming them."""
    if num_classes is None:
        return
    wrong = {name: c.num_classes for name, c in classifiers.items() if c.num_classes != num_classes}
    if wrong:
        raise ValueError(f"{what} has {num_classes} classes but these models predict another number: {wrong}")


def view_batches(
    examples: tf.data.Dataset,
    resolutions: Sequence[int],
    view: View,
    *,
    batch_size: int,
    max_examples: int | None = None,
    as_uint8: bool = False,
) -> Iterator[tuple[dict[int, np.ndarray], np.ndarray]]:
    """Batches of ({resolution: images}, labels) from example dicts, one view per resolution.

    `as_uint8` rounds the float view back to uint8 (for corrupting it afterwards).
    """
    if max_examples is not None:
        examples = examples.take(max_examples)
    resolutions = sorted(set(resolutions))

    def prepare(example):
        images = {}
        for resolution in resolutions:
            image = view(example["image"], resolution)
            images[str(resolution)] = preprocessing.to_uint8(image) if as_uint8 else image
        return images, example["label"]

    batches = examples.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)
    # No autotuning: its background thread sleeps for growing periods (seconds after a minute
    # of use), and closing the iterator waited for it: ~5 s at the end of every stream whose
    # consumer is slow, as here (TF 2.21, measured).
    options = tf.data.Options()
    options.autotune.enabled = False
    for images, labels in batches.prefetch(1).with_options(options):
        yield {int(key): value.numpy() for key, value in images.items()}, labels.numpy()


def top1_correct(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.argmax(logits, axis=-1) == labels
