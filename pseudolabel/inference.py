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

Progress: each worker process prints a progress line of the images it
labeled (efficientnet/util/progress.py) on its stderr, the worker log on a
distributed runner. On the local FnApiRunner that process is the whole job,
and the launcher passes the corpus size so the line has an ETA; a worker of a
distributed job sees only its share, so it gets no total and reports its own
count and rate. Job totals are Beam counters (`images_labeled`,
`images_failed`), which Dataflow's UI sums over the workers.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from efficientnet.model.inference import Predictor
from efficientnet.util.progress import ProgressLine
from pseudolabel.read import FAILED
from pseudolabel.targets import soft_probabilities


class WorkerTeacher:
    """What the DoFn instances of one worker process share: the teacher and one progress line."""

    def __init__(self, path: str, total_images: int | None):
        self.predictor = Predictor.from_export(path)
        self.progress = ProgressLine("labeling", total_images)

    @classmethod
    def acquire(cls, shared_handle: shared.Shared, path: str, total_images: int | None) -> WorkerTeacher:
        """This process's teacher of `shared_handle`, loaded on first use.

        On the local runner the launcher is the only worker: it acquires the
        teacher before the job starts (its checks need the export anyway) and
        holds it while the job runs, so the DoFn finds it loaded instead of
        loading and freezing the model a second time.
        """
        return shared_handle.acquire(lambda: cls(path, total_images), tag=path)


class LabelBatchFn(beam.DoFn):
    """Lists of `(id, encoded)` → `(id, encoded, probabilities)`; failures tagged.

    An undecodable image yields `TaggedOutput("failed", {"id", "error"})` and
    its batch goes on without it: one bad file never fails the job.

    Args:
      teacher_path: The teacher's export directory.
      temperature: Soft labels are softmax(logits / temperature).
      shared_handle: One `Shared()` per pipeline: the teacher is loaded once per process.
      total_images: The corpus size for the progress line's ETA, when this
        process labels all of it (the local runner); None on a distributed one.
    """

    def __init__(
        self, teacher_path: str, temperature: float, shared_handle: shared.Shared, total_images: int | None = None
    ):
        self._teacher_path = teacher_path
        self._temperature = temperature
        self._shared_handle = shared_handle
        self._total_images = total_images
        self._labeled = Metrics.counter("pseudolabel", "images_labeled")
        self._failed = Metrics.counter("pseudolabel", "images_failed")
        self._worker: WorkerTeacher | None = None

    def setup(self):
        self._worker = WorkerTeacher.acquire(self._shared_handle, self._teacher_path, self._total_images)

    def process(self, batch):
        teacher = self._worker.predictor
        views, good, errors = teacher.views_of_encoded([encoded for _, encoded in batch])
        probabilities = soft_probabilities(teacher.logits(views), self._temperature) if good else []
        self._labeled.inc(len(good))
        self._failed.inc(len(errors))
        self._worker.progress.advance(len(batch), failed=len(errors))
        for index, message in errors:
            yield beam.pvalue.TaggedOutput(FAILED, {"id": batch[index][0], "error": message})
        for index, row in zip(good, probabilities, strict=True):
            example_id, encoded = batch[index]
            yield example_id, encoded, row

    def teardown(self):
        if self._worker is not None:
            self._worker.progress.close()
