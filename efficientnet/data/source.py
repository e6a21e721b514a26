"""The dataset source interface: one family of readers for every consumer.

Training, evaluation, the labeling job and the robustness benchmarks all read
data through `Source.examples`, so the same record has the same id
everywhere: `digits/INDEX`, a TFDS file name or `tfds_id`, `PATH#INDEX` for
the INDEX-th record of a TFRecord file, and the file path for image files.
The labeling job joins on these ids, and undecodable images are named by them.

`examples(split, shard=(i, n))` reads the i-th of n disjoint parts, by whole
files where the source has files: the labeling job reads the parts on
parallel workers, and a multi-worker trainer can give each worker its own.
`examples(decode=False)` yields the stored bytes instead of pixels (PNG for
sources that hold pixels), for writing records without re-encoding.

Splits: `digits` and `tfds:` sources have named splits and a default one per
purpose (`resolve_split`: train → `train`, evaluation → `test`, or
`validation` for TFDS datasets without a test split); file sources have none,
so a split left unset means "all of it" there, and a split named for them is an
error. A source that yields no image at all is an error of its own
(`require_images`), reported before any model is loaded, naming what was
looked for and how many files could not be decoded.

Every source yields dicts with
  id      tf.string  unique and stable per example
  image   tf.uint8   [height, width, 3] (grayscale replicated, alpha dropped),
                     or `encoded` (tf.string) with decode=False
  label   tf.int64   class index; -1 where the source withholds it (unlabeled data)
and pseudo-label records also carry `probabilities` (float32 [num_classes]).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import tensorflow as tf

from efficientnet.data.preprocessing import decode_image
from efficientnet.util.registry import Registry

UNKNOWN_LABEL = -1
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

Shard = tuple[int, int]  # (index, count): the index-th of count disjoint parts

# What a split is read for, when the caller leaves the choice to the source.
TRAIN = "train"
EVAL = "eval"


def for_python_loop(dataset: tf.data.Dataset) -> Iterator:
    """`dataset`'s elements as numpy, for a Python loop that does slow work
    between them (a model's forward pass), with tf.data's autotuning off.

    The autotuner's background thread sleeps for growing periods while its
    consumer is slow, and deleting the iterator waits for it to wake: up to
    2.5 s at the end of a 256-image pass of B0 inference, about 5 s after a
    minute (TF 2.21, measured; docs/platform.md#tfdata-and-python-loops).
    Without it the pipeline keeps its starting settings (a parallel map at
    the machine's core count), which keep up with such a consumer.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options).as_numpy_iterator()


class EmptySourceError(ValueError):
    """A dataset spec that yields no image: a reading problem, not a model's."""


class Source:
    """A named collection of splits of example dicts (see the module docstring)."""

    spec: str
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    split_names: tuple[str, ...] | None = None  # None: the source has no splits
    labeled = True  # False: every label is UNKNOWN_LABEL (an unlabeled corpus)
    # Whether reading one record can fail (a file that is not an image, a
    # record that is not an Example): such records are skipped, logged by id
    # and counted in `skipped_images`, never fatal.
    reads_files = False

    def __init__(self) -> None:
        self.skipped_images = tf.Variable(0, dtype=tf.int64, trainable=False, name="skipped_images")

    def num_examples(self, split: str | None = None) -> int | None:
        """Number of examples in `split`, when known without reading the data."""
        return None

    def num_shards(self, split: str | None = None) -> int:
        """Into how many parts `examples(shard=…)` usefully splits `split`."""
        return 1

    def examples(
        self,
        split: str | None = None,
        *,
        shuffle_files: bool = False,
        seed: int = 0,
        shard: Shard | None = None,
        decode: bool = True,
    ) -> tf.data.Dataset:
        """Example dicts of `split` in a fixed order (files shuffled if asked).

        With `decode=False`, a record that cannot be read is kept with empty
        `encoded` bytes, so that its consumer (the labeling job) fails to
        decode it and reports it by id; with `decode=True` it is skipped.
        """
        return self._examples(split, shuffle_files, seed, shard, decode, guarded=self.reads_files)

    def encoded_batches(self, split: str | None = None, *, shard: Shard | None = None, batch_size: int = 256):
        """`examples(split, shard=shard, decode=False)` as dicts of numpy arrays, `batch_size` at a time.

        For Python consumers such as the labeling job's reader. Records are
        read optimistically, through one parallel map with no per-record guard:
        the guard (`guarded_map`) builds a small dataset per record, which costs
        about 0.25 ms per record on a 2-core machine, as much as labeling a
        32 px image. Only when a record fails is the rest of the part re-read
        through the guard, from the first record not yet yielded, so a bad
        record still arrives with empty bytes and its id.
        """
        done = 0
        try:
            fast = self._examples(split, False, 0, shard, decode=False, guarded=False)
            for batch in for_python_loop(fast.batch(batch_size).prefetch(1)):
                yield batch
                done += len(batch["id"])
            return
        except tf.errors.OpError:
            if not self.reads_files:
                raise
        guarded = self._examples(split, False, 0, shard, decode=False, guarded=True).skip(done)
        yield from for_python_loop(guarded.batch(batch_size))

    def records(
        self, split: str | None = None, *, shuffle_files: bool = False, seed: int = 0, shard: Shard | None = None
    ) -> tf.data.Dataset:
        """The stored records of `split`, not yet read or decoded: what a training shuffle buffer holds.

        A record is what the source lists: an image file's path and label, a
        serialized TFRecord example, a TFDS example with its image bytes, an
        in-memory digit. `parse` turns one into an example dict with the
        image's `encoded` bytes (or `image` pixels, where the source holds
        pixels). A record of a file costs a few dozen bytes and one of a
        TFRecord the size of its JPEG, where decoded pixels of a 500×375
        photo take 550 KiB (docs/training.md#input-at-scale).
        """
        self.check_split(split)
        return self._raw(split, shard=_checked(shard), shuffle_files=shuffle_files, seed=seed, decode=False)

    def num_files(self, split: str | None = None) -> int:
        """Into how many non-empty parts `shard=` can split `split`: its files, where it has files.

        A multi-worker trainer reading by file (`input_pipeline.train_dataset`)
        needs at least one per worker.
        """
        return self.num_shards(split)

    def _examples(self, split, shuffle_files, seed, shard, decode, *, guarded: bool) -> tf.data.Dataset:
        self.check_split(split)
        raw = self._raw(split, shard=_checked(shard), shuffle_files=shuffle_files, seed=seed, decode=decode)

        def prepare(record):
            example = self.parse(record)
            if decode and "encoded" in example:
                example = without(example, "encoded") | {"image": decode_image(example["encoded"])}
            elif not decode and "image" in example:
                example = without(example, "image") | {"encoded": tf.io.encode_png(example["image"])}
            return example

        if not guarded:
            return raw.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return guarded_map(raw, prepare, self.skipped_images, keep_failures=not decode)

    def _raw(self, split: str | None, *, shard: Shard, shuffle_files: bool, seed: int, decode: bool):
        """The source's records of `split` and `shard`, each a dict with an `id`."""
        raise NotImplementedError

    def parse(self, record: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """A stored record (`records`) → id, label, `image` or `encoded` (and probabilities)."""
        return record

    def check_split(self, split: str | None) -> None:
        if self.split_names is None:
            if split is not None:
                raise ValueError(f"{self.spec!r} has no splits (got split {split!r}); point the source at the files")
        elif split is not None and "[" in split and split.split("[")[0] in self.split_names:
            raise ValueError(
                f"{self.spec!r} reads whole splits, one of {list(self.split_names)}; got {split!r} "
                "(slices such as 'train[:10%]' are for tfds: sources)"
            )
        elif split not in self.split_names:
            raise ValueError(f"{self.spec!r} needs a split, one of {list(self.split_names)}; got {split!r}")

    def default_split(self, purpose: str) -> str | None:
        """The split read for `purpose` (TRAIN or EVAL) when none is given."""
        return None

    def resolve_split(self, split: str | None, purpose: str) -> str | None:
        """`split`, or the source's default for `purpose` when it is None; checked."""
        chosen = self.default_split(purpose) if split is None else split
        self.check_split(chosen)
        return chosen

    def looked_for(self, split: str | None) -> str:
        """What reading `split` looks for, in words, for the empty-read error."""
        return f"the examples of split {split!r}" if split else "its examples"

    def require_images(self, split: str | None) -> None:
        """Raises EmptySourceError unless `split` yields at least one image.

        Reads up to the first decodable image: one file when the data is
        fine, every file only when none of them decodes. Called by every
        consumer before it loads or trains a model, so a wrong path or pattern
        is named as such instead of surfacing later as an empty result.
        The first record is tried without the per-record guard (a fraction of
        a second less per process); only if it fails are the records read
        through the guard until one decodes.
        """
        try:
            for _ in self._examples(split, False, 0, None, True, guarded=False).take(1):
                return
            raise self.empty_error(split)
        except tf.errors.OpError:
            pass
        for _ in self.examples(split).take(1):
            return
        raise self.empty_error(split)

    def empty_error(self, split: str | None) -> EmptySourceError:
        skipped = int(self.skipped_images.numpy())
        undecodable = f"; {skipped} file(s) skipped as undecodable" if self.reads_files else ""
        return EmptySourceError(f"{self.spec!r} yields no image: looked for {self.looked_for(split)}{undecodable}")


SOURCES: Registry[type[Source]] = Registry("dataset source")


def _checked(shard: Shard | None) -> Shard:
    index, count = shard or (0, 1)
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist")
    return index, count


def without(example: dict, key: str) -> dict:
    return {name: value for name, value in example.items() if name != key}


def guarded_group_map(records: tf.data.Dataset, fn, group_size: int) -> tf.data.Dataset:
    """`guarded_map(records, fn, None, keep_failures=False)` at a fraction of its cost per record.

    The guard builds small datasets per element, about 0.3 ms of CPU each
    (measured at 224 px, docs/training.md#input-at-scale), as much as a
    third of decoding a photo. Here it does so per group of `group_size`
    records: a group is mapped whole (`tf.map_fn`) and, only if one of its
    records fails, mapped again record by record through `guarded_map`,
    which names and drops the bad one. Groups run in parallel, each in order,
    and the output keeps the order of `records`.
    """
    spec = records.map(fn).element_spec
    signature = {key: tf.TensorSpec(value.shape, value.dtype) for key, value in spec.items()}

    def fast(group):
        whole = tf.data.Dataset.from_tensors(group).map(lambda g: tf.map_fn(fn, g, fn_output_signature=signature))
        return whole.ignore_errors().unbatch()

    def one_by_one(group):
        return guarded_map(tf.data.Dataset.from_tensor_slices(group), fn, None, keep_failures=False)

    def mapped(group):
        return fast(group).concatenate(one_by_one(group)).take(tf.cast(tf.shape(group["id"])[0], tf.int64))

    return records.batch(group_size).interleave(mapped, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def guarded_map(records: tf.data.Dataset, fn, skipped: tf.Variable | None, *, keep_failures: bool) -> tf.data.Dataset:
    """`records.map(fn)`, where a record whose `fn` fails is logged by id and
    counted, then dropped, or kept as an empty stand-in with `keep_failures`.

    tf.data can only drop elements whose map failed (`ignore_errors`), which
    loses the element's identity. So each record becomes a one-element dataset
    holding either `fn` of it or, when that failed, a stand-in that still
    carries the id: zeros of `fn`'s output structure (empty bytes, label 0 → -1).
    Failures are counted in `skipped` unless it is None. The training input
    only logs them: it may run on tf.data service workers in other
    processes, whose additions to a variable never reach this process's copy.
    """
    spec = records.map(fn).element_spec

    def stand_in(record):
        values = {
            key: tf.zeros([0 if dim is None else dim for dim in value.shape], value.dtype)
            for key, value in spec.items()
        }
        if "label" in values:
            values["label"] = tf.constant(UNKNOWN_LABEL, spec["label"].dtype)
        return values | {"id": record["id"], "ok": False}

    def fn_or_stand_in(record):
        single = tf.data.Dataset.from_tensors(record)
        done = single.map(lambda r: fn(r) | {"ok": True}).ignore_errors()
        return done.concatenate(single.map(stand_in)).take(1)

    def count_failure(example):
        def record():
            with tf.control_dependencies([] if skipped is None else [skipped.assign_add(1)]):
                return tf.print("skipped undecodable image:", example["id"], output_stream=sys.stderr)

        tf.cond(example["ok"], tf.no_op, record)
        return example

    examples = records.interleave(fn_or_stand_in, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if keep_failures:
        return examples.map(lambda example: without(example, "ok"))
    return examples.map(count_failure).filter(lambda example: example["ok"]).map(lambda e: without(e, "ok"))
