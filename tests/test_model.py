"""The built network: published parameter counts and the behaviour of its parts."""

import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from efficientnet import build_model, count_multiply_adds
from efficientnet.model.layers import IMAGENET_MEAN_RGB, IMAGENET_STDDEV_RGB, FusedBatchNormalization, StochasticDepth

# docs/efficientnet.md: (trainable, total with BN moving statistics), 1000 classes.
PUBLISHED_PARAMETERS = {
    "efficientnet-b0": (5_288_548, 5_330_564),
    "efficientnet-b1": (7_794_184, 7_856_232),
    "efficientnet-b2": (9_109_994, 9_177_562),
    "efficientnet-b3": (12_233_232, 12_320_528),
    "efficientnet-b4": (19_341_616, 19_466_816),
    "efficientnet-b5": (30_389_784, 30_562_520),
    "efficientnet-b6": (43_040_704, 43_265_136),
    "efficientnet-b7": (66_347_960, 66_658_680),
}

TINY = dict(num_classes=10, width=0.25, depth=0.25, resolution=32, small_images=True)


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@contextlib.contextmanager
def shapes_only():
    """Models built inside get every layer and variable, with its shape, but no values.

    Parameter and multiply-add counts read shapes only, and drawing the initial
    values is most of a large build (L2: ~4 s instead of ~20 s). Keras queues
    the uninitialised variables and would initialise them all at the next
    symbolic call anywhere in the session, so the queue is dropped on the way out.
    """
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        keras.backend.clear_session(free_memory=False)


# The three largest take 1.5-2 s each to build, even without weights; B0-B4 run in the quick suite.
LARGE = {"efficientnet-b5", "efficientnet-b6", "efficientnet-b7"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=[pytest.mark.slow] if name in LARGE else []) for name in sorted(PUBLISHED_PARAMETERS)],
)
def test_parameter_counts_match_published(name):
    with shapes_only():
        model = build_model(name)
        assert (trainable_count(model), model.count_params()) == PUBLISHED_PARAMETERS[name]


@pytest.mark.slow
def test_l2_trainable_parameters_match_published():
    with shapes_only():
        model = build_model("efficientnet-l2")
        assert trainable_count(model) == 480_309_308
        assert model.count_params() == 481_399_996


def test_b0_multiply_adds_within_two_percent_of_paper():
    # Tan & Le 2019, Table 2: 0.39 B FLOPs (multiply-adds) at 224 px.
    with shapes_only():
        assert count_multiply_adds(build_model("efficientnet-b0")) == pytest.approx(0.39e9, rel=0.02)


def test_tiny_model_forward_and_gradients_reach_every_variable():
    keras.utils.set_random_seed(0)
    model = build_model("efficientnet-b0", **TINY)
    images = tf.random.uniform((4, 32, 32, 3), 0, 255, seed=1)
    logits = model(images, training=False)
    assert logits.shape == (4, 10) and logits.dtype == tf.float32
    assert np.all(np.isfinite(logits))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(tf.range(4) % 10, model(images, training=True), True)
        )
    gradients = tape.gradient(loss, model.trainable_variables)
    for variable, gradient in zip(model.trainable_variables, gradients, strict=True):
        assert gradient is not None, variable.path
        assert float(tf.reduce_max(tf.abs(gradient))) > 0, variable.path


def test_inference_is_deterministic_and_training_is_noisy():
    keras.utils.set_random_seed(0)
    model = build_model("efficientnet-b0", **(TINY | {"dropout_rate": 0.5, "drop_connect_rate": 0.5}))
    images = tf.random.uniform((8, 32, 32, 3), 0, 255, seed=2)
    np.testing.assert_array_equal(model(images, training=False), model(images, training=False))
    assert not np.allclose(model(images, training=True), model(images, training=True))


def test_stochastic_depth_layers_have_linear_rates():
    with shapes_only():
        model = build_model("efficientnet-b0")
    rates = {layer.name: layer.rate for layer in model.layers if isinstance(layer, StochasticDepth)}
    # Residual blocks only; block i of 16 has rate 0.2 * i / 16.
    assert rates["block2b_drop"] == pytest.approx(0.2 * 2 / 16)
    assert rates["block6d_drop"] == pytest.approx(0.2 * 14 / 16)
    assert len(rates) == 9


def test_stochastic_depth_drops_whole_samples_and_rescales():
    layer = StochasticDepth(0.25, seed=3)
    ones = tf.ones((2000, 2, 2, 1))
    out = tf.function(lambda x: layer(x, training=True))(ones).numpy()
    per_sample = out.reshape(2000, -1)
    # Every sample is either dropped entirely or kept and scaled by 1/0.75.
    assert set(np.unique(per_sample)) <= {0.0, np.float32(1 / 0.75)}
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))
    kept = float(np.mean(per_sample[:, 0] > 0))
    assert 0.72 < kept < 0.78  # 0.75 ± 4 binomial standard deviations
    np.testing.assert_array_equal(layer(ones, training=False), ones)
    with pytest.raises(ValueError, match="rate must be in"):
        StochasticDepth(1.0)


def test_model_normalises_raw_pixels_with_imagenet_statistics():
    model = build_model("efficientnet-b0", **TINY)
    normalization = model.get_layer("normalization")
    mean = np.array(IMAGENET_MEAN_RGB, "float32").reshape(1, 1, 1, 3)
    std = np.array(IMAGENET_STDDEV_RGB, "float32").reshape(1, 1, 1, 3)
    np.testing.assert_allclose(normalization(mean), 0.0, atol=1e-5)
    np.testing.assert_allclose(normalization(mean + std), 1.0, atol=1e-5)
    assert normalization.weights == []


def test_initialisers_follow_the_reference():
    keras.utils.set_random_seed(0)
    model = build_model("efficientnet-b0")
    # head_conv is 1x1, 320 -> 1280: normal with std sqrt(2 / fan_out) = sqrt(2 / 1280).
    head = model.get_layer("head_conv").kernel.numpy()
    assert head.std() == pytest.approx(np.sqrt(2 / 1280), rel=0.02)
    # Classifier: uniform in ±1/sqrt(num_classes).
    logits = model.get_layer("logits").kernel.numpy()
    assert np.abs(logits).max() <= 1 / np.sqrt(1000)
    assert np.abs(logits).max() > 0.99 / np.sqrt(1000)


@pytest.mark.parametrize("dtype", ["float32", "mixed_float16"])
def test_fused_batch_norm_computes_what_keras_batch_norm_computes(dtype):
    images = tf.random.normal((4, 6, 5, 8), 3.0, 2.0, seed=1)
    weights = tf.random.normal((4, 6, 5, 8), seed=2)  # a loss with non-trivial gradients everywhere
    layers = []
    for layer_class in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = layer_class(momentum=0.9, epsilon=1e-3, dtype=dtype)
        layer.build(images.shape)
        layer.set_weights([np.linspace(0.5, 2.0, 8), np.linspace(-1.0, 1.0, 8), np.full(8, 0.5), np.full(8, 2.0)])
        layers.append(layer)
    results = []
    for layer in layers:
        with tf.GradientTape() as tape:
            tape.watch(images)
            training = layer(images, training=True)
            loss = tf.reduce_sum(tf.cast(training, tf.float32) * weights)
        gradients = tape.gradient(loss, [images, *layer.trainable_weights])
        results.append([training, *gradients, *layer.non_trainable_weights, layer(images, training=False)])
    tolerance = 1e-4 if dtype == "float32" else 2e-2
    for keras_value, fused_value in zip(*results, strict=True):
        np.testing.assert_allclose(
            np.asarray(fused_value, np.float32), np.asarray(keras_value, np.float32), rtol=tolerance, atol=tolerance
        )


def test_save_and_load_in_safe_mode(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model("efficientnet-b0", **TINY)
    images = tf.random.uniform((2, 32, 32, 3), 0, 255, seed=4)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(images, training=False), model(images, training=False), atol=1e-6)
    assert loaded.name == "efficientnet-b0"


def test_mixed_precision_keeps_float32_logits():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model("efficientnet-b0", **TINY)
        assert model.get_layer("stem_conv").compute_dtype == "float16"
        assert model(tf.zeros((1, 32, 32, 3))).dtype == tf.float32
    finally:
        keras.config.set_dtype_policy(previous)


def test_other_resolutions_build_and_run():
    model = build_model("efficientnet-b0", num_classes=3, width=0.25, depth=0.25, resolution=57)
    assert model(tf.zeros((1, 57, 57, 3))).shape == (1, 3)
