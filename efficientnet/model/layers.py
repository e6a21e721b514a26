"""The few layers EfficientNet needs that Keras does not ship as-is.

They are registered as Keras serialisables so that an exported `model.keras`
loads in safe mode (no Lambda layers, no pickled code).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

# ImageNet channel statistics on the [0, 255] scale (docs/efficientnet.md#input-convention). The
# model normalises inside itself so an exported model takes raw pixels and
# needs no outside preprocessing convention.
IMAGENET_MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def imagenet_normalization(name: str = "normalization", dtype: str | None = None) -> keras.layers.Layer:
    """(x - mean) / std per channel, as one multiply-add with no weights.

    A weightless `Rescaling` keeps parameter counts equal to the published ones
    (keras.applications' `Normalization` layer adds 7 variables).
    """
    return keras.layers.Rescaling(
        scale=[1.0 / std for std in IMAGENET_STDDEV_RGB],
        offset=[-mean / std for mean, std in zip(IMAGENET_MEAN_RGB, IMAGENET_STDDEV_RGB, strict=True)],
        dtype=dtype,
        name=name,
    )


@keras.saving.register_keras_serializable(package="efficientnet")
class StochasticDepth(keras.layers.Layer):
    """Drops a residual branch per sample with probability `rate` in training.

    Kept samples are scaled by 1/(1 - rate) so the expected output is
    unchanged and inference needs no rescaling (Huang et al. 2016; the
    reference's `drop_connect`). Outside training it is the identity.

    Args:
      rate: Probability of dropping the branch of one sample.
      seed: Optional seed for the random mask.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"StochasticDepth rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        survival = 1.0 - self.rate
        noise_shape = (ops.shape(inputs)[0],) + (1,) * (len(inputs.shape) - 1)
        keep = ops.floor(survival + keras.random.uniform(noise_shape, seed=self.seed_generator, dtype=inputs.dtype))
        return inputs * (keep / survival)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return super().get_config() | {"rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="efficientnet")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization computed by TensorFlow's fused kernel.

    Keras 3 normalises with separate moment, subtract, scale and shift ops
    (and as many in the gradient); `FusedBatchNormV3` does the forward pass
    in one kernel and the backward pass in another. With it our B0 trains
    1.55x and predicts 1.20x as fast as keras.applications' on a 2-core CPU,
    against 1.02x and 1.05x without it (benchmarks/train_step.py,
    docs/performance.md#benchmarks). The maths is Keras's: the batch is normalised with its
    biased variance and the moving statistics are updated with it, so
    weights, checkpoints and numbers carry over between the two layers. Any
    case the fused kernel does not cover (masks, renorm, other ranks or axes)
    falls back to Keras's own code.

    Across replicas: by default each replica normalises with the statistics
    of its own slice of the batch, as Keras does. With `synchronized=True`
    (`--sync_batch_norm`) a training batch is normalised with the mean and
    variance of the whole global batch, summed over replicas by Keras's
    synchronized moments (E[x²] − E[x]²), as the reference's cross-replica
    batch norm on TPU does (within groups of 8 or more cores on slices
    larger than 8; docs/training.md#across-replicas). With one replica
    there is nothing to synchronise, and the fused kernel runs unchanged.
    """

    def call(self, inputs, training=None, mask=None):
        use_batch = bool(training) and self.trainable
        if (
            mask is not None
            or self.renorm
            or len(inputs.shape) != 4
            or self.axis not in (-1, 3)
            or (use_batch and self.synchronized and _replicas_in_sync() > 1)
        ):
            return super().call(inputs, training=training, mask=mask)
        gamma = ops.cast(self.gamma, "float32") if self.scale else tf.ones([inputs.shape[-1]])
        beta = ops.cast(self.beta, "float32") if self.center else tf.zeros([inputs.shape[-1]])
        if use_batch:
            empty = tf.constant([], tf.float32)
            outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon, is_training=True
            )
            # The kernel returns the Bessel-corrected variance; Keras averages the biased one.
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
            variance = variance * ((count - 1.0) / count)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            outputs, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=inputs,
                scale=gamma,
                offset=beta,
                mean=ops.cast(self.moving_mean, "float32"),
                variance=ops.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon,
                is_training=False,
            )
        return ops.cast(outputs, self.compute_dtype)


def _replicas_in_sync() -> int:
    context = tf.distribute.get_replica_context()
    return context.num_replicas_in_sync if context is not None else 1
