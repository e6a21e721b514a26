"""Batched teacher inference inside Beam: Beam's RunInference with a model handler of our own.

`TeacherModelHandler` loads the teacher through the project's export loader
(`Predictor.from_export`: Keras safe mode, the project's layers, the
resolution `model.json` records, the same inference path evaluation uses)
instead of Beam's TensorFlow handler, which imports tensorflow_hub at import
time and knows nothing of `model.json` (docs/platform.md#apache-beam).
RunInference keeps one teacher per worker process, loaded once in `setup`,
never per element or per bundle, and reports Beam's standard inference
metrics (`RunInference` namespace: `num_inferences`,
`inference_batch_latency_micro_secs`, `load_model_latency_milli_secs`, …). It replaced an equivalent DoFn of our
own after labeling as fast as it, side by side in one run (2026-11-30).

The teacher is used un-noised, exactly as it is evaluated
(docs/noisy_student.md#the-procedure): the eval view at the resolution its
export records, `training=False`, its EMA weights.

The images arrive in batches, the reader's (`read.ReadImages`), and leave as
batches (`LabeledBatch`): Beam's cost is per element, so an element per image
through the job's stages costs a small model's job more than its inference
(pipeline.py). RunInference's own batching (`beam.BatchElements`, itself an
element per image) is skipped for the same reason.

An image that does not decode gives the reason instead of probabilities and
its batch goes on without it: one bad file never fails the job.
`SortOutcomesFn` turns the results into labeled batches and dead letters.

Progress: each worker process prints a progress line of the images it
labeled (efficientnet/util/progress.py) on its stderr, the worker log on a
distributed runner. On the local FnApiRunner that process is the whole job,
and the launcher passes the corpus size so the line has an ETA; a worker of a
distributed job sees only its share, so it gets no total and reports its own
count and rate. Job totals are Beam counters (`images_labeled`,
`images_failed`), which Dataflow's UI sums over the workers.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference import base as beam_inference
from apache_beam.ml.inference.base import ModelHandler, RunInference
from apache_beam.utils import shared

from efficientnet.model.inference import Predictor
from efficientnet.util.progress import ProgressLine
from pseudolabel.read import FAILED
from pseudolabel.targets import soft_probabilities


def _restore_beam_memory_metric() -> None:
    """Beam 2.77 imports `resource` in the same `try` as a module that needs
    torch, so without torch it sets `resource` to None and warns "Resource
    module is not available for current platform" at every model load (and
    reports 0 bytes of model memory). The module is there on Linux and macOS:
    give it back (docs/platform.md#apache-beam)."""
    if getattr(beam_inference, "resource", True) is None:
        try:
            import resource
        except ImportError:  # Windows: Beam's warning is right there
            return
        beam_inference.resource = resource


_restore_beam_memory_metric()


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


@dataclasses.dataclass
class LabeledBatch:
    """A batch of images the teacher labeled: what flows through the job after
    labeling, a batch per element, so that the per-image work of filtering,
    statistics and spilling is numpy's and a loop's, not a Beam element's.

    `num_failed` counts the images of the input batch that did not decode;
    they are not in the batch (they went out as dead letters).
    """

    ids: list[str]
    encoded: list[bytes]
    probabilities: np.ndarray  # float32 [len(ids), num_classes]
    num_failed: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def top1(self) -> tuple[np.ndarray, np.ndarray]:
        """Each image's predicted class and its probability (the confidence)."""
        labels = np.argmax(self.probabilities, axis=1) if len(self) else np.zeros(0, np.int64)
        return labels, self.probabilities[np.arange(len(self)), labels]

    def subset(self, keep: np.ndarray) -> LabeledBatch:
        """The images where `keep` (a boolean array) is true."""
        return LabeledBatch(
            [example_id for example_id, kept in zip(self.ids, keep, strict=True) if kept],
            [encoded for encoded, kept in zip(self.encoded, keep, strict=True) if kept],
            self.probabilities[keep],
        )


class TeacherModelHandler(ModelHandler):
    """RunInference's handler for the teacher. Its examples are whole batches,
    lists of `(id, encoded)` as the reader makes them (RunInference's own
    batching is skipped); each gives one `(LabeledBatch, failures)` result,
    where `failures` are `{"id", "error"}` of the images that did not decode.
    Beam's metrics still count images: RunInference takes a list's length.

    Args:
      teacher_path: The teacher's export directory.
      temperature: Soft labels are softmax(logits / temperature).
      shared_handle: One `Shared()` per pipeline: the teacher is loaded once per process.
      total_images: The corpus size for the progress line's ETA, when this
        process labels all of it (the local runner); None on a distributed one.
    """

    def __init__(
        self,
        teacher_path: str,
        temperature: float,
        shared_handle: shared.Shared,
        total_images: int | None = None,
    ):
        super().__init__()
        self._teacher_path, self._temperature = teacher_path, temperature
        self._shared_handle, self._total_images = shared_handle, total_images

    def load_model(self) -> WorkerTeacher:
        return WorkerTeacher.acquire(self._shared_handle, self._teacher_path, self._total_images)

    def run_inference(self, batch, model: WorkerTeacher, inference_args=None) -> list:
        ids = [example_id for example_id, _ in batch]
        views, good, errors = model.predictor.views_of_encoded([encoded for _, encoded in batch])
        if good:
            probabilities = soft_probabilities(model.predictor.logits(views), self._temperature)
        else:
            probabilities = np.zeros((0, model.predictor.metadata["num_classes"]), np.float32)
        labeled = LabeledBatch([ids[i] for i in good], [batch[i][1] for i in good], probabilities, len(errors))
        failures = [{"id": ids[index], "error": message} for index, message in errors]
        model.progress.advance(len(batch), failed=len(errors))
        return [(labeled, failures)]

    def get_num_bytes(self, batch) -> int:
        """The encoded bytes (the base class would pickle every batch to measure it)."""
        return sum(len(encoded) for _, encoded in batch)

    def should_skip_batching(self) -> bool:
        return True  # the reader's batches are the model's


class SortOutcomesFn(beam.DoFn):
    """`(LabeledBatch, failures)` → the batch, and each failure tagged `FAILED`;
    counts both, and ends the worker's progress line when the worker stops."""

    def __init__(self, teacher_path: str, shared_handle: shared.Shared, total_images: int | None = None):
        self._teacher_path, self._shared_handle, self._total_images = teacher_path, shared_handle, total_images
        self._labeled = Metrics.counter("pseudolabel", "images_labeled")
        self._failed = Metrics.counter("pseudolabel", "images_failed")
        self._worker: WorkerTeacher | None = None

    def setup(self):
        # The same object RunInference's handler loads in this process: only its progress line is used here.
        self._worker = WorkerTeacher.acquire(self._shared_handle, self._teacher_path, self._total_images)

    def process(self, outcome):
        labeled, failures = outcome
        self._labeled.inc(len(labeled))
        self._failed.inc(len(failures))
        for failure in failures:
            yield beam.pvalue.TaggedOutput(FAILED, failure)
        yield labeled  # also when empty: its num_failed counts in the stats

    def teardown(self):
        if self._worker is not None:
            self._worker.progress.close()


class LabelImages(beam.PTransform):
    """Batches of `(id, encoded)` → outputs `labeled` (a `LabeledBatch` per
    batch) and `FAILED` dead letters (`{"id", "error"}`).

    Args are those of `TeacherModelHandler`.
    """

    def __init__(self, teacher_path, temperature, shared_handle, total_images=None):
        super().__init__()
        self._handler = TeacherModelHandler(teacher_path, temperature, shared_handle, total_images)
        self._sort = SortOutcomesFn(teacher_path, shared_handle, total_images)

    def expand(self, batches):
        return (
            batches
            | "Teacher" >> RunInference(self._handler)
            | "Outcomes" >> beam.ParDo(self._sort).with_outputs(FAILED, main="labeled")
        )
