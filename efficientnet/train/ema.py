"""Exponential moving average of the weights and BN statistics (docs/training.md#ema).

The average, not the live weights, is what a run evaluates and exports, and
what a teacher labels with.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import tensorflow as tf

from efficientnet.train.schedules import ema_decay


class EMA:
    """Averages of `variables`, updated after every step with a warmed-up decay."""

    def __init__(self, variables: list[tf.Variable], decay: float):
        self.variables = variables
        self.decay = decay
        self.averages = [
            tf.Variable(v, trainable=False, name=f"ema_{i}", synchronization=tf.VariableSynchronization.ON_WRITE)
            for i, v in enumerate(variables)
        ]

    @tf.function(autograph=False)  # a Python loop over variables: nothing to convert
    def update(self, step):
        decay = ema_decay(step, self.decay)
        for average, variable in zip(self.averages, self.variables, strict=True):
            average.assign(average * decay + tf.cast(variable, average.dtype) * (1.0 - decay))

    def swap(self) -> None:
        """Exchanges live and averaged values (call twice to undo)."""
        for average, variable in zip(self.averages, self.variables, strict=True):
            live = variable.numpy()
            variable.assign(average.numpy())
            average.assign(live)

    def reset(self) -> None:
        """Starts the averages at the current weights (after initialising from other weights)."""
        for average, variable in zip(self.averages, self.variables, strict=True):
            average.assign(variable)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its live ones after."""
        self.swap()
        try:
            yield
        finally:
            self.swap()
