"""keras.applications weights carried into our model give the same logits.

Offline, so the Keras models are built with `weights=None`. A fresh network's
logits are ~1e-5, which would make any tolerance meaningless, so BatchNorm
parameters and statistics are randomised and the classifier is scaled until
logits reach the size of a trained ImageNet model's (max |logit| ~10). Their
Normalization layer is set to ImageNet statistics as `weights="imagenet"` does.
"""

import keras
import numpy as np
import pytest

from efficientnet import build_model, load_keras_applications_weights

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])
CLASSIFIER_SCALE = 50.0


def keras_efficientnet(variant: str, resolution: int, *, imagenet_normalization: bool = True, seed: int = 0):
    model = getattr(keras.applications, f"EfficientNet{variant}")(
        weights=None, classifier_activation=None, input_shape=(resolution, resolution, 3)
    )
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.8, 1.2, channels),
                    rng.normal(0, 0.1, channels),
                    rng.normal(0, 0.1, channels),
                    rng.uniform(0.8, 1.2, channels),
                ]
            )
        if layer.name == "predictions":
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel * CLASSIFIER_SCALE, bias])
        if isinstance(layer, keras.layers.Normalization) and imagenet_normalization:
            layer.set_weights([IMAGENET_MEAN, IMAGENET_STD**2, np.array(0)])
            layer.finalize_state()
    return model


@pytest.mark.parametrize(
    "variant, resolution",
    [
        ("B0", 224),
        pytest.param("B0", 250, marks=pytest.mark.slow),  # another resolution
        pytest.param("B3", 300, marks=pytest.mark.slow),  # another size
    ],
)
def test_same_logits_as_keras_applications(variant, resolution):
    theirs = keras_efficientnet(variant, resolution)
    ours = build_model(f"efficientnet-{variant.lower()}", resolution=resolution)
    load_keras_applications_weights(ours, theirs)
    images = np.random.default_rng(1).uniform(0, 255, (3, resolution, resolution, 3)).astype("float32")
    # Plain eager calls: `predict` would first trace each whole network into a graph (~2 s a model).
    expected = np.asarray(theirs(images, training=False))
    actual = np.asarray(ours(images, training=False))
    assert 5 < np.abs(expected).max() < 30  # the scale of a trained model's logits
    assert np.abs(actual - expected).max() < 1e-4


def test_refuses_a_keras_model_that_normalises_differently():
    theirs = keras_efficientnet("B0", 64, imagenet_normalization=False)
    ours = build_model("efficientnet-b0", resolution=64)
    with pytest.raises(ValueError, match="does not normalise its input with ImageNet statistics"):
        load_keras_applications_weights(ours, theirs)


def test_refuses_a_different_number_of_classes():
    theirs = keras_efficientnet("B0", 64)
    ours = build_model("efficientnet-b0", num_classes=10, resolution=64)
    with pytest.raises(ValueError, match="shape mismatch copying keras layer 'predictions'"):
        load_keras_applications_weights(ours, theirs)
