"""Batched teacher inference inside Beam: one model per worker process.

Beam's RunInference would do, but its TensorFlow handler imports
tensorflow_hub at import time and knows nothing of `model.json`
(docs/platform.md#apache-beam). So this is the equivalent DoFn:
`beam.BatchElements` upstream, and a `Predictor` (efficientnet/model/inference.py,
the same inference path evaluation uses) shared by all DoFn instances of a
worker process through `apache_beam.utils.shared.Shared`, loaded once in
`setup`, never per element or per bundle.

The teacher is used un-noised, exactly as it is evaluated
(docs/noisy_student.md#the-procedure): the eval view at the resolution its
export records, `training=False`, its EMA weights.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.utils import shared

from efficientnet.model.inference import Predictor
from pseudolabel.read import FAILED
from pseudolabel.targets import soft_probabilities


class LabelBatchFn(beam.DoFn):
    """Lists of `(id, encoded)` → `(id, encoded, probabilities)`; failures tagged.

    An undecodable image yields `TaggedOutput("failed", {"id", "error"})` and
    its batch goes on without it: one bad file never fails the job.
    """

    def __init__(self, teacher_path: str, temperature: float, shared_handle: shared.Shared):
        self._teacher_path = teacher_path
        self._temperature = temperature
        self._shared_handle = shared_handle
        self._teacher: Predictor | None = None

    def setup(self):
        path = self._teacher_path
        self._teacher = self._shared_handle.acquire(lambda: Predictor.from_export(path), tag=path)

    def process(self, batch):
        views, good, errors = self._teacher.views_of_encoded([encoded for _, encoded in batch])
        for index, message in errors:
            yield beam.pvalue.TaggedOutput(FAILED, {"id": batch[index][0], "error": message})
        if not good:
            return
        probabilities = soft_probabilities(self._teacher.logits(views), self._temperature)
        for index, row in zip(good, probabilities, strict=True):
            example_id, encoded = batch[index]
            yield example_id, encoded, row
