"""Start from keras.applications' ImageNet weights.

Users who are online can build `keras.applications.EfficientNetB0(weights=
"imagenet")` … B7 and copy its weights into our model, which then returns the
same logits for the same raw images. Our layers mirror keras.applications'
one-to-one; only some names differ, which `_our_layer_name` translates.

keras.applications normalises inside the model too (Rescaling 1/255, then a
Normalization layer whose ImageNet weights hold the channel statistics), but a
`weights=None` model normalises with identity statistics. Copying weights
into a model that normalises differently would give silently wrong logits, so
we compare the two normalisations on a probe image and refuse on mismatch.
"""

from __future__ import annotations

import keras
import numpy as np

# keras.applications layers → ours, where the names differ. Block layers
# share the `block{stage}{letter}_` prefix in both models.
_RENAMED = {"top_conv": "head_conv", "top_bn": "head_bn", "predictions": "logits"}
_RENAMED_BLOCK_SUFFIXES = {"_bn": "_dwconv_bn"}
# Layers whose weights are input statistics, checked rather than copied.
_PREPROCESSING = (keras.layers.Normalization, keras.layers.Rescaling)


def load_keras_applications_weights(
    model: keras.Model, keras_model: keras.Model, *, include_classifier: bool = True
) -> keras.Model:
    """Copies a keras.applications EfficientNetB0–B7's weights into `model`.

    Args:
      model: Ours, from `build_model` with the same name, resolution and
        number of classes as `keras_model`.
      keras_model: A `keras.applications.EfficientNetBx`, built with
        `include_top=True` and `classifier_activation=None` to compare logits.
      include_classifier: False keeps `model`'s own classifier (fine-tuning on
        another label set); everything else is still copied.

    Returns:
      `model`, with every weight replaced.

    Raises:
      ValueError: a layer is missing on either side, a shape differs, or the
        Keras model normalises its input differently from ImageNet statistics
        (e.g. `weights=None`), naming the layer or the difference.
    """
    _check_normalization(model, keras_model)
    ours = {layer.name: layer for layer in model.layers if layer.weights}
    copied = set()
    for layer in keras_model.layers:
        if not layer.weights or isinstance(layer, _PREPROCESSING):
            continue
        target_name = _our_layer_name(layer.name)
        if target_name == "logits" and not include_classifier:
            continue
        if target_name not in ours:
            raise ValueError(f"keras layer {layer.name!r} has no counterpart {target_name!r} in {model.name!r}")
        target = ours[target_name]
        source_shapes = [tuple(w.shape) for w in layer.weights]
        target_shapes = [tuple(w.shape) for w in target.weights]
        if source_shapes != target_shapes:
            raise ValueError(
                f"shape mismatch copying keras layer {layer.name!r} {source_shapes} "
                f"into {target_name!r} {target_shapes}: is the model size or num_classes different?"
            )
        target.set_weights(layer.get_weights())
        copied.add(target_name)
    missing = sorted(set(ours) - copied - (set() if include_classifier else {"logits"}))
    if missing:
        raise ValueError(f"layers of {model.name!r} received no keras weights: {missing[:5]}…")
    return model


def _our_layer_name(keras_name: str) -> str:
    if keras_name in _RENAMED:
        return _RENAMED[keras_name]
    for suffix, replacement in _RENAMED_BLOCK_SUFFIXES.items():
        if keras_name.startswith("block") and keras_name.endswith(suffix) and keras_name.count("_") == 1:
            return keras_name[: -len(suffix)] + replacement
    return keras_name


def _check_normalization(model: keras.Model, keras_model: keras.Model) -> None:
    """Both models must map raw pixels to the same stem-conv input."""
    probe = np.linspace(0.0, 255.0, 2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    ours = model.get_layer("normalization")(probe)
    theirs = probe
    for layer in keras_model.layers[1:]:
        if layer.name == "stem_conv_pad" or not isinstance(layer, _PREPROCESSING):
            break
        theirs = layer(theirs)
    difference = float(np.max(np.abs(np.asarray(ours) - np.asarray(theirs))))
    if difference > 1e-4:
        raise ValueError(
            f"{keras_model.name!r} does not normalise its input with ImageNet statistics "
            f"(max difference {difference:.3g} after normalisation); build it with "
            "weights='imagenet' or set its Normalization layer to the ImageNet mean and variance"
        )
