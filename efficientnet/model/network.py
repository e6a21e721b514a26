"""EfficientNet as a Keras functional model, built from `scaling.block_specs`.

The network follows the reference TPU implementation (Tan & Le 2019;
tensorflow/tpu models/official/efficientnet) layer for layer, so parameter
counts equal the published ones (docs/efficientnet.md#parameter-counts), and keras.applications
weights (`efficientnet.model.keras_weights`) and the reference's own checkpoints, the released
Noisy Student ones among them (`efficientnet.model.official_checkpoint`), load one-to-one.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

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


def layer_dtypes(policy: str | None = None) -> tuple[str, str]:
    """The dtype policies of (convolutions, every other layer) for a model built under `policy`.

    `policy` defaults to Keras's global one. Under a bfloat16 policy on a CPU
    only the convolutions (stem, expansion, projection, head and squeeze-excite
    1x1s) compute in bfloat16: oneDNN runs them on the AMX/AVX512-BF16 units,
    whereas TensorFlow's bfloat16 depthwise-convolution gradients and the
    sigmoid in swish's gradient run about 4x slower than in float32 there, and the
    other element-wise kernels gain nothing (docs/platform.md#bfloat16-on-cpu).
    Every other layer then computes in float32 (its variables are float32
    under any mixed policy anyway). TPUs and GPUs keep the whole policy, as the
    reference trains in bfloat16 on TPUs.
    """
    policy = keras.dtype_policies.get(policy or keras.config.dtype_policy()).name
    on_cpu = not (tf.config.list_logical_devices("TPU") or tf.config.list_logical_devices("GPU"))
    if policy == "mixed_bfloat16" and on_cpu:
        return policy, "float32"
    return policy, policy


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


def build_from_config(config: scaling.ModelConfig, policy: str | None = None) -> keras.Model:
    """Builds the network described by a resolved `ModelConfig`.

    `policy` is the dtype policy (default: Keras's global one); `layer_dtypes`
    says which layers follow it.
    """
    dtypes = layer_dtypes(policy)
    convolution, other = dtypes
    inputs = keras.Input((config.resolution, config.resolution, 3), name="image")
    x = imagenet_normalization(dtype=other)(inputs)
    x = _conv(scaling.stem_filters(config), 3, scaling.stem_strides(config), "stem_conv", convolution)(x)
    x = _batch_norm(config, "stem_bn", other)(x)
    x = keras.layers.Activation(ACTIVATION, dtype=other, name="stem_activation")(x)
    for block in scaling.block_specs(config):
        x = mbconv(x, block, config, dtypes)
    x = _conv(scaling.head_filters(config), 1, 1, "head_conv", convolution)(x)
    x = _batch_norm(config, "head_bn", other)(x)
    x = keras.layers.Activation(ACTIVATION, dtype=other, name="head_activation")(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=other, name="avg_pool")(x)
    if config.dropout_rate > 0:
        x = keras.layers.Dropout(config.dropout_rate, dtype=other, name="head_dropout")(x)
    logits = keras.layers.Dense(
        config.num_classes, kernel_initializer=DENSE_INITIALIZER, dtype="float32", name="logits"
    )(x)
    return keras.Model(inputs, logits, name=config.name)


def mbconv(x, block: scaling.BlockSpec, config: scaling.ModelConfig, dtypes: tuple[str, str]):
    """Mobile inverted bottleneck with squeeze-excite (docs/efficientnet.md#mbconv-block).

    expand 1x1 → depthwise k×k (carries the stride) → squeeze-excite →
    project 1x1 (linear) → stochastic depth + residual when shapes allow.
    `dtypes` is `layer_dtypes()`: (convolutions, every other layer).
    """
    name = block.name
    convolution, other = dtypes
    inputs = x
    if block.expand_ratio != 1:
        x = _conv(block.expanded_filters, 1, 1, f"{name}_expand_conv", convolution)(x)
        x = _batch_norm(config, f"{name}_expand_bn", other)(x)
        x = keras.layers.Activation(ACTIVATION, dtype=other, name=f"{name}_expand_activation")(x)
    x = keras.layers.DepthwiseConv2D(
        block.kernel_size,
        strides=block.strides,
        padding="same",
        use_bias=False,
        depthwise_initializer=CONV_INITIALIZER,
        dtype=other,
        name=f"{name}_dwconv",
    )(x)
    x = _batch_norm(config, f"{name}_dwconv_bn", other)(x)
    x = keras.layers.Activation(ACTIVATION, dtype=other, name=f"{name}_dwconv_activation")(x)
    x = squeeze_excite(x, block, dtypes)
    x = _conv(block.output_filters, 1, 1, f"{name}_project_conv", convolution)(x)
    x = _batch_norm(config, f"{name}_project_bn", other)(x)
    if block.has_residual:
        if block.drop_connect_rate > 0:
            x = StochasticDepth(block.drop_connect_rate, dtype=other, name=f"{name}_drop")(x)
        x = keras.layers.Add(dtype=other, name=f"{name}_add")([x, inputs])
    return x


def squeeze_excite(x, block: scaling.BlockSpec, dtypes: tuple[str, str]):
    """Channel attention: pool → reduce (swish) → expand (sigmoid) → scale."""
    name = block.name
    convolution, other = dtypes
    squeezed = keras.layers.GlobalAveragePooling2D(keepdims=True, dtype=other, name=f"{name}_se_squeeze")(x)
    squeezed = keras.layers.Conv2D(
        block.se_filters,
        1,
        activation=ACTIVATION,
        kernel_initializer=CONV_INITIALIZER,
        dtype=convolution,
        name=f"{name}_se_reduce",
    )(squeezed)
    squeezed = keras.layers.Conv2D(
        block.expanded_filters,
        1,
        activation="sigmoid",
        kernel_initializer=CONV_INITIALIZER,
        dtype=convolution,
        name=f"{name}_se_expand",
    )(squeezed)
    return keras.layers.Multiply(dtype=other, name=f"{name}_se_excite")([x, squeezed])


def _conv(filters: int, kernel_size: int, strides: int, name: str, dtype: str) -> keras.layers.Conv2D:
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=CONV_INITIALIZER,
        dtype=dtype,
        name=name,
    )


def _batch_norm(config: scaling.ModelConfig, name: str, dtype: str) -> keras.layers.BatchNormalization:
    return FusedBatchNormalization(
        momentum=config.batch_norm_momentum,
        epsilon=config.batch_norm_epsilon,
        synchronized=config.sync_batch_norm,
        dtype=dtype,
        name=name,
    )
