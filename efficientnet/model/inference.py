"""Images → logits: the one inference path for evaluation, labeling and robustness.

A `Predictor` is a model at its own resolution (from the export's
`model.json`, never a flag), used un-noised (`training=False`: no dropout or
stochastic depth, batch-norm moving statistics) with the weights it was
exported with (the EMA weights, docs/training.md#ema). The forward pass is
frozen once: the variables are folded into the graph as constants, which lets
TensorFlow's graph optimiser fold batch normalisation into the convolutions.
`python benchmarks/inference.py` on the 2-core CPU (2026-11-30): B0 at 224 px,
batch 32, 1.09x the images per second of a plain traced
`model(x, training=False)` and 1.28x `model.predict`; the tiny 32 px model at
parity (0.98x). Freezing costs once per model (~2 s for B0), which labeling a
corpus or evaluating a test set repays. The logits equal the plain call's up
to float rounding. The frozen function has a fixed signature
([None, res, res, 3] float32), so it is traced once, whatever the batch sizes.
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from efficientnet.data import preprocessing
from efficientnet.model.export import load_export
from efficientnet.util.cli import one_line

DEFAULT_BATCH_SIZE = 256
_FUNCTION_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")  # the prefix of an error raised inside a tf.function


class Predictor:
    """A model ready to turn images at its own resolution into logits.

    Attributes:
      resolution: The model's input side.
      num_classes: Size of its classifier.
      path: The export directory it was loaded from (None for a live model).
      metadata: The export's `model.json` (empty for a live model).
    """

    def __init__(self, model: keras.Model, resolution: int, *, path: str | None = None, metadata=None):
        self.model = model
        self.resolution = int(resolution)
        self.num_classes = int(model.output_shape[-1])
        self.path = path
        self.metadata: dict[str, Any] = metadata or {}
        self._forward = _frozen_forward(model, self.resolution)
        side = self.resolution
        image_spec = tf.TensorSpec([side, side, 3], tf.float32)

        def view_one(encoded):
            return preprocessing.eval_image(preprocessing.decode_image(encoded), side)

        def view_batch(encoded):
            return tf.map_fn(view_one, encoded, fn_output_signature=image_spec)

        # No Python control flow depends on tensors here, so AutoGraph has nothing to convert.
        self._view_one = tf.function(view_one, input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
        self._view_batch = tf.function(view_batch, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)

    @classmethod
    def from_export(cls, path: str) -> Predictor:
        """Loads an export (Keras safe mode) at the resolution its metadata records."""
        model, metadata = load_export(path)
        return cls(model, metadata["input"]["resolution"], path=path, metadata=metadata)

    @property
    def class_names(self) -> list[str] | None:
        return self.metadata.get("class_names")

    def logits(self, images, batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """float32 logits [N, num_classes] of images [N, res, res, 3] (raw pixels, uint8 or float)."""
        images = np.asarray(images) if not isinstance(images, tf.Tensor) else images
        if tuple(images.shape[1:3]) != (self.resolution, self.resolution):
            raise ValueError(f"{self.path or 'the model'} takes {self.resolution} px images, got {images.shape[1:3]}")
        outputs = [
            self._forward(tf.cast(images[start : start + batch_size], tf.float32)).numpy()
            for start in range(0, len(images), batch_size)
        ]
        if not outputs:
            return np.zeros((0, self.num_classes), np.float32)
        return np.concatenate(outputs).astype(np.float32)

    def views_of_encoded(self, encoded: list[bytes]) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
        """Encoded images → (eval views float32 [n_good, res, res, 3], indices of the good ones, errors).

        The eval view is `preprocessing.eval_image`, exactly what evaluation
        sees. One graph call for the whole batch (per-image calls cost ~6x
        more with small images); only a batch holding an undecodable image is
        redone image by image to find it.
        """
        try:
            return self._view_batch(tf.constant(encoded)).numpy(), list(range(len(encoded))), []
        except tf.errors.OpError:
            pass
        views, good, errors = [], [], []
        for index, one in enumerate(encoded):
            try:
                views.append(self._view_one(tf.constant(one)).numpy())
                good.append(index)
            except tf.errors.OpError as error:
                errors.append((index, _decode_error_reason(error)))
        side = self.resolution
        return (np.stack(views) if views else np.zeros([0, side, side, 3], np.float32)), good, errors


def _decode_error_reason(error: tf.errors.OpError) -> str:
    """Why an image could not be decoded, in one line (`Invalid PNG. Failed to initialize decoder.`).

    TensorFlow's message around the reason names the graph node and, under
    some callers, the Python stack that built it: hundreds of characters of
    noise in a failures file. The reason is its last line before the node list.
    """
    lines = [line.strip() for line in error.message.splitlines()]
    reasons = [line for line in lines if line and not line.startswith("[[")]
    reason = _FUNCTION_NODE.sub("", reasons[-1]) if reasons else one_line(error.message)
    return reason[:500]


def softmax(logits) -> np.ndarray:
    """Probabilities of logits over the last axis, float32.

    Computed in float64 after subtracting the row maximum, so that large
    logits (or logits divided by a small temperature) cannot overflow.
    """
    shifted = np.asarray(logits, np.float64)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exponentials = np.exp(shifted)
    return (exponentials / exponentials.sum(axis=-1, keepdims=True)).astype(np.float32)


def _frozen_forward(model: keras.Model, resolution: int):
    """`model(images, training=False)` with the weights folded in as constants.

    The weights are read once, here: a predictor of a live model sees the
    weights it had when it was made. Falls back to the plain traced call if
    freezing fails (it is an optimisation only).
    """
    signature = tf.TensorSpec([None, resolution, resolution, 3], tf.float32)

    def forward(images):
        return model(images, training=False)

    traced = tf.function(forward, input_signature=[signature], autograph=False)
    try:
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        frozen = convert_variables_to_constants_v2(traced.get_concrete_function())
    except Exception:  # noqa: BLE001 (any failure: the traced call is always correct)
        return traced

    def frozen_forward(images):
        return tf.nest.flatten(frozen(images))[0]

    # The frozen function has lost its input signature: called directly, each
    # call first fails to bind its argument and formats the whole batch into
    # the error message (~5 ms per call, a fifth of a 64-image batch of the
    # tiny model) before falling back. A concrete function of a tf.function
    # with the signature binds at once; it is traced here, once, rather than
    # on a first call, where TensorFlow would count it as a "retracing" when
    # a report loads five models or more.
    return tf.function(frozen_forward, input_signature=[signature], autograph=False).get_concrete_function()
