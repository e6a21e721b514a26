"""ImageNet-A: natural adversarial examples of 200 ImageNet classes (docs/robustness.md#imagenet-a).

A 1000-way classifier is scored the benchmark's way: its logits are restricted to the 200
ImageNet-A classes and the prediction is the argmax among those (so it cannot lose to a
class that ImageNet-A never contains). TFDS `imagenet_a` labels are in the 1000-class index
space, so the restricted argmax is mapped back to a 1000-class index and compared directly.

Reported: top-1 accuracy (and error), the RMS calibration error with adaptive bins of 100
that the benchmark's calibration_tools.py prints (see metrics.rms_calibration_error for the
one difference), and the more common 15-bin expected calibration error. Confidence is the
maximum softmax probability over the 200 restricted logits, as in the benchmark's eval.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from efficientnet.data.datasets import open_source
from robustness import inference, metrics

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


def imagenet_a_predictions(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Restricts 1000-class logits [N, 1000] to the 200 ImageNet-A classes.

    Returns (predicted class in the 1000-class index space, confidence = max softmax
    probability over the 200 classes).
    """
    if logits.shape[-1] != IMAGENET_CLASSES:
        raise ValueError(f"ImageNet-A needs 1000-class logits, got {logits.shape[-1]} classes")
    restricted = logits[:, IMAGENET_A_CLASSES].astype(np.float64)
    best = np.argmax(restricted, axis=-1)
    shifted = restricted - restricted.max(axis=-1, keepdims=True)
    confidence = 1.0 / np.exp(shifted).sum(axis=-1)  # softmax at the argmax, whose shifted logit is 0
    return np.asarray(IMAGENET_A_CLASSES)[best], confidence


def imagenet_a_scores(logits: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Top-1 accuracy and calibration of 1000-class logits on ImageNet-A labels (1000 space)."""
    predictions, confidence = imagenet_a_predictions(logits)
    correct = predictions == labels
    return {
        "num_examples": int(len(labels)),
        "top1": float(correct.mean()),
        "top1_error": float(1 - correct.mean()),
        "rms_calibration_error": metrics.rms_calibration_error(confidence, correct, CALIBRATION_BIN_SIZE),
        "expected_calibration_error": metrics.expected_calibration_error(confidence, correct, ECE_BINS),
        # Real ImageNet-A labels are always among the 200 classes; others can never be right.
        "labels_outside_200_classes": int((~np.isin(labels, IMAGENET_A_CLASSES)).sum()),
    }


def imagenet_a_report(
    export_paths: Mapping[str, str],
    *,
    dataset: str = "tfds:imagenet_a",
    split: str = "test",
    data_dir: str | None = None,
    max_examples: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Evaluates 1000-class exports on ImageNet-A (eval crop at each model's resolution)."""
    classifiers = inference.load_classifiers(export_paths)
    inference.require_num_classes(classifiers, IMAGENET_CLASSES, "ImageNet-A (1000-class index space)")
    source = open_source(dataset, data_dir=data_dir)
    logits = {name: [] for name in classifiers}
    labels = []
    resolutions = [c.resolution for c in classifiers.values()]
    for views, batch_labels in inference.view_batches(
        "imagenet_a", source, split, resolutions, inference.eval_view, batch_size=batch_size, max_examples=max_examples
    ):
        labels.append(batch_labels)
        for name, classifier in classifiers.items():
            logits[name].append(classifier.logits(views[classifier.resolution], batch_size))
    if not labels:
        raise ValueError(f"split {split!r} of {dataset!r} is empty")
    labels = np.concatenate(labels)
    models = {
        name: {"export": classifiers[name].path, "resolution": classifiers[name].resolution}
        | imagenet_a_scores(np.concatenate(values), labels)
        for name, values in logits.items()
    }
    return {
        "benchmark": "imagenet_a",
        "dataset": dataset,
        "split": split,
        "calibration": f"RMS calibration error, adaptive bins of {CALIBRATION_BIN_SIZE}; ECE with {ECE_BINS} bins",
        "models": models,
    }
