"""Strategy and precision selection: one code path for CPU, GPU and TPU.

The training loop only ever talks to a `tf.distribute.Strategy`; which one is
a flag. On this project's 2-core CI only the CPU path runs, but the others
differ only in the object returned here.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import logging

STRATEGIES = ("auto", "tpu", "mirrored", "multiworker", "cpu")
# bfloat16 on TPU as in the reference, float16 with loss scaling on GPUs; the
# logits stay float32 either way (the model's classifier is float32).
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "mixed_float16": "mixed_float16"}


def make_strategy(name: str, tpu: str | None = None) -> tf.distribute.Strategy:
    """Returns the strategy for `--strategy` (`auto` picks TPU > GPUs > default)."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "tpu" or (name == "auto" and tpu):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy("/gpu:0")
    return tf.distribute.get_strategy()


def set_precision(precision: str) -> None:
    """Sets Keras's global dtype policy for models built afterwards."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "mixed_float16" and not tf.config.list_logical_devices("GPU"):
        logging.warning("--precision=mixed_float16 without a GPU is slow on CPU; float32 is faster there")
    keras.config.set_dtype_policy(PRECISIONS[precision])
