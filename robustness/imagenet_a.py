"""ImageNet-A: natural adversarial examples of 200 ImageNet classes (docs/robustness.md#imagenet-a).

A 1000-way classifier is scored the benchmark's way: its logits are restricted to the 200
ImageNet-A classes and the prediction is the argmax among those (so it cannot lose to a
class that ImageNet-A never contains). Labels are in the 1000-class index space (TFDS
`imagenet_a`'s are; the published folders' wnids are mapped through
robustness/imagenet_classes.py), so the restricted argmax is mapped back to a 1000-class
index and compared directly. ImageNet-R (robustness/imagenet_r.py) is scored the same way
over its own 200 classes, through `class_subset_files_report`.

Data: TFDS `imagenet_a` (the published images, repackaged) or the published folders
ROOT/<wnid>/<name>.jpg, streamed in parallel (robustness/published_files.py); the report
says which, and whether it is comparable with published numbers (all 200 classes, every
image read, no `max_examples`).

Reported: top-1 accuracy (and error), the RMS calibration error with adaptive bins of 100
that the benchmark's calibration_tools.py prints (see metrics.rms_calibration_error for the
one difference), and the more common 15-bin expected calibration error. Confidence is the
maximum softmax probability over the 200 restricted logits, as in the benchmark's eval.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from efficientnet.data.datasets import open_source
from robustness import imagenet_classes, inference, metrics, published_files

# The 200 ImageNet-A classes as indices into the 1000 ImageNet classes, ascending:
# `indices_in_1k` of hendrycks/natural-adv-examples eval.py (commit 07770705, 2021-02-28),
# i.e. the keys of its `thousand_k_to_200` whose value is not -1; position i of this tuple is
# ImageNet-A class i.
IMAGENET_A_CLASSES = (
    6, 11, 13, 15, 17, 22, 23, 27, 30, 37, 39, 42, 47, 50, 57, 70, 71, 76, 79, 89,
    90, 94, 96, 97, 99, 105, 107, 108, 110, 113, 124, 125, 130, 132, 143, 144, 150, 151, 207, 234,
    235, 254, 277, 283, 287, 291, 295, 298, 301, 306, 307, 308, 309, 310, 311, 313, 314, 315, 317, 319,
    323, 324, 326, 327, 330, 334, 335, 336, 347, 361, 363, 372, 378, 386, 397, 400, 401, 402, 404, 407,
    411, 416, 417, 420, 425, 428, 430, 437, 438, 445, 456, 457, 461, 462, 470, 472, 483, 486, 488, 492,
    496, 514, 516, 528, 530, 539, 542, 543, 549, 552, 557, 561, 562, 569, 572, 573, 575, 579, 589, 606,
    607, 609, 614, 626, 627, 640, 641, 642, 643, 658, 668, 677, 682, 684, 687, 701, 704, 719, 736, 746,
    749, 752, 758, 763, 765, 768, 773, 774, 776, 779, 780, 786, 792, 797, 802, 803, 804, 813, 815, 820,
    823, 831, 833, 835, 839, 845, 847, 850, 859, 862, 870, 879, 880, 888, 890, 897, 900, 907, 913, 924,
    932, 933, 934, 937, 943, 945, 947, 951, 954, 956, 957, 959, 971, 972, 980, 981, 984, 986, 987, 988,
)  # fmt: skip
IMAGENET_CLASSES = 1000
CALIBRATION_BIN_SIZE = 100
ECE_BINS = 15
CALIBRATION = f"RMS calibration error, adaptive bins of {CALIBRATION_BIN_SIZE}; ECE with {ECE_BINS} bins"


def restricted_predictions(logits: np.ndarray, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Restricts 1000-class logits [N, 1000] to `classes` (ascending 1000-way indices).

    Returns (predicted class in the 1000-class index space, confidence = max softmax
    probability over the restricted logits).
    """
    if logits.shape[-1] != IMAGENET_CLASSES:
        raise ValueError(f"a {len(classes)}-class subset of ImageNet needs 1000-class logits, got {logits.shape[-1]}")
    restricted = logits[:, list(classes)].astype(np.float64)
    best = np.argmax(restricted, axis=-1)
    shifted = restricted - restricted.max(axis=-1, keepdims=True)
    confidence = 1.0 / np.exp(shifted).sum(axis=-1)  # softmax at the argmax, whose shifted logit is 0
    return np.asarray(classes)[best], confidence


def imagenet_a_predictions(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`restricted_predictions` over the 200 ImageNet-A classes."""
    return restricted_predictions(logits, IMAGENET_A_CLASSES)


def subset_scores(
    predictions: np.ndarray, confidence: np.ndarray, labels: np.ndarray, classes: Sequence[int]
) -> dict[str, Any]:
    """Top-1 accuracy and calibration of restricted predictions against labels (1000 space)."""
    correct = predictions == labels
    return {
        "num_examples": int(len(labels)),
        "top1": float(correct.mean()),
        "top1_error": float(1 - correct.mean()),
        "rms_calibration_error": metrics.rms_calibration_error(confidence, correct, CALIBRATION_BIN_SIZE),
        "expected_calibration_error": metrics.expected_calibration_error(confidence, correct, ECE_BINS),
        # Real labels are always among the subset's classes; others can never be right.
        f"labels_outside_{len(classes)}_classes": int((~np.isin(labels, classes)).sum()),
    }


def imagenet_a_scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1 accuracy and calibration of 1000-class logits on ImageNet-A labels (1000 space)."""
    return subset_scores(*imagenet_a_predictions(logits), labels, IMAGENET_A_CLASSES)


def _score_stream(
    classifiers, batches: Iterable[tuple[dict[int, np.ndarray], np.ndarray]], classes, batch_size
) -> dict[str, dict]:
    """Restricted top-1 and calibration of every classifier over a stream of (views, labels).

    Per batch only the restricted prediction and confidence are kept (two numbers an image),
    never the logits.
    """
    kept = {name: ([], []) for name in classifiers}
    labels = []
    for views, batch_labels in batches:
        labels.append(batch_labels)
        for name, classifier in classifiers.items():
            predictions, confidence = restricted_predictions(
                classifier.logits(views[classifier.resolution], batch_size), classes
            )
            kept[name][0].append(predictions)
            kept[name][1].append(confidence)
    if not labels:
        return {}
    labels = np.concatenate(labels)
    return {
        name: {"export": classifiers[name].path, "resolution": classifiers[name].resolution}
        | subset_scores(np.concatenate(predictions), np.concatenate(confidence), labels, classes)
        for name, (predictions, confidence) in kept.items()
    }


def imagenet_a_report(
    export_paths: Mapping[str, str],
    *,
    dataset: str = "tfds:imagenet_a",
    split: str = "test",
    root: str | None = None,
    data_dir: str | None = None,
    max_examples: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Evaluates 1000-class exports on ImageNet-A (eval crop at each model's resolution).

    Args:
      root: the published folders ROOT/<wnid>/<name>.jpg; None for the TFDS `dataset`.
    """
    if root is not None:
        return class_subset_files_report(
            "imagenet_a", "ImageNet-A", export_paths, root, imagenet_classes.wnids_of(IMAGENET_A_CLASSES),
            max_examples=max_examples, batch_size=batch_size,
        )  # fmt: skip
    classifiers = inference.load_classifiers(export_paths)
    inference.require_num_classes(classifiers, IMAGENET_CLASSES, "ImageNet-A (1000-class index space)")
    source = open_source(dataset, data_dir=data_dir)
    resolutions = [c.resolution for c in classifiers.values()]
    batches = inference.view_batches(
        "imagenet_a", source, split, resolutions, inference.eval_view, batch_size=batch_size, max_examples=max_examples
    )
    models = _score_stream(classifiers, batches, IMAGENET_A_CLASSES, batch_size)
    if not models:
        raise ValueError(f"split {split!r} of {dataset!r} is empty")
    reasons = [] if max_examples is None else [f"only the first {max_examples} images (--max_examples)"]
    return {
        "benchmark": "imagenet_a",
        "dataset": dataset,
        "data_source": f"TFDS {dataset.removeprefix('tfds:')} {split} (the published images, repackaged)",
        "comparable": not reasons,
        "not_comparable_because": reasons,
        "split": split,
        "calibration": CALIBRATION,
        "models": models,
    }


def class_subset_files_report(
    benchmark: str,
    title: str,
    export_paths: Mapping[str, str],
    root: str,
    wnids: Sequence[str],
    *,
    max_examples: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """A 200-class ImageNet subset benchmark (ImageNet-A, ImageNet-R) from ROOT/<wnid>/<name>.jpg.

    Args:
      benchmark, title: the result's `benchmark` key and the name used in messages.
      wnids: the benchmark's classes; a class folder not among them is an error naming it,
        a class of them without a folder is reported in `missing_classes` and makes the
        result not comparable with published numbers.
      max_examples: the first N images only (smoke runs).
    """
    published_files.require_dir(root, f"--{benchmark}_dir")
    folders, missing = published_files.class_folders(root, allowed=wnids, what=title)
    if not folders:
        raise ValueError(f"{root!r} holds no {title} class folder (ROOT/<wnid>/<name>.jpg)")
    total = int(published_files.count_images(folders, 1, max_examples).sum())
    classifiers = inference.load_classifiers(export_paths)
    inference.require_num_classes(classifiers, IMAGENET_CLASSES, f"{title} (1000-class index space)")
    resolutions = [c.resolution for c in classifiers.values()]
    stream = published_files.labeled_batches(
        f"{benchmark} on {root}",
        folders,
        resolutions,
        inference.eval_view,
        batch_size=batch_size,
        total=total,
        max_per_group=max_examples,
    )
    models = _score_stream(
        classifiers, ((views, labels) for views, labels, _ in stream), imagenet_classes.indices_of(wnids), batch_size
    )
    if not models:
        raise ValueError(f"{root!r} holds no readable {title} image")
    reasons = []
    if missing:
        reasons.append(f"{len(missing)} of {len(wnids)} classes missing: {published_files.named(missing)}")
    if max_examples is not None:
        reasons.append(f"only the first {max_examples} images (--max_examples)")
    undecodable = total - next(iter(models.values()))["num_examples"]  # files listed but not scored
    if undecodable:
        reasons.append(f"{undecodable} undecodable image(s) left out")
    return {
        "benchmark": benchmark,
        "dataset": f"files:{root}",
        "data_source": f"published {title} files under {root}",
        "comparable": not reasons,
        "not_comparable_because": reasons,
        "missing_classes": missing,
        "undecodable_images": undecodable,
        "calibration": CALIBRATION,
        "models": models,
    }
