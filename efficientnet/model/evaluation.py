"""Accuracy of a model or an export on a dataset split.

Evaluation sees `preprocessing.eval_image` at the model's own resolution
(from the export's model.json), through the same `Predictor` the labeling job
and the robustness benchmarks use.
"""

from __future__ import annotations

import numpy as np

from efficientnet.data import input_pipeline
from efficientnet.data.datasets import open_source
from efficientnet.data.source import EVAL, Source, for_python_loop
from efficientnet.model.inference import Predictor


def evaluate(predictor: Predictor, source: Source, split: str | None, batch_size: int) -> dict[str, float]:
    """Top-1 / top-5 accuracy of `predictor` over a split."""
    correct1 = correct5 = count = 0
    batches = input_pipeline.eval_dataset(source, split, batch_size=batch_size, resolution=predictor.resolution)
    for batch in for_python_loop(batches):
        logits = predictor.logits(batch["image"], batch_size)
        labels = batch["label"]
        top5 = np.argsort(-logits, axis=-1, kind="stable")[:, : min(5, logits.shape[-1])]
        correct1 += int(np.sum(top5[:, 0] == labels))
        correct5 += int(np.sum(np.any(top5 == labels[:, None], axis=1)))
        count += len(labels)
    if count == 0:
        raise ValueError(f"evaluation split {split!r} of {source.spec!r} is empty")
    return {"top1": correct1 / count, "top5": correct5 / count, "num_examples": count}


def evaluate_export(path: str, dataset: str, split: str | None, *, data_dir=None, batch_size: int = 256) -> dict:
    """Top-1/top-5 of an export on `dataset`/`split` (None: the source's evaluation default).

    Refuses unlabeled data, a class-count mismatch and an empty read before loading the model.
    """
    source = open_source(dataset, data_dir=data_dir)
    split = source.resolve_split(split, EVAL)
    if not source.labeled:
        raise ValueError(f"{dataset!r} has no labels to evaluate against (no class subfolders)")
    source.require_images(split)
    predictor = Predictor.from_export(path)
    if source.num_classes not in (None, predictor.num_classes):
        raise ValueError(f"{path} predicts {predictor.num_classes} classes but {dataset!r} has {source.num_classes}")
    return evaluate(predictor, source, split, batch_size)
