"""Confidence filtering and per-class balancing of pseudo-labels (step 3 of the method).

See docs/noisy_student.md#filtering-and-balancing.

Noisy Student keeps an unlabeled image when the teacher's top-1 confidence is
at least 0.3, then makes every predicted class hold exactly K images: the K
most confident where a class has more, and copies of the ones it has where it
has fewer (K = 130,000 for ImageNet's 1000 classes). Balancing matters because
the teacher's predictions are skewed towards easy classes, and a student
trained on that skew inherits it.

These are pure functions over plain values so that the hand-computed cases in
the tests pin the semantics down; the Beam pipeline (`pipeline.py`) applies
exactly these functions, per batch and per class, and never re-implements
them. The ordering used everywhere is `ranking_key`: higher confidence first,
ties broken by the smaller id, so that a selection is the same on every rerun
and on every runner.
"""

from __future__ import annotations

import collections
import heapq
import math
from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_CONFIDENCE_THRESHOLD = 0.3  # docs/noisy_student.md#filtering-and-balancing
AUTO = "auto"


def passes_threshold(confidence, threshold: float):
    """Whether an image with this top-1 confidence is kept; the boundary is kept.
    Given an array of confidences, a boolean array of the same shape.

    Compared in float64: a float32 probability of exactly 0.3 (0.30000001…)
    is kept at the default threshold, 0.2999 is dropped.
    """
    return np.asarray(confidence, np.float64) >= float(threshold)


def ranking_key(confidence: float, example_id: str) -> tuple[float, str]:
    """Sort key putting the best candidate first under an ascending sort."""
    return (-float(confidence), example_id)


def select_top(candidates: Iterable[tuple], k: int) -> list[tuple]:
    """The `k` best `(id, confidence, ...)` candidates of one class, best first.

    Uses a bounded heap (`heapq.nsmallest`), so memory is O(k) however many
    candidates a class has; `candidates` may be a lazy iterable such as the
    values of a Beam GroupByKey.
    """
    if k <= 0:
        return []
    return heapq.nsmallest(k, candidates, key=lambda candidate: ranking_key(candidate[1], candidate[0]))


def duplication_counts(num_selected: int, k: int) -> list[int]:
    """How many copies of each selected image (in ranking order) fill a class to `k`.

    A full class (num_selected == k) keeps one copy of each. An under-full one
    repeats its images round-robin in confidence order until it holds exactly
    `k`: every image gets k // n copies and the n' = k % n most confident get
    one more. Round-robin rather than "copy the best image k - n times" keeps
    the class as diverse as the kept images allow. An empty class stays empty.
    """
    if num_selected < 0 or k < 0:
        raise ValueError(f"counts must be non-negative, got num_selected={num_selected}, k={k}")
    if num_selected == 0:
        return []
    if num_selected > k:
        raise ValueError(f"selected {num_selected} images for a class of size {k}")
    copies, extra = divmod(k, num_selected)
    return [copies + (1 if rank < extra else 0) for rank in range(num_selected)]


def balance_class(candidates: Iterable[tuple], k: int) -> list[tuple[tuple, int]]:
    """`(candidate, copies)` for one predicted class: top-k, then duplication up to k.

    A candidate is `(id, confidence, ...)`: what follows the confidence
    (the pipeline's record location) travels along untouched.
    """
    selected = select_top(candidates, k)
    return list(zip(selected, duplication_counts(len(selected), k), strict=True))


def auto_images_per_class(num_kept: int, num_classes: int) -> int:
    """K for `--images_per_class=auto`: kept images / classes, rounded half up, >= 1.

    This keeps the pseudo-labeled set about as large as the filtered one while
    equalising the classes: nothing is thrown away on average, big classes
    give up their least confident images and small ones are duplicated. The
    paper's 130,000 for ImageNet is the same idea at JFT scale (about 130M
    kept images over 1000 classes, docs/noisy_student.md#filtering-and-balancing). At least 1, so that a
    tiny corpus still yields records.
    """
    if num_classes <= 0:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    return max(1, math.floor(num_kept / num_classes + 0.5))


def parse_images_per_class(value: str | int) -> int | str:
    """`--images_per_class`: a count >= 0 (0 disables balancing) or 'auto'."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        k = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--images_per_class must be a count >= 0 or '{AUTO}', got {value!r}") from None
    if k < 0:
        raise ValueError(f"--images_per_class must be >= 0 (0 disables balancing), got {k}")
    return k


def filter_and_balance(
    predictions: Sequence[tuple[str, int, float]],
    *,
    confidence_threshold: float,
    images_per_class: int | str,
    num_classes: int,
) -> tuple[dict[str, int], int]:
    """The whole step on an in-memory list of `(id, predicted class, confidence)`.

    Returns `({id: copies}, K)`; K is 0 when balancing is disabled (every kept
    image then has one copy). An id listed twice (identical records) is two
    candidates, and its copies add up. The pipeline computes the same thing with a
    shuffle per class; this version states the semantics in one place and is
    what the tests compare the pipeline against.
    """
    kept = [
        (example_id, label, confidence)
        for example_id, label, confidence in predictions
        if passes_threshold(confidence, confidence_threshold)
    ]
    k = auto_images_per_class(len(kept), num_classes) if images_per_class == AUTO else int(images_per_class)
    if k == 0:
        return dict(collections.Counter(example_id for example_id, _, _ in kept)), 0
    by_class: dict[int, list[tuple[str, float]]] = {}
    for example_id, label, confidence in kept:
        by_class.setdefault(label, []).append((example_id, confidence))
    copies: dict[str, int] = {}
    for candidates in by_class.values():
        for (example_id, _), count in balance_class(candidates, k):
            copies[example_id] = copies.get(example_id, 0) + count  # an id listed twice is selected twice
    return copies, k
