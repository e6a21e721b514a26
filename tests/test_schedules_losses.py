"""Pure math of the training recipe, against hand-computed values (docs/training.md, docs/noisy_student.md)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from efficientnet.train import losses
from efficientnet.train.schedules import LearningRateSchedule, ScheduleConfig, ema_decay, learning_rate

REFERENCE = ScheduleConfig(base_learning_rate=0.016, batch_size=4096, steps_per_epoch=100, total_steps=35000)


def test_reference_learning_rate_schedule():
    assert REFERENCE.peak_learning_rate == pytest.approx(0.256)
    assert learning_rate(0, REFERENCE) == 0.0
    assert learning_rate(250, REFERENCE) == pytest.approx(0.128)  # half-way through the 5-epoch warm-up
    # After warm-up: ×0.97 per 2.4 epochs, counted from step 0, staircase.
    assert learning_rate(500, REFERENCE) == pytest.approx(0.256 * 0.97**2)  # 500 // 240 = 2
    assert learning_rate(719, REFERENCE) == pytest.approx(0.256 * 0.97**2)
    assert learning_rate(720, REFERENCE) == pytest.approx(0.256 * 0.97**3)


def test_cosine_schedule_ends_at_zero():
    cosine = ScheduleConfig(batch_size=256, steps_per_epoch=10, total_steps=150, warmup_epochs=5, schedule="cosine")
    assert learning_rate(50, cosine) == pytest.approx(0.016)
    assert learning_rate(100, cosine) == pytest.approx(0.008)
    assert learning_rate(150, cosine) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_keras_schedule_mirrors_the_pure_function(schedule):
    config = ScheduleConfig(batch_size=512, steps_per_epoch=7.5, total_steps=300, warmup_epochs=2, schedule=schedule)
    keras_schedule = LearningRateSchedule(config)
    for step in [0, 1, 14, 15, 16, 17, 40, 120, 299, 300]:
        assert float(keras_schedule(step)) == pytest.approx(learning_rate(step, config), rel=1e-5, abs=1e-9)
    assert LearningRateSchedule.from_config(keras_schedule.get_config()).config == config


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'linear'"):
        LearningRateSchedule(ScheduleConfig(schedule="linear"))


def test_ema_decay_warms_up():
    assert float(ema_decay(0, 0.9999)) == pytest.approx(0.1)
    assert float(ema_decay(90, 0.9999)) == pytest.approx(91 / 100)
    assert float(ema_decay(10**7, 0.9999)) == pytest.approx(0.9999)


def test_labeled_loss_with_label_smoothing_by_hand():
    logits = tf.constant([[2.0, 0.0]])
    log_p = np.log(np.exp([2.0, 0.0]) / np.exp([2.0, 0.0]).sum())
    # Smoothing 0.1 over 2 classes: targets (0.95, 0.05) for label 0.
    expected = -(0.95 * log_p[0] + 0.05 * log_p[1])
    weight = tf.Variable([[3.0, 4.0]])  # l2_loss = (9 + 16) / 2 = 12.5
    parts = losses.noisy_student_loss(
        logits,
        tf.constant([0]),
        num_classes=2,
        global_batch_size=1,
        label_smoothing=0.1,
        regularized=[weight],
        weight_decay=0.01,
    )
    assert set(parts) == {"loss", "labeled", "l2"}
    assert float(parts["labeled"]) == pytest.approx(expected, rel=1e-6)
    assert float(parts["l2"]) == pytest.approx(0.125)
    assert float(parts["loss"]) == pytest.approx(expected + 0.125, rel=1e-6)


def test_unlabeled_loss_is_weighted_soft_cross_entropy_over_the_global_batch():
    labeled_logits = tf.constant([[0.0, 0.0]])  # CE = log 2 for either label
    unlabeled_logits = tf.constant([[0.0, math.log(3.0)], [0.0, 0.0]])  # p = (1/4, 3/4) and (1/2, 1/2)
    targets = tf.constant([[0.5, 0.5], [1.0, 0.0]])
    parts = losses.noisy_student_loss(
        labeled_logits,
        tf.constant([1]),
        num_classes=2,
        global_batch_size=2,  # this replica holds half of the global batch
        label_smoothing=0.0,
        regularized=[tf.Variable([0.0])],
        weight_decay=1e-5,
        unlabeled_logits=unlabeled_logits,
        unlabeled_targets=targets,
        global_unlabeled_batch_size=4,
        unlabel_ratio=2.0,
    )
    first = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    second = -math.log(0.5)
    assert float(parts["labeled"]) == pytest.approx(math.log(2) / 2)
    assert float(parts["unlabeled"]) == pytest.approx((first + second) / 4)
    assert float(parts["loss"]) == pytest.approx(math.log(2) / 2 + 2 * (first + second) / 4)


def test_pseudo_label_targets():
    batch = {"probabilities": tf.constant([[0.2, 0.8]]), "label": tf.constant([1], tf.int64)}
    np.testing.assert_allclose(losses.pseudo_label_targets(batch, 2, "soft"), [[0.2, 0.8]])
    np.testing.assert_allclose(losses.pseudo_label_targets(batch, 2, "hard"), [[0.0, 1.0]])
