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

from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import numpy as np

from pseudolabel import balance

NUM_CONFIDENCE_BINS = 10


def confidence_bins(confidences, num_bins: int = NUM_CONFIDENCE_BINS) -> np.ndarray:
    """Bin of each confidence in [0, 1] cut in `num_bins` equal bins; 1.0 falls in the last one."""
    scaled = np.asarray(confidences, np.float64) * num_bins
    return np.clip(np.trunc(scaled), 0, num_bins - 1).astype(np.int64)


def bin_edges(num_bins: int = NUM_CONFIDENCE_BINS) -> list[float]:
    return [round(i / num_bins, 6) for i in range(num_bins + 1)]


def new_prediction_stats(num_classes: int) -> dict[str, Any]:
    return {
        "counts": [0] * num_classes,
        "histogram": [0] * NUM_CONFIDENCE_BINS,
        "num_correct": 0,
        "num_with_truth": 0,
    }


def add_predictions(
    stats: dict[str, Any],
    example_ids: Sequence[str],
    labels: np.ndarray,
    confidences: np.ndarray,
    truth: dict[str, int] | None,
) -> dict[str, Any]:
    """Adds a batch of predictions (ids, predicted classes, top-1 confidences) to `stats`."""
    counts = np.bincount(labels, minlength=len(stats["counts"]))
    stats["counts"] = [total + int(count) for total, count in zip(stats["counts"], counts, strict=True)]
    histogram = np.bincount(confidence_bins(confidences), minlength=NUM_CONFIDENCE_BINS)
    stats["histogram"] = [total + int(count) for total, count in zip(stats["histogram"], histogram, strict=True)]
    if truth is not None:
        for example_id, label in zip(example_ids, labels, strict=True):
            if example_id in truth:
                stats["num_with_truth"] += 1
                stats["num_correct"] += int(truth[example_id] == label)
    return stats


def merge(accumulators) -> dict[str, Any]:
    """Element-wise sum of dicts of ints, lists of ints and such dicts."""
    accumulators = list(accumulators)
    merged = accumulators[0]
    for other in accumulators[1:]:
        for key, value in other.items():
            if isinstance(value, dict):
                merged[key] = merge([merged[key], value])
            elif isinstance(value, list):
                merged[key] = [a + b for a, b in zip(merged[key], value, strict=True)]
            else:
                merged[key] += value
    return merged


def accuracy(stats: dict[str, Any]) -> float | None:
    return stats["num_correct"] / stats["num_with_truth"] if stats["num_with_truth"] else None


class LabelingStatsFn(beam.CombineFn):
    """Combines labeled batches (`inference.LabeledBatch`) into the predictions'
    stats before and after the confidence filter, and the number of images
    that did not decode: `{"before", "after_filtering", "num_failures"}`.

    One combine for the three, over whole batches: each is a shuffle and a few
    stages of its own on a runner, and the per-image work is numpy's.
    """

    def __init__(self, num_classes: int, truth: dict[str, int] | None, threshold: float):
        self._num_classes, self._truth, self._threshold = num_classes, truth, threshold

    def create_accumulator(self):
        return {
            "before": new_prediction_stats(self._num_classes),
            "after_filtering": new_prediction_stats(self._num_classes),
            "num_failures": 0,
        }

    def add_input(self, accumulator, batch):
        labels, confidences = batch.top1()
        add_predictions(accumulator["before"], batch.ids, labels, confidences, self._truth)
        kept = balance.passes_threshold(confidences, self._threshold)
        ids = [example_id for example_id, keep in zip(batch.ids, kept, strict=True) if keep]
        add_predictions(accumulator["after_filtering"], ids, labels[kept], confidences[kept], self._truth)
        accumulator["num_failures"] += batch.num_failed
        return accumulator

    def merge_accumulators(self, accumulators):
        return merge(accumulators)

    def extract_output(self, accumulator):
        return accumulator


def balanced_counts(per_class: Sequence[tuple[int, int, int]], num_classes: int) -> dict[str, Any]:
    """Records per class and images selected, from each balanced class's
    `(label, images selected, records written)`; classes left empty are absent."""
    counts = [0] * num_classes
    for label, _, num_records in per_class:
        counts[label] += num_records
    return {"counts": counts, "num_selected": sum(num_selected for _, num_selected, _ in per_class)}


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
