"""tf.data pipelines over any dataset source: one builder for every consumer.

Teacher and student training, evaluation and pseudo-labeling all build their
input here, so crops and augmentation cannot drift apart between them. The
graph is parallel and prefetched, and deterministic under a seed: the shuffle
is seeded and every example's random crop and augmentation derive from
(seed, position in the stream) through stateless random ops, so a rerun sees
the same batches in the same order.

Training shuffles the source's stored records (file paths, encoded bytes),
never decoded pixels, and decodes each image after the shuffle, a JPEG only
inside its crop window: a 10,000-record buffer of paths or JPEG bytes holds
kilobytes to about a gigabyte where decoded 500×375 photos take 7 GiB
(docs/training.md#input-at-scale).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from efficientnet.data import preprocessing
from efficientnet.data.source import Source, guarded_group_map, without

# An augmentation maps (uint8 image, seed [2]) to a uint8 image, e.g. RandAugment.
Augment = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

DEFAULT_SHUFFLE_BUFFER = 10_000
# How the workers of a multi-worker run share the input (docs/training.md#input-sharding):
# `files`: each reads and decodes only its own files (the default, what scales);
# `exact`: each reads the whole stream and keeps its replicas' slices of the global
# batches a 1-replica run sees (equivalence checks, small data).
INPUT_SHARDINGS = ("files", "exact")
# Records guarded together against undecodable files (source.guarded_group_map): 8 gave 1.15-1.25x
# the images/s of a guard per record at 224 px, and larger groups no more (2 cores, 2026-12-05).
GUARD_GROUP_SIZE = 8
AUGMENT_SEED = "augment_seed"  # an example's RandAugment seed, from its crop to its augmentation


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
    input_sharding: str = "files",
) -> tf.data.Dataset:
    """Endless, shuffled, augmented batches of example dicts.

    Each batch is the source's example dict with `image` replaced by
    [batch, resolution, resolution, 3] raw pixels: float32 from the crop's
    bicubic resize, or uint8 where RandAugment, which works on uint8, comes
    last. The training step casts them to float32 on its device; uint8
    batches take a quarter of the memory in tf.data's prefetch buffers and
    of the host-to-device transfer (a student's default 768 pseudo-labeled
    images at 224 px: 116 MB instead of 462 MB a step). The shuffle buffer holds
    stored records (`Source.records`); each is read and decoded after it,
    with `preprocessing.train_image_from_encoded`. `cache` keeps the read
    records (encoded bytes) in memory, for small datasets on slow storage.
    `skip_batches` starts the stream where a resumed run left off; skipped
    records are not decoded (nor read, for image files). An undecodable image is logged by
    id and left out of the batches (a run resumed after one starts one
    example later than the uninterrupted run would have).

    With an `input_context` (`Strategy.distribute_datasets_from_function`)
    `batch_size` is the global batch and this pipeline yields per-replica
    batches for its worker's replicas, which the strategy hands to them in
    turn. How workers share the data is `input_sharding`:

    - `files`: worker w of W reads only its part of the files
      (`Source.records(shard=(w, W))`), shuffles and decodes it alone, and
      feeds its replicas consecutive batches of it. Every worker does 1/W of
      the reading and decoding; each epoch every example is seen once, but
      the global batches are not those of a 1-replica run. A source with
      fewer files than workers is refused.
    - `exact`: every worker reads and shuffles the same stream and keeps
      only its replicas' slices before decoding, so replica r of n sees
      examples [r·b/n, (r+1)·b/n) of global batch k, with the crop and
      augmentation of their position in the stream: exactly the global
      batches of a 1-replica run, whatever the number of workers and
      replicas. Each worker still reads every record (not decodes it).

    With one worker the two are the same stream.
    """
    if input_sharding not in INPUT_SHARDINGS:
        raise ValueError(f"--input_sharding must be one of {list(INPUT_SHARDINGS)}, got {input_sharding!r}")
    context = input_context or tf.distribute.InputContext()
    workers, worker = context.num_input_pipelines, context.input_pipeline_id
    replicas = context.num_replicas_in_sync
    local = replicas // workers
    first = worker * local
    per_replica = context.get_per_replica_batch_size(batch_size)
    by_files = input_sharding == "files" and workers > 1
    if by_files:
        _check_files_for_workers(source, split, workers)
    records = source.records(split, shuffle_files=True, seed=seed, shard=(worker, workers) if by_files else None)
    if cache:
        records = records.map(source.parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache()
    records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat()

    def train_view(record):
        """Read, decode and crop: the part that can fail on a bad file, guarded where files are read."""
        example = record if cache else source.parse(record)
        # Worker w's i-th example gets seed (seed, i·W + w): with one worker, its position.
        position = record["position"] * workers + worker if by_files else record["position"]
        example_seed = tf.stack([tf.constant(seed, tf.int64), position])
        crop_seed, augment_seed = tf.unstack(tf.random.experimental.stateless_split(example_seed, 2))
        if "encoded" in example:
            image = preprocessing.train_image_from_encoded(
                example["encoded"], resolution, crop_seed, random_flip=random_flip
            )
        else:
            image = preprocessing.train_image(example["image"], resolution, crop_seed, random_flip=random_flip)
        fields = {name: value for name, value in example.items() if name not in ("encoded", "position")}
        return fields | {"image": image} | ({AUGMENT_SEED: augment_seed} if augment is not None else {})

    def augmented(example):
        # uint8 in and out, and left uint8 (see the docstring).
        image = augment(preprocessing.to_uint8(example["image"]), example[AUGMENT_SEED])
        return without(example, AUGMENT_SEED) | {"image": image}

    def in_local_slices(record):
        replica = record["position"] // per_replica % replicas
        return (replica >= first) & (replica < first + local)

    examples_per_step = per_replica * local if by_files else batch_size
    records = records.enumerate().map(lambda index, record: record | {"position": index})
    records = records.skip(skip_batches * examples_per_step)
    if not by_files and local < replicas:
        records = records.filter(in_local_slices)
    # The guard holds only the steps that can fail, by groups (its cost is per group); RandAugment
    # runs in a plain parallel map after it.
    if source.reads_files:
        examples = guarded_group_map(records, train_view, GUARD_GROUP_SIZE)
    else:
        examples = records.map(train_view, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if augment is not None:
        examples = examples.map(augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return _finish(examples.batch(per_replica, drop_remainder=True))


def _check_files_for_workers(source: Source, split: str | None, workers: int) -> None:
    files = source.num_files(split)
    if files < workers:
        raise ValueError(
            f"{source.spec!r} holds {files} file(s) for {workers} workers: with --input_sharding=files every "
            f"worker reads files of its own, so {workers - files} would have none; store the data in at least "
            f"{workers} files, or use --input_sharding=exact"
        )


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
