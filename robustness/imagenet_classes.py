"""The 1000 ImageNet classes by WordNet id (wnid), for the benchmarks' published folders.

ImageNet-C, -A, -R and -P are published as folders named by wnid (`n01440764`, …), while a
1000-way classifier's outputs are class indices. The index of a wnid is its position in the
list TensorFlow Datasets ships with its ImageNet builder,
`tensorflow_datasets/datasets/imagenet2012/labels.txt` (1000 lines, the sorted wnids: the same
order as torchvision's `ImageFolder` over ImageNet, which the benchmarks' own evaluation code
uses). It is read from the installed package, so the mapping needs no download and cannot
disagree with `tfds:imagenet2012`'s labels.

A folder whose name is not one of the wnids a benchmark allows is an error that names it:
scoring its images under another class, or skipping them, would change the result silently.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Sequence

NUM_CLASSES = 1000
LABELS_FILE = os.path.join("datasets", "imagenet2012", "labels.txt")  # inside the tensorflow_datasets package


def labels_path() -> str:
    """Where the installed tensorflow_datasets keeps labels.txt (found without importing TFDS)."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("tensorflow_datasets is not installed; it ships the ImageNet wnid list")
    return os.path.join(next(iter(spec.submodule_search_locations)), LABELS_FILE)


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 wnids in class-index order."""
    with open(labels_path(), encoding="utf-8") as f:
        wnids = tuple(line.strip() for line in f if line.strip())
    if len(wnids) != NUM_CLASSES or len(set(wnids)) != NUM_CLASSES:
        raise ValueError(f"{labels_path()}: expected {NUM_CLASSES} distinct wnids, found {len(set(wnids))}")
    return wnids


@functools.cache
def _index_of() -> dict[str, int]:
    return {wnid: index for index, wnid in enumerate(imagenet_wnids())}


def class_index(wnid: str) -> int:
    """The 1000-way class index of `wnid`; ValueError for a name that is not an ImageNet wnid."""
    index = _index_of().get(wnid)
    if index is None:
        raise ValueError(f"{wnid!r} is not one of the 1000 ImageNet wnids ({labels_path()})")
    return index


def wnids_of(indices: Iterable[int]) -> tuple[str, ...]:
    """The wnids of 1000-way class indices."""
    wnids = imagenet_wnids()
    return tuple(wnids[index] for index in indices)


def indices_of(wnids: Iterable[str]) -> tuple[int, ...]:
    """The 1000-way indices of wnids, ascending (the order of the benchmarks' restricted logits)."""
    return tuple(sorted(class_index(wnid) for wnid in wnids))


def folder_classes(folder: str, names: Sequence[str], allowed: Sequence[str] | None = None, what: str = "") -> dict:
    """{wnid: class index} of the class folders `names` found in `folder`.

    Args:
      allowed: the wnids the benchmark has (e.g. ImageNet-A's 200); None for all 1000.
      what: the benchmark, for the error message.

    Raises ValueError naming the first folder that is not an allowed wnid, and the folder.
    """
    allowed_set = set(imagenet_wnids() if allowed is None else allowed)
    classes = {}
    for name in sorted(names):
        if name not in allowed_set:
            scope = f"the {len(allowed_set)} {what} classes" if what else "the 1000 ImageNet classes"
            known = " (it is an ImageNet wnid, but not of this benchmark)" if name in _index_of() else ""
            raise ValueError(
                f"unknown wnid folder {name!r} in {folder!r}: not one of {scope}{known}; "
                f"class folders must be named by wnid as in {labels_path()}"
            )
        classes[name] = _index_of()[name]
    return classes
