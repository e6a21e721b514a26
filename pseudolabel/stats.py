"""What a labeling run reports in `stats.json`, accumulated as Beam combines.

Counts per predicted class before filtering, after filtering and after
balancing; a histogram of top-1 confidence; how many images were dropped
(below the threshold, beyond a class's K) and how many copies balancing
added; dead letters; and, for the digits unlabeled split only, the accuracy of
the pseudo-labels against the withheld true labels (as docs/noisy_student.md#the-digits-protocol
describes). The true labels are a measurement, never
an input: they are looked up here and nowhere else.

Accumulators are plain dicts of ints so that workers can merge them; the
CombineFns only wrap the pure `add_*`/`merge` functions below.
"""

from __future__ import annotations

from typing import Any

import apache_beam as beam

NUM_CONFIDENCE_BINS = 10


def confidence_bin(confidence: float, num_bins: int = NUM_CONFIDENCE_BINS) -> int:
    """Bin of [0, 1] in `num_bins` equal bins; 1.0 falls in the last one."""
    return min(max(int(float(confidence) * num_bins), 0), num_bins - 1)


def bin_edges(num_bins: int = NUM_CONFIDENCE_BINS) -> list[float]:
    return [round(i / num_bins, 6) for i in range(num_bins + 1)]


def new_prediction_stats(num_classes: int) -> dict[str, Any]:
    return {
        "counts": [0] * num_classes,
        "histogram": [0] * NUM_CONFIDENCE_BINS,
        "num_correct": 0,
        "num_with_truth": 0,
    }


def add_prediction(
    stats: dict[str, Any], example_id: str, label: int, confidence: float, truth: dict[str, int] | None
) -> dict[str, Any]:
    stats["counts"][label] += 1
    stats["histogram"][confidence_bin(confidence)] += 1
    if truth is not None and example_id in truth:
        stats["num_with_truth"] += 1
        stats["num_correct"] += int(truth[example_id] == label)
    return stats


def merge(accumulators) -> dict[str, Any]:
    """Element-wise sum of dicts of ints and lists of ints."""
    accumulators = list(accumulators)
    merged = accumulators[0]
    for other in accumulators[1:]:
        for key, value in other.items():
            if isinstance(value, list):
                merged[key] = [a + b for a, b in zip(merged[key], value, strict=True)]
            else:
                merged[key] += value
    return merged


def accuracy(stats: dict[str, Any]) -> float | None:
    return stats["num_correct"] / stats["num_with_truth"] if stats["num_with_truth"] else None


class PredictionStatsFn(beam.CombineFn):
    """Combines `(id, label, confidence)` into per-class counts, histogram and accuracy."""

    def __init__(self, num_classes: int, truth: dict[str, int] | None):
        self._num_classes, self._truth = num_classes, truth

    def create_accumulator(self):
        return new_prediction_stats(self._num_classes)

    def add_input(self, accumulator, element):
        example_id, label, confidence = element
        return add_prediction(accumulator, example_id, label, confidence, self._truth)

    def merge_accumulators(self, accumulators):
        return merge(accumulators)

    def extract_output(self, accumulator):
        return accumulator


class BalancedStatsFn(beam.CombineFn):
    """Combines `(id, (label, copies))` selections into records per class."""

    def __init__(self, num_classes: int):
        self._num_classes = num_classes

    def create_accumulator(self):
        return {"counts": [0] * self._num_classes, "num_selected": 0}

    def add_input(self, accumulator, element):
        _, (label, copies) = element
        accumulator["counts"][label] += copies
        accumulator["num_selected"] += 1
        return accumulator

    def merge_accumulators(self, accumulators):
        return merge(accumulators)

    def extract_output(self, accumulator):
        return accumulator


def assemble(
    *,
    settings: dict[str, Any],
    before: dict[str, Any],
    after_filtering: dict[str, Any],
    balanced: dict[str, Any] | None,
    images_per_class: int,
    num_failures: int,
) -> dict[str, Any]:
    """The `stats.json` document. `balanced` is None when balancing is off."""
    num_images = sum(before["counts"])
    num_kept = sum(after_filtering["counts"])
    if balanced is None:
        after_balancing, num_selected = list(after_filtering["counts"]), num_kept
    else:
        after_balancing, num_selected = balanced["counts"], balanced["num_selected"]
    num_records = sum(after_balancing)
    document = dict(settings) | {
        "images_per_class": images_per_class,
        "num_images": num_images,
        "num_failures": num_failures,
        "num_kept": num_kept,
        "num_dropped_below_threshold": num_images - num_kept,
        "num_dropped_by_balancing": num_kept - num_selected,
        "num_duplicated": num_records - num_selected,
        "num_records": num_records,
        "counts_per_class": {
            "before_filtering": before["counts"],
            "after_filtering": after_filtering["counts"],
            "after_balancing": after_balancing,
        },
        "empty_classes": [label for label, count in enumerate(after_filtering["counts"]) if count == 0],
        "confidence_histogram": {"bin_edges": bin_edges(), "counts": before["histogram"]},
    }
    if before["num_with_truth"]:
        document["pseudo_label_accuracy"] = {
            "before_filtering": accuracy(before),
            "after_filtering": accuracy(after_filtering),
            "num_images_before_filtering": before["num_with_truth"],
            "num_images_after_filtering": after_filtering["num_with_truth"],
        }
    return document
