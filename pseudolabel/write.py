"""Writing the labeling job's records: lists of serialized records in, TFRecord files out.

Two ways, for `--num_shards`:

  N > 0  `WriteShards`: N files, each record in the shard its bytes hash to.
         One shuffle of the records, as Beam's file sink needs for a fixed
         shard count, and the same files on every local run.
  0      `WriteBundleFilesFn` + `name_bundle_files`: each bundle of records
         goes to a file of its own, and once the job is done the files are
         renamed `pseudo-SSSSS-of-NNNNN.tfrecord`. No shuffle; the runner's
         bundles decide the count.

Both replace Beam's `WriteToTFRecord`. Its dozen transforms and half a dozen
stages (a temporary directory, a grouping of the file names, a finalizing
step) were a measurable part of a local job's fixed cost (benchmarks/label.py);
here the names go to the job's last step as a side input instead. And with a
fixed shard count it deals a bundle's records round-robin from a shard drawn
at random, so two runs of one job put the same records in different files,
and a student reading the files in name order trains on another order.

A bundle attempt that fails leaves a file nobody names (its outputs are
discarded by the runner); files are written inside the job's temporary
directory, which is committed whole only after the job succeeded.
"""

from __future__ import annotations

import collections
import hashlib
import os
import uuid

import apache_beam as beam
import tensorflow as tf

from pseudolabel import outputs


class WriteShards(beam.PTransform):
    """Lists of serialized records → `num_shards` TFRecord files, each record
    in the shard its bytes hash to; every shard file is written, empty or not.

    Hashing makes the split a function of the records alone; where the runner
    hands a shard its records in a fixed order (the local runner), each file
    is the same byte for byte. Each shard is written whole by one call, so a
    retried bundle rewrites its file.
    """

    def __init__(self, work_dir: str, num_shards: int):
        super().__init__()
        self._work_dir, self._num_shards = work_dir, num_shards

    def expand(self, chunks):
        keyed = chunks | "ShardOf" >> beam.FlatMap(_by_shard, self._num_shards)
        every_shard = chunks.pipeline | "EveryShard" >> beam.Create([(s, []) for s in range(self._num_shards)])
        return (
            (keyed, every_shard)
            | "Flatten" >> beam.Flatten()
            | "GroupByShard" >> beam.GroupByKey()
            | "Write" >> beam.Map(_write_shard, work_dir=self._work_dir, num_shards=self._num_shards)
        )


def shard_of(record: bytes, num_shards: int) -> int:
    """The shard a record goes to: a hash of its bytes, the same in every process."""
    return int.from_bytes(hashlib.blake2b(record, digest_size=8).digest(), "big") % num_shards


def _by_shard(chunk: list[bytes], num_shards: int):
    """`(shard, [records])` for each shard some record of the chunk hashes to."""
    shards = collections.defaultdict(list)
    for record in chunk:
        shards[shard_of(record, num_shards)].append(record)
    yield from shards.items()


def _write_shard(shard_and_chunks, *, work_dir: str, num_shards: int) -> str:
    shard, chunks = shard_and_chunks
    name = outputs.shard_name(shard, num_shards)
    with tf.io.TFRecordWriter(os.path.join(work_dir, name)) as writer:
        for chunk in chunks:  # one of them empty: the marker that makes every shard a group
            for record in chunk:
                writer.write(record)
    return name


class BundleFile:
    """The TFRecord file of one bundle attempt: named at random in `directory`,
    opened at the first write, closed by `close` when the bundle finishes.

    A retried bundle writes a new file and the runner discards the failed
    attempt's outputs, so nothing downstream names a partial file. Readers
    come after a grouping or a side input, by when every file of a committed
    bundle is closed. Used by `WriteBundleFilesFn` and the job's spill
    (`pipeline.SpillRecordsFn`).
    """

    def __init__(self, directory: str):
        self._directory = directory
        self._writer, self.name, self.count = None, None, 0

    def write(self, records: list[bytes]) -> int:
        """Appends `records`; returns the index in the file of the first of them."""
        if self._writer is None:
            self.name = f"{uuid.uuid4().hex}{outputs.RECORD_SUFFIX}"
            self._writer = tf.io.TFRecordWriter(os.path.join(self._directory, self.name))
        start = self.count
        for record in records:
            self._writer.write(record)
        self.count += len(records)
        return start

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class WriteBundleFilesFn(beam.DoFn):
    """Writes each bundle's records to a file of its own in `parts_dir`
    (`BundleFile`); yields `(digest of the file's first record, file name)`
    once per file.

    The digest orders the files in `name_bundle_files`: where the runner makes
    the same bundles (the local runner), the same records get the same shard
    number on every run.
    """

    def __init__(self, parts_dir: str):
        self._parts_dir = parts_dir

    def start_bundle(self):
        self._file = BundleFile(self._parts_dir)

    def process(self, chunk: list[bytes]):
        if chunk and self._file.write(chunk) == 0:
            yield hashlib.blake2b(chunk[0], digest_size=16).hexdigest(), self._file.name

    def finish_bundle(self):
        self._file.close()


def name_bundle_files(files: list[tuple[str, str]], parts_dir: str, work_dir: str) -> int:
    """Moves the files `WriteBundleFilesFn` wrote from `parts_dir` to
    `work_dir` as `pseudo-SSSSS-of-NNNNN.tfrecord`, in the order of their
    first records' digests; with no files, writes one empty shard (a reader
    then finds an empty output, not a missing one). Returns the shard count."""
    names = [name for _, name in sorted(files)]
    if not names:
        with tf.io.TFRecordWriter(os.path.join(work_dir, outputs.shard_name(0, 1))):
            pass
        return 1
    for shard, name in enumerate(names):
        tf.io.gfile.rename(
            os.path.join(parts_dir, name), os.path.join(work_dir, outputs.shard_name(shard, len(names))), overwrite=True
        )
    return len(names)
