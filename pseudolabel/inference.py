"""Batched teacher inference inside Beam: one model per worker process.

Beam's RunInference would do, but its TensorFlow handler imports
tensorflow_hub and loads with Keras's default (unsafe-capable) loader
(docs/platform.md#apache-beam); the project loads exports with `export.load_export` (safe
mode, custom layers registered). So this is the equivalent DoFn:
`beam.BatchElements` upstream, and a `Teacher` shared by all DoFn instances
of a worker process through `apache_beam.utils.shared.Shared`, loaded once in
`setup`, never per element or per bundle.

The teacher is used un-noised, exactly as it is evaluated (docs/noisy_student.md#the-procedure):
`preprocessing.eval_image` at the resolution recorded in the export's
`model.json` (never a flag), `training=False` (no dropout or stochastic
depth, BN moving statistics), EMA weights (what the export holds). Each
function is a `tf.function` with a fixed input signature, traced once per
process: retracing per batch size would cost more than the inference itself
with a small model.
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.utils import shared

from efficientnet.data import preprocessing
from efficientnet.data.datasets import decode_image
from efficientnet.model import export
from efficientnet.util import cli
from pseudolabel.sources import FAILED
from pseudolabel.targets import soft_probabilities


class Teacher:
    """An export loaded for labeling.

    Attributes:
      resolution: The model's input side, from `model.json`.
      num_classes: Size of its classifier.
    """

    def __init__(self, path: str):
        self.model, self.metadata = export.load_export(path)
        self.resolution = int(self.metadata["input"]["resolution"])
        self.num_classes = int(self.metadata["num_classes"])
        side = self.resolution
        image_spec = tf.TensorSpec([side, side, 3], tf.float32)

        def preprocess_one(encoded):
            return preprocessing.eval_image(decode_image(encoded), side)

        def preprocess_batch(encoded):
            return tf.map_fn(preprocess_one, encoded, fn_output_signature=image_spec)

        def logits(images):
            return self.model(images, training=False)

        self._preprocess_one = tf.function(preprocess_one, input_signature=[tf.TensorSpec([], tf.string)])
        self._preprocess_batch = tf.function(preprocess_batch, input_signature=[tf.TensorSpec([None], tf.string)])
        self._logits = tf.function(logits, input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)])

    def preprocess(self, encoded: bytes) -> np.ndarray:
        """Encoded image → float32 [res, res, 3]; raises tf.errors.OpError when undecodable."""
        return self._preprocess_one(tf.constant(encoded)).numpy()

    def preprocess_batch(self, encoded: list[bytes]) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
        """Encoded images → (float32 [n_good, res, res, 3], indices of the good ones, errors).

        One graph call for the whole batch (per-image calls cost ~6x more
        with small images); only a batch holding an undecodable image is
        redone image by image to find it.
        """
        try:
            return self._preprocess_batch(tf.constant(encoded)).numpy(), list(range(len(encoded))), []
        except tf.errors.OpError:
            pass
        images, good, errors = [], [], []
        for index, one in enumerate(encoded):
            try:
                images.append(self.preprocess(one))
                good.append(index)
            except tf.errors.OpError as error:
                errors.append((index, cli.one_line(error.message)[:500]))
        side = self.resolution
        return (np.stack(images) if images else np.zeros([0, side, side, 3], np.float32)), good, errors

    def logits(self, images: np.ndarray) -> np.ndarray:
        """float32 [n, res, res, 3] raw pixels → float32 [n, num_classes] logits."""
        return self._logits(tf.convert_to_tensor(images, tf.float32)).numpy()


class LabelBatchFn(beam.DoFn):
    """Lists of `(id, encoded)` → `(id, encoded, probabilities)`; failures tagged.

    An undecodable image yields `TaggedOutput("failed", {"id", "error"})` and
    its batch goes on without it: one bad file never fails the job.
    """

    def __init__(self, teacher_path: str, temperature: float, shared_handle: shared.Shared):
        self._teacher_path = teacher_path
        self._temperature = temperature
        self._shared_handle = shared_handle
        self._teacher: Teacher | None = None

    def setup(self):
        path = self._teacher_path
        self._teacher = self._shared_handle.acquire(lambda: Teacher(path), tag=path)

    def process(self, batch):
        images, good, errors = self._teacher.preprocess_batch([encoded for _, encoded in batch])
        for index, message in errors:
            yield beam.pvalue.TaggedOutput(FAILED, {"id": batch[index][0], "error": message})
        if not good:
            return
        probabilities = soft_probabilities(self._teacher.logits(images), self._temperature)
        for index, row in zip(good, probabilities, strict=True):
            example_id, encoded = batch[index]
            yield example_id, encoded, row
