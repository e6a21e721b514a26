"""The benchmarks' published image folders: listed, checked against the full sets, and streamed.

Layouts as distributed (docs/robustness.md):

  ImageNet-C      ROOT/<corruption>/<severity 1-5>/<wnid>/<name>.JPEG   (224 px crops)
  ImageNet-A, -R  ROOT/<wnid>/<name>.jpg                                (200 wnids each)

ImageNet-P's videos are read by robustness/imagenet_p.py.

A benchmark is evaluated as one stream of *class folders*: `ClassFolder(path, wnid, label,
group)`, where label is the 1000-way index of the wnid (robustness/imagenet_classes.py) and
group says which part of the benchmark the folder belongs to (for ImageNet-C, one group per
corruption and severity). `labeled_batches` lists the files of one folder at a time as the
tf.data pipeline asks for them, reads, decodes and views them at each model's resolution in
parallel, and yields prefetched batches with their labels and groups. So evaluating the 3.75
million ImageNet-C images holds neither a list of their paths nor a corruption's images in
memory: only the batches in flight; the caller keeps per-batch counts. One progress line
with an ETA covers the whole stream (`count_images` gives its total).

A file that does not decode is left out with TensorFlow's warning, and the callers count
such files as the difference between the files listed and the images scored, per group: the
project's per-file guarded reading (efficientnet/data/source.py `guarded_map`, which names
each file) costs ~4x the time per image here (1.05 s against 0.21 s for 320 small JPEGs on
one CPU thread), too much for 3.75 million images, and the published files all decode.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Iterator, Sequence

import numpy as np
import tensorflow as tf

from efficientnet.data.preprocessing import decode_image
from efficientnet.data.source import IMAGE_EXTENSIONS
from efficientnet.util.progress import ProgressLine
from robustness import imagenet_classes, inference

# Folders listed at once when counting the files of a benchmark (a 75,000-folder listing on
# gs:// is latency-bound, not CPU-bound).
LISTING_THREADS = 16
# How many missing wnids a markdown report names before it only counts them.
NAMED_MISSING = 10


@dataclasses.dataclass(frozen=True)
class ClassFolder:
    """One folder of images of one class, in one part (`group`) of a benchmark."""

    path: str
    wnid: str
    label: int
    group: int = 0


def subfolders(path: str) -> list[str]:
    """Names of the visible subfolders of `path`, sorted (files and `.hidden` entries are ignored)."""
    names = [name.rstrip("/") for name in tf.io.gfile.listdir(path)]
    return sorted(name for name in names if not name.startswith(".") and tf.io.gfile.isdir(os.path.join(path, name)))


def require_dir(path: str, flag: str) -> None:
    if not tf.io.gfile.isdir(path):
        raise FileNotFoundError(f"{flag} {path!r} is not a folder")


def class_folders(
    path: str, *, allowed: Sequence[str] | None = None, what: str = "", group: int = 0
) -> tuple[list[ClassFolder], list[str]]:
    """The wnid folders of `path` and the allowed wnids missing from it.

    Args:
      allowed: the benchmark's wnids (ImageNet-A's or -R's 200); None for all 1000.
      what: the benchmark's name, for errors.

    Raises ValueError naming a folder that is not an allowed wnid (imagenet_classes.folder_classes).
    """
    classes = imagenet_classes.folder_classes(path, subfolders(path), allowed, what)
    expected = imagenet_classes.imagenet_wnids() if allowed is None else allowed
    folders = [ClassFolder(os.path.join(path, wnid), wnid, label, group) for wnid, label in classes.items()]
    return folders, sorted(set(expected) - set(classes))


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def image_names(folder: str) -> list[str]:
    """The image files of one folder, sorted (not recursive)."""
    return sorted(name for name in tf.io.gfile.listdir(folder) if is_image_name(name))


def count_images(folders: Sequence[ClassFolder], num_groups: int, max_per_group: int | None = None) -> np.ndarray:
    """Images per group, counting at most `max_per_group` in each (listed in parallel)."""
    with concurrent.futures.ThreadPoolExecutor(LISTING_THREADS) as pool:
        counts = list(pool.map(lambda folder: len(image_names(folder.path)), folders))
    per_group = np.zeros(num_groups, np.int64)
    for folder, count in zip(folders, counts, strict=True):
        per_group[folder.group] += count
    return per_group if max_per_group is None else np.minimum(per_group, max_per_group)


def labeled_batches(
    task: str,
    folders: Sequence[ClassFolder],
    resolutions: Sequence[int],
    view: inference.View,
    *,
    batch_size: int,
    total: int,
    max_per_group: int | None = None,
) -> Iterator[tuple[dict[int, np.ndarray], np.ndarray, np.ndarray]]:
    """Batches of ({resolution: views}, labels, groups) of every image of `folders`, in order.

    Args:
      task: the progress line's label.
      total: how many images the stream holds (`count_images`), for the ETA.
      max_per_group: the first N images of each group only (smoke runs).
    """

    def records():
        taken = {}
        for folder in folders:
            for name in image_names(folder.path):
                if max_per_group is not None and taken.get(folder.group, 0) >= max_per_group:
                    break
                taken[folder.group] = taken.get(folder.group, 0) + 1
                yield {"id": os.path.join(folder.path, name), "label": folder.label, "group": folder.group}

    signature = {
        "id": tf.TensorSpec([], tf.string),
        "label": tf.TensorSpec([], tf.int64),
        "group": tf.TensorSpec([], tf.int64),
    }
    files = tf.data.Dataset.from_generator(records, output_signature=signature)

    def decode(record):
        return {
            "label": record["label"],
            "group": record["group"],
            "image": decode_image(tf.io.read_file(record["id"])),
        }

    examples = files.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors(
        log_warning=True
    )
    progress = ProgressLine(task, total)
    for views, values in inference.example_batches(
        examples, resolutions, view, batch_size=batch_size, keys=("label", "group")
    ):
        yield views, values["label"], values["group"]
        progress.advance(len(values["label"]))
    progress.close()


def named(wnids: Sequence[str], limit: int = NAMED_MISSING) -> str:
    """`n01440764, n01443537 and 3 more`: a list of wnids short enough for one report line."""
    shown = ", ".join(wnids[:limit])
    return shown + (f" and {len(wnids) - limit} more" if len(wnids) > limit else "")
