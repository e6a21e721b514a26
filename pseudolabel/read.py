"""Reading an unlabeled corpus into Beam as batches of `(id, encoded image bytes)`.

Any dataset spec works, read by the same `Source` readers training uses
(efficientnet/data/datasets.py), so an image has the same id here as in
training and evaluation. The corpus is cut into the source's natural shards
(`Source.num_shards`: a TFRecord file, a few hundred image files, a TFDS file)
and each worker reads whole shards with `Source.encoded_batches(shard=…)`
(`examples(decode=False)` a batch at a time), each batch one element, the
teacher's batch: the original JPEG/PNG bytes go on untouched (sources that
only hold pixels, like digits, give PNG). A record that cannot be read
arrives with empty bytes, so the teacher's decoding turns it into a dead
letter named by its id, like any undecodable image.
"""

from __future__ import annotations

import apache_beam as beam

from efficientnet.data.datasets import open_source

FAILED = "failed"  # tag of the dead-letter output


class _ReadShardFn(beam.DoFn):
    """Shard index → lists of at most `batch_size` `(id, encoded bytes)`, every image in that shard."""

    def __init__(self, spec: str, split: str | None, data_dir: str | None, num_shards: int, batch_size: int):
        self._spec, self._split, self._data_dir, self._num_shards = spec, split, data_dir, num_shards
        self._batch_size = batch_size

    def setup(self):
        self._source = open_source(self._spec, data_dir=self._data_dir)

    def process(self, index: int):
        shard = (index, self._num_shards)
        for batch in self._source.encoded_batches(self._split, shard=shard, batch_size=self._batch_size):
            ids = [example_id.decode() for example_id in batch["id"]]
            yield list(zip(ids, batch["encoded"], strict=True))


class ReadImages(beam.PTransform):
    """Batches of `(id, encoded bytes)`, every image of `spec`, read in parallel shards.

    With `spread`, for a runner with many workers, the shards are reshuffled
    so that different workers read them, and so are the batches, so that
    every worker labels some, not just those that read a shard. Where one
    process runs the whole job there is nobody to spread them to: each
    reshuffle would only add its stages to the job and serialize every
    image's bytes once more.
    """

    def __init__(
        self,
        spec: str,
        split: str | None,
        data_dir: str | None,
        num_shards: int,
        batch_size: int,
        *,
        spread: bool = True,
    ):
        super().__init__()
        self._spec, self._split, self._data_dir, self._num_shards = spec, split, data_dir, num_shards
        self._batch_size, self._spread = batch_size, spread

    def expand(self, pipeline):
        shards = pipeline | "Shards" >> beam.Create(list(range(self._num_shards)))
        if self._spread:
            shards = shards | "SpreadShards" >> beam.Reshuffle()
        reader = _ReadShardFn(self._spec, self._split, self._data_dir, self._num_shards, self._batch_size)
        batches = shards | "ReadShards" >> beam.ParDo(reader)
        return batches | "SpreadImages" >> beam.Reshuffle() if self._spread else batches
