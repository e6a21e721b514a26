"""`folder:PATH`: one subfolder per class holding image files."""

from __future__ import annotations

import math
import os

import numpy as np
import tensorflow as tf

from efficientnet.data.source import IMAGE_EXTENSIONS, SOURCES, Shard, Source

# Files per unit of parallel reading (a labeling worker's share at a time).
FILES_PER_SHARD = 512


@SOURCES.register("folder")
class FolderSource(Source):
    """`PATH/<class name>/<image file>`; classes are the sorted subfolder names.

    The id of an image is its path. Listing happens when the source is opened,
    once per reader.
    """

    reads_files = True

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
        self.check_split(split)
        return len(self.paths)

    def num_shards(self, split: str | None = None) -> int:
        return math.ceil(len(self.paths) / FILES_PER_SHARD)

    def _raw(self, split, *, shard: Shard, shuffle_files, seed, decode) -> tf.data.Dataset:
        index, count = shard
        files = tf.data.Dataset.from_tensor_slices(
            {
                "id": tf.constant(self.paths[index::count], tf.string),
                "label": np.array(self.labels[index::count], np.int64),
            }
        )
        if shuffle_files:
            files = files.shuffle(max(1, len(self.paths)), seed=seed)
        return files

    def _parse(self, record):
        return record | {"encoded": tf.io.read_file(record["id"])}
