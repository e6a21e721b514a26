"""The Noisy Student loss, returned as named parts (docs/noisy_student.md#the-student-and-its-noise).

loss = CE(labeled, label smoothing) + unlabel_ratio · CE(pseudo-label targets)
       + weight_decay · Σ ||v||² / 2 over non-BatchNorm variables.

Each cross-entropy is a mean over its *global* batch (summed per replica and
divided by the global batch size), so the gradient does not change with the
number of replicas.
"""

from __future__ import annotations

import tensorflow as tf


def pseudo_label_targets(batch: dict[str, tf.Tensor], num_classes: int, label_type: str) -> tf.Tensor:
    """Soft targets (the teacher's probabilities) or one-hot hard labels."""
    if label_type == "soft":
        return tf.cast(batch["probabilities"], tf.float32)
    return tf.one_hot(batch["label"], num_classes)


def noisy_student_loss(
    labeled_logits: tf.Tensor,
    labels: tf.Tensor,
    *,
    num_classes: int,
    global_batch_size: int,
    label_smoothing: float,
    regularized: list[tf.Variable],
    weight_decay: float,
    unlabeled_logits: tf.Tensor | None = None,
    unlabeled_targets: tf.Tensor | None = None,
    global_unlabeled_batch_size: int = 0,
    unlabel_ratio: float = 0.0,
) -> dict[str, tf.Tensor]:
    """Returns {"loss", "labeled", "unlabeled", "l2"} for one replica's batch."""
    targets = tf.one_hot(labels, num_classes)
    if label_smoothing:
        targets = targets * (1.0 - label_smoothing) + label_smoothing / num_classes
    labeled = tf.reduce_sum(soft_cross_entropy(targets, labeled_logits)) / global_batch_size
    l2 = weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in regularized])
    parts = {"labeled": labeled, "l2": l2}
    loss = labeled + l2
    if unlabeled_logits is not None:
        unlabeled = tf.reduce_sum(soft_cross_entropy(unlabeled_targets, unlabeled_logits)) / global_unlabeled_batch_size
        parts["unlabeled"] = unlabeled
        loss += unlabel_ratio * unlabeled
    return {"loss": loss} | parts


def soft_cross_entropy(targets: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-example −Σ targets · log softmax(logits), in float32."""
    return -tf.reduce_sum(targets * tf.nn.log_softmax(tf.cast(logits, tf.float32)), axis=-1)
