"""Learning-rate schedules and EMA decay as pure functions (docs/training.md#optimiser-and-learning-rate).

The reference recipe scales the learning rate linearly with the batch
(0.016 per 256 images, so 0.256 at batch 4096), warms up linearly for 5 epochs
and then decays ×0.97 every 2.4 epochs in steps (staircase). Cosine decay to 0
over the run is offered for short runs, where a per-epoch staircase tuned for
350 epochs barely moves.
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops

SCHEDULES = ("exponential", "cosine")


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    base_learning_rate: float = 0.016  # per 256 images
    batch_size: int = 256
    steps_per_epoch: float = 1.0
    total_steps: int = 1
    warmup_epochs: float = 5.0
    decay_epochs: float = 2.4
    decay_rate: float = 0.97
    schedule: str = "exponential"

    @property
    def peak_learning_rate(self) -> float:
        return self.base_learning_rate * self.batch_size / 256


def learning_rate(step: float, config: ScheduleConfig) -> float:
    """The learning rate at `step` (plain Python; the Keras schedule mirrors it)."""
    warmup_steps = config.warmup_epochs * config.steps_per_epoch
    if step < warmup_steps:
        return config.peak_learning_rate * step / warmup_steps
    if config.schedule == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1.0, config.total_steps - warmup_steps))
        return config.peak_learning_rate * 0.5 * (1 + math.cos(math.pi * progress))
    decays = math.floor(step / (config.decay_epochs * config.steps_per_epoch))
    return config.peak_learning_rate * config.decay_rate**decays


@keras.saving.register_keras_serializable(package="efficientnet")
class LearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rate` as a graph-friendly Keras schedule.

    Like the reference, the exponential decay counts from step 0 (not from the
    end of warm-up), so warm-up ends on the already-decayed curve.
    """

    def __init__(self, config: ScheduleConfig):
        if config.schedule not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {config.schedule!r}; valid: {list(SCHEDULES)}")
        self.config = config

    def __call__(self, step):
        config = self.config
        step = ops.cast(step, "float32")
        warmup_steps = config.warmup_epochs * config.steps_per_epoch
        warmup = config.peak_learning_rate * step / max(warmup_steps, 1e-9)
        if config.schedule == "cosine":
            progress = ops.minimum(1.0, (step - warmup_steps) / max(1.0, config.total_steps - warmup_steps))
            decayed = config.peak_learning_rate * 0.5 * (1 + ops.cos(math.pi * progress))
        else:
            decays = ops.floor(step / (config.decay_epochs * config.steps_per_epoch))
            decayed = config.peak_learning_rate * ops.power(config.decay_rate, decays)
        return ops.where(step < warmup_steps, warmup, decayed)

    def get_config(self):
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, values):
        return cls(ScheduleConfig(**values))


def ema_decay(step, decay: float):
    """EMA decay with the reference's warm-up: min(decay, (1 + step) / (10 + step)).

    Early on the average follows the weights closely, so short runs (a few
    hundred steps on digits) still get a useful average instead of one
    dominated by the random initialisation. Accepts Python numbers or tensors.
    """
    step = ops.cast(step, "float32")
    return ops.minimum(decay, (1.0 + step) / (10.0 + step))
