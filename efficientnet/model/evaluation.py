"""Accuracy of a model or an export on a dataset split.

Evaluation preprocessing is `preprocessing.eval_image` at the model's own
resolution (from the export's model.json), the same view the labeling job uses.
"""

from __future__ import annotations

import tensorflow as tf

from efficientnet.data import input_pipeline
from efficientnet.data.datasets import Source, open_source
from efficientnet.model import export


def evaluate(model, source: Source, split: str | None, resolution: int, batch_size: int) -> dict[str, float]:
    """Top-1 / top-5 accuracy of `model` (as it is, call on EMA weights) over a split."""
    predict = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    correct1 = correct5 = count = 0
    for batch in input_pipeline.eval_dataset(source, split, batch_size=batch_size, resolution=resolution):
        logits = predict(batch["image"])
        labels = batch["label"]
        top5 = tf.math.top_k(logits, k=min(5, logits.shape[-1])).indices
        correct1 += int(tf.reduce_sum(tf.cast(tf.equal(top5[:, 0], tf.cast(labels, tf.int32)), tf.int32)))
        correct5 += int(
            tf.reduce_sum(tf.cast(tf.reduce_any(tf.equal(top5, tf.cast(labels, tf.int32)[:, None]), axis=1), tf.int32))
        )
        count += int(labels.shape[0])
    if count == 0:
        raise ValueError(f"evaluation split {split!r} of {source.spec!r} is empty")
    return {"top1": correct1 / count, "top5": correct5 / count, "num_examples": count}


def evaluate_export(path: str, dataset: str, split: str | None, *, data_dir=None, batch_size: int = 256) -> dict:
    """Top-1/top-5 of an export on `dataset`/`split`, refusing a class-count mismatch."""
    model, metadata = export.load_export(path)
    source = open_source(dataset, data_dir=data_dir)
    if source.num_classes not in (None, metadata["num_classes"]):
        raise ValueError(f"{path} predicts {metadata['num_classes']} classes but {dataset!r} has {source.num_classes}")
    return evaluate(model, source, split, metadata["input"]["resolution"], batch_size)
