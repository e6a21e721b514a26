"""Images/s of our RandAugment against keras.layers.RandAugment, in tf.data, same images, same run.

Both run the way they are meant to be used in an input pipeline: ours maps one
uint8 image at a time (`num_parallel_calls=AUTOTUNE`) and then batches, since
each image draws its own ops (docs/randaugment.md); Keras's layer is mapped over
whole batches, as it draws one op choice per batch. A warm-up pass (tracing,
thread pools) is excluded, and the timed passes alternate between the two a
few times so that drifts in machine load hit both; medians are reported.

The two are not the same augmentation (Keras has 11 ops and its own magnitude
scale `factor` in [0, 1]), so the comparison is of cost, not of semantics. We
give Keras factor = min(1, M / 10), its maximum for our nominal maximum, and
nearest-neighbour interpolation like ours by default. Keras runs every one of
its ops on every batch and selects with `where`, so its cost barely depends on
the factor.

Usage:
  python benchmarks/augment.py --batch_size=32 --resolution=224 --num_layers=2 --magnitude=15 --num_images=512
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402
from photos import synthetic_images  # noqa: E402

from efficientnet.data.randaugment import RandAugment  # noqa: E402
from efficientnet.util.cli import run  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 32, "Images per batch for both pipelines.")
flags.DEFINE_integer("resolution", 224, "Side of the square synthetic images.")
flags.DEFINE_integer("num_layers", 2, "RandAugment N (Keras: num_ops).")
flags.DEFINE_float("magnitude", 15.0, "RandAugment M on the reference scale (10 = nominal maximum).")
flags.DEFINE_integer("num_images", 512, "Images per timed pass.")
flags.DEFINE_integer("repeats", 3, "Timed passes per pipeline, alternating between the two.")
flags.DEFINE_integer("seed", 0, "Seed for the synthetic images and both augmenters.")
flags.DEFINE_enum("keras_interpolation", "nearest", ["nearest", "bilinear"], "Interpolation for Keras's layer.")


def ours_pipeline(images: np.ndarray, augment: RandAugment, batch_size: int, seed: int) -> tf.data.Dataset:
    """Per-image map (each image its own seed [index, seed]) then batch."""
    dataset = tf.data.Dataset.from_tensor_slices(images).enumerate()
    dataset = dataset.map(
        lambda index, image: augment(image, tf.stack([index, tf.constant(seed, tf.int64)])),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def keras_pipeline(images: np.ndarray, layer: keras.layers.Layer, batch_size: int) -> tf.data.Dataset:
    """Batch, then map the Keras layer over whole batches."""
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(batch_size)
    dataset = dataset.map(lambda batch: layer(batch, training=True), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def timed_pass(dataset: tf.data.Dataset) -> tuple[int, float]:
    """(images seen, seconds) for one full pass over `dataset`."""
    count = 0
    start = time.perf_counter()
    for batch in dataset:
        count += int(batch.shape[0])
    return count, time.perf_counter() - start


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.num_images < FLAGS.batch_size:
        raise ValueError(f"num_images ({FLAGS.num_images}) must be at least batch_size ({FLAGS.batch_size})")
    images = synthetic_images(FLAGS.num_images, FLAGS.resolution, FLAGS.seed)
    ours = RandAugment(num_layers=FLAGS.num_layers, magnitude=FLAGS.magnitude)
    keras_layer = keras.layers.RandAugment(
        value_range=(0, 255),
        num_ops=FLAGS.num_layers,
        factor=min(1.0, FLAGS.magnitude / 10.0),
        interpolation=FLAGS.keras_interpolation,
        seed=FLAGS.seed,
    )
    pipelines = {
        "ours": ours_pipeline(images, ours, FLAGS.batch_size, FLAGS.seed),
        "keras": keras_pipeline(images, keras_layer, FLAGS.batch_size),
    }
    print(
        f"RandAugment throughput: tensorflow {tf.__version__}, keras {keras.__version__}, "
        f"{os.cpu_count()} CPU cores; {FLAGS.num_images} synthetic images of {FLAGS.resolution}x"
        f"{FLAGS.resolution}, batch {FLAGS.batch_size}, N={FLAGS.num_layers}, M={FLAGS.magnitude:g} "
        f"(keras factor {min(1.0, FLAGS.magnitude / 10.0):g}, {FLAGS.keras_interpolation})"
    )
    for name, dataset in pipelines.items():
        count, seconds = timed_pass(dataset)
        print(f"warm-up {name}: {count / seconds:.1f} images/s (not counted)")

    rates: dict[str, list[float]] = {name: [] for name in pipelines}
    for repeat in range(FLAGS.repeats):
        # Alternate who goes first so that slow drifts in load hit both.
        order = list(pipelines) if repeat % 2 == 0 else list(reversed(pipelines))
        for name in order:
            count, seconds = timed_pass(pipelines[name])
            rates[name].append(count / seconds)
        print(
            f"pass {repeat + 1}: ours {rates['ours'][-1]:.1f} images/s, keras {rates['keras'][-1]:.1f} images/s, "
            f"ratio {rates['ours'][-1] / rates['keras'][-1]:.2f}"
        )
    ours_rate, keras_rate = statistics.median(rates["ours"]), statistics.median(rates["keras"])
    print(f"median of {FLAGS.repeats}: ours {ours_rate:.1f} images/s, keras {keras_rate:.1f} images/s")
    print(f"ratio ours/keras: {ours_rate / keras_rate:.2f}")


if __name__ == "__main__":
    run(main)
