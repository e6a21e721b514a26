"""Multiply-add counting for built Keras models.

The EfficientNet paper reports FLOPs as multiply-adds of the convolutions and
the classifier (B0: 0.39 B at 224 px, docs/efficientnet.md#multiply-adds-and-accuracy); element-wise work
(batch norm, activations, squeeze-excite scaling, residual adds) is left out,
as there. Counting from the built layers rather than from the stage table
means the figure describes the model that actually runs, overrides included.
"""

from __future__ import annotations

import math

import keras


def layer_multiply_adds(layer: keras.layers.Layer) -> int:
    """Multiply-adds of one layer for a single example (0 for element-wise)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, height, width, channels = layer.output.shape
        return height * width * channels * math.prod(layer.kernel_size)
    if isinstance(layer, keras.layers.Conv2D):
        _, height, width, filters = layer.output.shape
        input_channels = layer.input.shape[-1] // layer.groups
        return height * width * filters * input_channels * math.prod(layer.kernel_size)
    if isinstance(layer, keras.layers.Dense):
        return layer.input.shape[-1] * layer.units
    return 0


def count_multiply_adds(model: keras.Model) -> int:
    """Multiply-adds for one example through a functional model."""
    return sum(layer_multiply_adds(layer) for layer in model.layers)
