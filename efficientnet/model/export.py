"""Exported models: `model.keras` (EMA weights) plus `model.json` metadata.

The metadata carries the model's own input config (resolution, crop), so the
labeling job and evaluators derive their preprocessing from the model instead
of taking flags that could disagree with how it was trained. `model.json` is written last: an export
directory without it is incomplete and is refused.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import keras
import tensorflow as tf

from efficientnet.data import preprocessing
from efficientnet.model import layers as _layers  # noqa: F401  (registers custom layers for loading)
from efficientnet.model.scaling import ModelConfig
from efficientnet.util import fileio

EXPORT_DIR = "export"  # inside a training run's model_dir
MODEL_FILE = "model.keras"
METADATA_FILE = "model.json"  # written last: its presence marks a complete export
FORMAT_VERSION = 1


def input_config(config: ModelConfig) -> dict[str, Any]:
    """How to turn an image into this model's input (docs/training.md#preprocessing)."""
    return {
        "resolution": config.resolution,
        "pixels": "raw RGB in [0, 255]; the model normalises with ImageNet mean/std",
        "eval_crop": "resize whole"
        if preprocessing.is_small(config.resolution)
        else f"centre crop res/(res+{preprocessing.CROP_PADDING})·min(h,w), bicubic resize",
    }


def save_export(
    directory: str,
    model: keras.Model,
    config: ModelConfig,
    *,
    class_names: list[str] | None,
    extra: dict[str, Any],
) -> str:
    """Writes `directory/model.keras` then `directory/model.json`; returns the json path."""
    with tempfile.TemporaryDirectory() as local:
        local_model = os.path.join(local, MODEL_FILE)
        model.save(local_model)
        fileio.copy_file(local_model, os.path.join(directory, MODEL_FILE))
    metadata = {
        "format_version": FORMAT_VERSION,
        "model": config.to_dict(),
        "input": input_config(config),
        "num_classes": config.num_classes,
        "class_names": list(class_names) if class_names else None,
    } | extra
    path = os.path.join(directory, METADATA_FILE)
    fileio.write_json(path, metadata)
    return path


def export_dir(model_dir: str) -> str:
    """Where a training run in `model_dir` writes its export."""
    return os.path.join(model_dir, EXPORT_DIR)


def is_complete(directory: str) -> bool:
    """Whether an export directory holds its metadata, the file written last."""
    return tf.io.gfile.exists(os.path.join(directory, METADATA_FILE))


def resolve_export_dir(path: str) -> str:
    """Accepts an export directory, a model_dir holding `export/`, or a file in it."""
    for candidate in (path, export_dir(path), os.path.dirname(path)):
        if is_complete(candidate):
            return candidate
    raise FileNotFoundError(f"no exported model at {path!r} (expected {METADATA_FILE} and {MODEL_FILE} there)")


def load_metadata(path: str) -> dict[str, Any]:
    return fileio.read_json(os.path.join(resolve_export_dir(path), METADATA_FILE))


def load_export(path: str) -> tuple[keras.Model, dict[str, Any]]:
    """Loads an export in Keras safe mode (no Lambda layers or pickled code)."""
    directory = resolve_export_dir(path)
    metadata = fileio.read_json(os.path.join(directory, METADATA_FILE))
    model_path = os.path.join(directory, MODEL_FILE)
    if not tf.io.gfile.exists(model_path):
        raise FileNotFoundError(f"{model_path} is missing although {METADATA_FILE} is there")
    try:
        model = keras.saving.load_model(model_path, safe_mode=True, compile=False)
    except (ValueError, TypeError, OSError, KeyError) as error:
        # Safe mode refuses Lambda layers and other pickled code; a truncated
        # or foreign file fails to parse. Either way, name the file.
        raise ValueError(f"{model_path} cannot be loaded in safe mode: {error}") from None
    return model, metadata


def model_config_of(metadata: dict[str, Any]) -> ModelConfig:
    return ModelConfig.from_dict(metadata["model"])
