"""EfficientNet as a Keras functional model, built from `scaling.block_specs`.

The network follows the reference TPU implementation (Tan & Le 2019;
tensorflow/tpu models/official/efficientnet) layer for layer, so parameter
counts equal the published ones (docs/efficientnet.md#parameter-counts) and keras.applications
weights load one-to-one (`efficientnet.model.keras_weights`).
"""

from __future__ import annotations

from typing import Any

import keras

from efficientnet.model import scaling
from efficientnet.model.layers import FusedBatchNormalization, StochasticDepth, imagenet_normalization

# He-normal on fan-out for convolutions and uniform ±1/sqrt(fan_out) for the
# classifier, as in the reference's conv_kernel_initializer and
# dense_kernel_initializer (untruncated normal: the reference samples
# tf.random.normal).
CONV_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}
DENSE_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}
ACTIVATION = "swish"


def build_model(name: str, num_classes: int = 1000, **overrides: Any) -> keras.Model:
    """Builds an EfficientNet by registered name.

    The model takes raw RGB pixels in [0, 255] (any float dtype) of shape
    (batch, resolution, resolution, 3) and returns float32 logits (float32 even
    under a mixed-precision policy, docs/efficientnet.md#input-convention).

    Args:
      name: `efficientnet-b0` … `efficientnet-b8` or `efficientnet-l2`.
      num_classes: Size of the classifier.
      **overrides: Any of `scaling.OVERRIDABLE` (width, depth, resolution,
        dropout_rate, drop_connect_rate, small_images).

    Returns:
      An uncompiled `keras.Model` named after `name`.

    Example:
      >>> tiny = build_model("efficientnet-b0", num_classes=10, width=0.25,
      ...                    depth=0.25, resolution=32, small_images=True)
    """
    return build_from_config(scaling.model_config(name, num_classes, **overrides))


def build_from_config(config: scaling.ModelConfig) -> keras.Model:
    """Builds the network described by a resolved `ModelConfig`."""
    inputs = keras.Input((config.resolution, config.resolution, 3), name="image")
    x = imagenet_normalization()(inputs)
    x = _conv(scaling.stem_filters(config), 3, scaling.stem_strides(config), "stem_conv")(x)
    x = _batch_norm(config, "stem_bn")(x)
    x = keras.layers.Activation(ACTIVATION, name="stem_activation")(x)
    for block in scaling.block_specs(config):
        x = mbconv(x, block, config)
    x = _conv(scaling.head_filters(config), 1, 1, "head_conv")(x)
    x = _batch_norm(config, "head_bn")(x)
    x = keras.layers.Activation(ACTIVATION, name="head_activation")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if config.dropout_rate > 0:
        x = keras.layers.Dropout(config.dropout_rate, name="head_dropout")(x)
    logits = keras.layers.Dense(
        config.num_classes, kernel_initializer=DENSE_INITIALIZER, dtype="float32", name="logits"
    )(x)
    return keras.Model(inputs, logits, name=config.name)


def mbconv(x, block: scaling.BlockSpec, config: scaling.ModelConfig):
    """Mobile inverted bottleneck with squeeze-excite (docs/efficientnet.md#mbconv-block).

    expand 1x1 → depthwise k×k (carries the stride) → squeeze-excite →
    project 1x1 (linear) → stochastic depth + residual when shapes allow.
    """
    name = block.name
    inputs = x
    if block.expand_ratio != 1:
        x = _conv(block.expanded_filters, 1, 1, f"{name}_expand_conv")(x)
        x = _batch_norm(config, f"{name}_expand_bn")(x)
        x = keras.layers.Activation(ACTIVATION, name=f"{name}_expand_activation")(x)
    x = keras.layers.DepthwiseConv2D(
        block.kernel_size,
        strides=block.strides,
        padding="same",
        use_bias=False,
        depthwise_initializer=CONV_INITIALIZER,
        name=f"{name}_dwconv",
    )(x)
    x = _batch_norm(config, f"{name}_dwconv_bn")(x)
    x = keras.layers.Activation(ACTIVATION, name=f"{name}_dwconv_activation")(x)
    x = squeeze_excite(x, block)
    x = _conv(block.output_filters, 1, 1, f"{name}_project_conv")(x)
    x = _batch_norm(config, f"{name}_project_bn")(x)
    if block.has_residual:
        if block.drop_connect_rate > 0:
            x = StochasticDepth(block.drop_connect_rate, name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def squeeze_excite(x, block: scaling.BlockSpec):
    """Channel attention: pool → reduce (swish) → expand (sigmoid) → scale."""
    name = block.name
    squeezed = keras.layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    squeezed = keras.layers.Conv2D(
        block.se_filters,
        1,
        activation=ACTIVATION,
        kernel_initializer=CONV_INITIALIZER,
        name=f"{name}_se_reduce",
    )(squeezed)
    squeezed = keras.layers.Conv2D(
        block.expanded_filters,
        1,
        activation="sigmoid",
        kernel_initializer=CONV_INITIALIZER,
        name=f"{name}_se_expand",
    )(squeezed)
    return keras.layers.Multiply(name=f"{name}_se_excite")([x, squeezed])


def _conv(filters: int, kernel_size: int, strides: int, name: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=CONV_INITIALIZER,
        name=name,
    )


def _batch_norm(config: scaling.ModelConfig, name: str) -> keras.layers.BatchNormalization:
    return FusedBatchNormalization(
        momentum=config.batch_norm_momentum,
        epsilon=config.batch_norm_epsilon,
        synchronized=config.sync_batch_norm,
        name=name,
    )
