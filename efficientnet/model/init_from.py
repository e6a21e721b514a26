"""A new run's first weights: `--init_from`.

A run that resumes reads its own checkpoint; a new one starts from random
weights, or from the weights `--init_from` names: Keras's ImageNet
EfficientNet (`keras_weights`), a checkpoint of the reference TPU code
(`official_checkpoint`), or one of our exports (`export`). This module only
chooses among those loaders and copies an export's layers; the training loop
calls it once, before the first step.
"""

from __future__ import annotations

import keras

from efficientnet.model import export, official_checkpoint, scaling
from efficientnet.model.keras_weights import load_keras_applications_weights


def initialize_from(model: keras.Model, init_from: str, model_config: scaling.ModelConfig) -> None:
    """Copies weights from Keras's ImageNet EfficientNet, a reference TPU checkpoint or one of our exports.

    `noisy_student:CHECKPOINT` reads a checkpoint of the reference code (a released
    Noisy Student one by path or by name) with its EMA weights,
    `noisy_student_raw:CHECKPOINT` with its raw ones (`official_checkpoint`).
    The classifier is skipped when the number of classes differs (fine-tuning
    on a new label set); any other shape mismatch is an error.
    """
    official = official_checkpoint.parse_init_from(init_from)
    if official:
        checkpoint, use_ema = official
        official_checkpoint.load_official_checkpoint(model, model_config, checkpoint, use_ema=use_ema)
        return
    if init_from == "keras":
        variant = model_config.name.split("-")[-1].upper()
        application = getattr(keras.applications, f"EfficientNet{variant}", None)
        if application is None:
            raise ValueError(f"--init_from=keras: keras.applications has no EfficientNet{variant}")
        source = application(
            weights="imagenet",
            classifier_activation=None,
            input_shape=(model_config.resolution, model_config.resolution, 3),
        )
        load_keras_applications_weights(model, source, include_classifier=model_config.num_classes == 1000)
        return
    source, _ = export.load_export(init_from)
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"--init_from={init_from}: layer {layer.name!r} is missing there") from None
        shapes = [tuple(w.shape) for w in layer.weights], [tuple(w.shape) for w in other.weights]
        if shapes[0] != shapes[1]:
            if layer.name == official_checkpoint.CLASSIFIER_LAYER:
                continue
            raise ValueError(f"--init_from={init_from}: layer {layer.name!r} has shapes {shapes[1]}, need {shapes[0]}")
        layer.set_weights(other.get_weights())
