"""bfloat16 on CPU (docs/platform.md#bfloat16-on-cpu): which layers compute in it, a tiny run, its export."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_runs import TINY, tiny_config

from efficientnet.data.datasets import open_source
from efficientnet.model import export, scaling
from efficientnet.model.evaluation import evaluate
from efficientnet.model.inference import Predictor
from efficientnet.model.network import build_from_config
from efficientnet.train.loop import train

TINY_CONFIG = scaling.model_config("efficientnet-b0", 10, **TINY)


@pytest.fixture
def keep_global_policy():
    """`train` sets Keras's global policy from --precision; later tests build under the previous one."""
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)


def _is_convolution(layer) -> bool:
    return type(layer) is keras.layers.Conv2D  # DepthwiseConv2D is a subclass, and stays float32


@pytest.mark.skipif(bool(tf.config.list_logical_devices("GPU")), reason="GPUs keep the whole bfloat16 policy")
def test_on_cpu_only_the_convolutions_compute_in_bfloat16():
    model = build_from_config(TINY_CONFIG, policy="mixed_bfloat16")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    convolutions = [layer for layer in layers if _is_convolution(layer)]
    # stem, head, and per block an expansion (not in block 1), two squeeze-excite and a projection.
    blocks = len(scaling.block_specs(TINY_CONFIG))
    assert len(convolutions) == 2 + 4 * blocks - 1
    assert {layer.compute_dtype for layer in convolutions} == {"bfloat16"}
    assert {layer.compute_dtype for layer in layers if not _is_convolution(layer)} == {"float32"}
    assert {variable.dtype for variable in model.variables if "seed_generator" not in variable.path} == {"float32"}
    assert model(tf.zeros((1, 32, 32, 3))).dtype == tf.float32


def test_bfloat16_model_computes_the_float32_function_to_bfloat16_precision():
    keras.utils.set_random_seed(0)
    float32 = build_from_config(TINY_CONFIG, policy="float32")
    bfloat16 = build_from_config(TINY_CONFIG, policy="mixed_bfloat16")
    bfloat16.set_weights(float32.get_weights())
    images = tf.random.uniform((8, 32, 32, 3), 0, 255, seed=5)
    expected = float32(images, training=False).numpy()
    logits = bfloat16(images, training=False).numpy()
    # bfloat16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.002) at each of the
    # 2 + 4·7 convolutions' inputs; the logits stay within a few percent of their spread.
    assert np.max(np.abs(logits - expected)) < 0.05 * np.ptp(expected)
    assert not np.array_equal(logits, expected)  # the convolutions did run in bfloat16


@pytest.mark.slow  # a real training run, 5 steps
def test_tiny_bfloat16_run_exports_a_float32_model_that_reproduces_its_metrics(tmp_path, keep_global_policy):
    config = tiny_config(tmp_path / "run", precision="bfloat16", train_steps=5, checkpoint_every_steps=5)
    metrics = train(config)
    assert metrics["num_examples"] == 500
    model, metadata = export.load_export(str(tmp_path / "run"))
    assert metadata["metrics"] == metrics
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bfloat16"
    # Loaded while the run's policy is still Keras's global one: the export's layers keep their float32.
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert {layer.compute_dtype for layer in layers} == {"float32"}
    assert model(tf.zeros((1, 32, 32, 3))).dtype == tf.float32
    assert evaluate(Predictor(model, 32), open_source("digits"), "test", 128) == metrics
