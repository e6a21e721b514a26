"""`tfds:NAME[/CONFIG][:VERSION]`: a TensorFlow Datasets dataset with `image` and `label` features."""

from __future__ import annotations

import tensorflow as tf

from efficientnet.data.source import EVAL, SOURCES, Shard, Source


@SOURCES.register("tfds")
class TfdsSource(Source):
    """A TFDS dataset with `image` and `label` features.

    Reads prepared data from `data_dir`; when the data is not there yet, TFDS
    downloads and prepares it (datasets like imagenet2012 need their archives
    placed in the manual directory first, as TFDS explains). Ids are the
    dataset's own `file_name` or `id` feature when it has one, else TFDS's
    `tfds_id` (file and position), which is the same however the split is
    sharded. With `decode=False` the stored image bytes are passed on as they
    are (TFDS's `SkipDecoding`), not re-encoded.
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
        self._id_feature = next((key for key in ("file_name", "id") if key in features), "tfds_id")

    @property
    def split_names(self) -> tuple[str, ...]:
        # Known once the data is prepared; before that TFDS itself checks.
        return tuple(self._builder.info.splits)

    def check_split(self, split: str | None) -> None:
        if split is None:
            raise ValueError(f"{self.spec!r} needs a split, e.g. 'train'")
        if self.split_names:
            super().check_split(split.split("[")[0])  # TFDS reads slices such as 'train[:10%]' itself

    def default_split(self, purpose: str) -> str:
        """`train` to train on; `test` to evaluate on, or `validation` where
        there is no test split (imagenet2012's test labels are not public)."""
        if purpose != EVAL:
            return "train"
        names = self.split_names
        return "validation" if names and "test" not in names and "validation" in names else "test"

    def looked_for(self, split: str | None) -> str:
        return f"the examples of split {split!r} of TFDS dataset {self._builder.name!r}"

    def num_examples(self, split: str | None = None) -> int | None:
        self.check_split(split)
        splits = self._builder.info.splits
        return splits[split].num_examples if split in splits else None

    def num_shards(self, split: str | None = None) -> int:
        self.check_split(split)
        try:
            return max(1, len(self._builder.info.splits[split].file_instructions))
        except (KeyError, ValueError):
            return 1

    def _raw(self, split, *, shard: Shard, shuffle_files, seed, decode) -> tf.data.Dataset:
        import tensorflow_datasets as tfds

        self._builder.download_and_prepare()
        index, count = shard
        by_file = count <= self.num_shards(split)
        context = tf.distribute.InputContext(num_input_pipelines=count, input_pipeline_id=index) if by_file else None
        dataset = self._builder.as_dataset(
            split=split,
            shuffle_files=shuffle_files,
            decoders=None if decode else {"image": tfds.decode.SkipDecoding()},
            read_config=tfds.ReadConfig(shuffle_seed=seed, add_tfds_id=True, input_context=context),
        )
        if not by_file:
            dataset = dataset.shard(count, index)
        image_key = "image" if decode else "encoded"

        def standardize(example):
            image = example["image"]
            if decode and image.shape[-1] == 1:
                image = tf.image.grayscale_to_rgb(image)
            return {
                "id": example[self._id_feature],
                image_key: image,
                "label": tf.cast(example["label"], tf.int64),
            }

        return dataset.map(standardize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
