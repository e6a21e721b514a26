"""Image files as a dataset: `folder:PATH` and `images:GLOB`.

  folder:PATH   with one subfolder per class: labeled data, the classes being
                the sorted subfolder names; with the images directly in PATH
                (no subfolders, not searched recursively): an unlabeled corpus
  images:GLOB   every image file matching a pattern, an unlabeled corpus
                spread over folders or buckets; `**` matches any number of
                folders, e.g. `images:/data/scrape/**/*.jpg`, `images:gs://b/cam*/*.png`

The id of an image is its path. Only files ending in an image extension
(IMAGE_EXTENSIONS) are listed; a listed file that does not decode is skipped,
logged and counted when training, and reported as a failure by the labeling
job. Listing happens when the source is opened, once per reader.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import tensorflow as tf

from efficientnet.data.source import (
    IMAGE_EXTENSIONS,
    SOURCES,
    UNKNOWN_LABEL,
    Shard,
    Source,
)

# Files per unit of parallel reading (a labeling worker's share at a time).
FILES_PER_SHARD = 512
_EXTENSIONS = "/".join(IMAGE_EXTENSIONS)


class ImageFilesSource(Source):
    """A fixed list of image files with their labels (UNKNOWN_LABEL when unlabeled)."""

    reads_files = True

    def _set_files(self, paths: list[str], labels: list[int]) -> None:
        self.paths, self.labels = paths, labels
        if not paths:
            raise self.empty_error(None)

    def num_examples(self, split: str | None = None) -> int:
        self.check_split(split)
        return len(self.paths)

    def num_shards(self, split: str | None = None) -> int:
        return math.ceil(len(self.paths) / FILES_PER_SHARD)

    def num_files(self, split: str | None = None) -> int:
        return len(self.paths)  # `shard=` deals out single files

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

    def parse(self, record):
        return record | {"encoded": tf.io.read_file(record["id"])}


@SOURCES.register("folder")
class FolderSource(ImageFilesSource):
    """`PATH/<class>/<image>` (labeled) or `PATH/<image>` (unlabeled); see the module docstring.

    A folder holding both class subfolders and images of its own is refused:
    which of the two the user meant cannot be guessed. Hidden subfolders
    (`.thumbnails`, `.git`) are ignored.
    """

    def __init__(self, argument: str, data_dir: str | None = None):
        super().__init__()
        if not argument:
            raise ValueError("folder source needs a path, e.g. 'folder:/data/flowers/train'")
        if not tf.io.gfile.isdir(argument):
            raise FileNotFoundError(f"image folder {argument!r} does not exist")
        self.spec, self._path = f"folder:{argument}", argument
        entries = [name.rstrip("/") for name in tf.io.gfile.listdir(argument)]
        classes = sorted(
            name for name in entries if not name.startswith(".") and tf.io.gfile.isdir(os.path.join(argument, name))
        )
        images = sorted(name for name in entries if _is_image_name(name) and name not in classes)
        if classes and images:
            raise ValueError(
                f"image folder {argument!r} holds both class subfolders ({_listed(classes)}) and "
                f"{len(images)} image(s) of its own (e.g. {images[0]!r}); put every image in a class subfolder, "
                f"or read only its own images as an unlabeled corpus with 'images:{os.path.join(argument, '*')}'"
            )
        if not classes:
            self.labeled = False
            self._set_files([os.path.join(argument, name) for name in images], [UNKNOWN_LABEL] * len(images))
            return
        self.class_names = tuple(classes)
        self.num_classes = len(classes)
        paths, labels = [], []
        for label, name in enumerate(classes):
            for file_name in sorted(tf.io.gfile.listdir(os.path.join(argument, name))):
                if _is_image_name(file_name):
                    paths.append(os.path.join(argument, name, file_name))
                    labels.append(label)
        self._set_files(paths, labels)

    def looked_for(self, split: str | None) -> str:
        if self.class_names:
            return f"{_EXTENSIONS} files in the class subfolders of {self._path}"
        return f"{_EXTENSIONS} files in {self._path} or in class subfolders of it"


@SOURCES.register("images")
class ImagesSource(ImageFilesSource):
    """Every image file matching a glob pattern, unlabeled; see the module docstring."""

    labeled = False

    def __init__(self, argument: str, data_dir: str | None = None):
        super().__init__()
        if not argument:
            raise ValueError("images source needs a file pattern, e.g. 'images:/data/scrape/**/*.jpg'")
        self.spec, self._pattern = f"images:{argument}", argument
        paths = sorted(path for path in glob_files(argument) if _is_image_name(path))
        self._set_files(paths, [UNKNOWN_LABEL] * len(paths))

    def looked_for(self, split: str | None) -> str:
        return f"files matching {self._pattern!r} that end in {_EXTENSIONS}"


def glob_files(pattern: str) -> list[str]:
    """Files matching `pattern`, local or gs://; `**` spans any number of folders.

    tf.io.gfile.glob has no recursive wildcard, so a pattern with `**` walks
    the folder before its first wildcard and matches each file's path against
    `glob_regex(pattern)`; others go to tf.io.gfile.glob as they are.
    """
    if "**" not in pattern:
        return [path for path in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(path)]
    root = _fixed_prefix(pattern)
    if not tf.io.gfile.isdir(root or "."):
        return []
    matcher = glob_regex(pattern)
    found = []
    for directory, _, files in tf.io.gfile.walk(root or "."):
        for name in files:
            path = os.path.join(directory, name) if root else os.path.relpath(os.path.join(directory, name))
            if matcher.fullmatch(path):
                found.append(path)
    return found


def glob_regex(pattern: str) -> re.Pattern:
    """A glob pattern as a regular expression over whole paths.

    `*` and `?` stay within one folder level, `[…]` is a character class, and
    `**` matches any number of levels: `a/**/*.jpg` matches `a/x.jpg` and
    `a/b/c/x.jpg`.
    """
    parts, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        elif pattern[index] == "[" and "]" in pattern[index + 2 :]:
            end = pattern.index("]", index + 2)
            body = pattern[index + 1 : end]
            parts.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            index = end + 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts))


def _fixed_prefix(pattern: str) -> str:
    """The folder of `pattern` before its first wildcard, where walking starts ('' for the working directory)."""
    first = min(position for position in (pattern.find(c) for c in "*?[") if position >= 0)
    head = pattern[:first]
    return head.rsplit("/", 1)[0] or "/" if "/" in head else ""


def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _listed(names: list[str], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", …" if len(names) > shown else "")
