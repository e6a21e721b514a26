"""tf.data pipelines over any dataset source: one builder for every consumer.

Teacher and student training, evaluation and pseudo-labeling all build their
input here, so crops and augmentation cannot drift apart between them. The
graph is parallel and prefetched, and deterministic under a seed: the shuffle
is seeded and every example's random crop and augmentation derive from
(seed, position in the stream) through stateless random ops, so a rerun sees
the same batches in the same order.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from efficientnet.data import preprocessing
from efficientnet.data.source import Source

# An augmentation maps (uint8 image, seed [2]) to a uint8 image, e.g. RandAugment.
Augment = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

DEFAULT_SHUFFLE_BUFFER = 10_000


def train_dataset(
    source: Source,
    split: str | None,
    *,
    batch_size: int,
    resolution: int,
    seed: int = 0,
    random_flip: bool = True,
    augment: Augment | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    cache: bool = False,
    skip_batches: int = 0,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Endless, shuffled, augmented batches of example dicts.

    Each batch is the source's example dict with `image` replaced by float32
    [batch, resolution, resolution, 3] raw pixels. `cache` keeps decoded
    images in memory (small datasets only). `skip_batches` starts the stream
    where a resumed run left off; skipped examples are read but not
    preprocessed.

    With an `input_context` (`Strategy.distribute_datasets_from_function`)
    `batch_size` is the global batch and this pipeline yields the per-replica
    slices of it that its workers' replicas train on: for every global batch,
    the slices of replicas `first … first + local − 1` in turn, which the
    strategy hands to its local replicas in that order. Every worker reads
    and shuffles the same stream and keeps only its slices before cropping
    and augmenting, so replica r of n sees examples [r·b/n, (r+1)·b/n) of
    global batch k, with the crop and augmentation of their position in the
    stream: exactly the global batches of a 1-replica run, whatever the
    number of workers and replicas. The cost is that every worker reads and
    decodes the whole stream. Sharding the input by file
    (`experimental_distribute_dataset`'s default auto-sharding) would spare
    that, but gives each worker other examples than a 1-replica run sees.
    """
    examples = source.examples(split, shuffle_files=True, seed=seed)
    if cache:
        examples = examples.cache()
    examples = examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()

    def preprocess(index, example):
        example_seed = tf.stack([tf.constant(seed, tf.int64), index])
        crop_seed, augment_seed = tf.unstack(tf.random.experimental.stateless_split(example_seed, 2))
        image = preprocessing.train_image(example["image"], resolution, crop_seed, random_flip=random_flip)
        if augment is not None:
            image = tf.cast(augment(preprocessing.to_uint8(image), augment_seed), tf.float32)
        return example | {"image": image}

    context = input_context or tf.distribute.InputContext()
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local
    per_replica = context.get_per_replica_batch_size(batch_size)

    def in_local_slices(index, example):
        replica = index // per_replica % replicas
        return (replica >= first) & (replica < first + local)

    examples = examples.enumerate().skip(skip_batches * batch_size)
    if local < replicas:
        examples = examples.filter(in_local_slices)
    batches = examples.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(
        per_replica, drop_remainder=True
    )
    return _finish(batches)


def eval_dataset(
    source: Source, split: str | None, *, batch_size: int, resolution: int, cache: bool = False
) -> tf.data.Dataset:
    """One pass over `split` in source order with the eval crop; the last
    batch may be smaller so every example is seen exactly once."""
    examples = source.examples(split)
    if cache:
        examples = examples.cache()
    batches = examples.map(
        lambda example: example | {"image": preprocessing.eval_image(example["image"], resolution)},
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).batch(batch_size)
    return _finish(batches)


def _finish(dataset: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.deterministic = True
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)
