"""Models and image views for the robustness benchmarks.

Every benchmark evaluates one or more exported models on the same images, through the
project's one inference path (`efficientnet.model.inference.Predictor`). A model's input
config (resolution) comes from its export metadata, and the view of an image is one of two:

  eval_view   `preprocessing.eval_image`, the project's one eval crop, for datasets of
              uncropped images (ImageNet, ImageNet-A, digits, any source);
  whole_view  the whole image resized to the model's resolution, for benchmarks whose images
              were already centre-cropped by their builder exactly like eval_image at 224 px
              (TFDS imagenet2012_corrupted crops res/(res+32)·min(h, w) and resizes to 224
              bicubically; ImageNet-P frames are 224 px crops). Cropping them again would zoom
              in a further 12.5% beyond the benchmark's view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from efficientnet.data import preprocessing
from efficientnet.data.source import Source, for_python_loop
from efficientnet.model.inference import Predictor
from efficientnet.util.progress import ProgressLine

View = Callable[[tf.Tensor, int], tf.Tensor]


def eval_view(image: tf.Tensor, resolution: int) -> tf.Tensor:
    return preprocessing.eval_image(image, resolution)


def whole_view(image: tf.Tensor, resolution: int) -> tf.Tensor:
    return preprocessing.resize(image, resolution)


def load_classifiers(export_paths: Mapping[str, str | Predictor]) -> dict[str, Predictor]:
    """Loads each export once (two names for the same path share one model).

    A value may also be a Predictor already loaded (e.g. one model scored on several
    benchmarks in one process), which is used as it is.
    """
    by_path: dict[str, Predictor] = {}
    for path in export_paths.values():
        if not isinstance(path, Predictor) and path not in by_path:
            by_path[path] = Predictor.from_export(path)
    return {name: path if isinstance(path, Predictor) else by_path[path] for name, path in export_paths.items()}


def require_num_classes(classifiers: Mapping[str, Predictor], num_classes: int | None, what: str) -> None:
    """Refuses models whose class count does not match the dataset's, naming them."""
    if num_classes is None:
        return
    wrong = {name: c.num_classes for name, c in classifiers.items() if c.num_classes != num_classes}
    if wrong:
        raise ValueError(f"{what} has {num_classes} classes but these models predict another number: {wrong}")


def view_batches(
    task: str,
    source: Source,
    split: str | None,
    resolutions: Sequence[int],
    view: View,
    *,
    batch_size: int,
    max_examples: int | None = None,
    as_uint8: bool = False,
) -> Iterator[tuple[dict[int, np.ndarray], np.ndarray]]:
    """Batches of ({resolution: images}, labels) of a split, one view per resolution.

    `as_uint8` rounds the float view back to uint8 (for corrupting it afterwards). Every
    benchmark's pass over a dataset source goes through here, so this is where its progress
    line is printed (efficientnet/util/progress.py), labelled `task` and the dataset.
    """
    examples = source.examples(split)
    total = source.num_examples(split)
    if max_examples is not None:
        examples = examples.take(max_examples)
        total = max_examples if total is None else min(total, max_examples)
    progress = ProgressLine(f"{task} on {source.spec}" + (f" {split}" if split else ""), total)
    for views, values in example_batches(examples, resolutions, view, batch_size=batch_size, as_uint8=as_uint8):
        yield views, values["label"]
        progress.advance(len(values["label"]))
    progress.close()


def example_batches(
    examples: tf.data.Dataset,
    resolutions: Sequence[int],
    view: View,
    *,
    batch_size: int,
    keys: Sequence[str] = ("label",),
    as_uint8: bool = False,
) -> Iterator[tuple[dict[int, np.ndarray], dict[str, np.ndarray]]]:
    """Batches of ({resolution: images}, {key: values}) of example dicts holding `image` and `keys`.

    The views are computed in parallel, batched and prefetched by tf.data, so only the batches
    in flight are in memory, whatever the dataset's size. The caller advances its progress
    line when it asks for the next batch, i.e. once every model has seen the current one (and,
    for the corruption report, every corrupted copy of it).
    """
    resolutions = sorted(set(resolutions))

    def prepare(example):
        images = {}
        for resolution in resolutions:
            image = view(example["image"], resolution)
            images[str(resolution)] = preprocessing.to_uint8(image) if as_uint8 else image
        return images, {key: example[key] for key in keys}

    batches = examples.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)
    for images, values in for_python_loop(batches.prefetch(1)):
        yield {int(key): value for key, value in images.items()}, values


def top1_correct(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.argmax(logits, axis=-1) == labels
