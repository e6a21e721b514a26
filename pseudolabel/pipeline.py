"""The pseudo-labeling job (docs/noisy_student.md#the-procedure, steps 2–3) as one Beam pipeline.

  read     batches of (id, bytes) ──► RunInference (teacher) ──► LabeledBatch
           (ids, bytes, probabilities)   └─► dead letters (undecodable images)
  stats    one combine: per-class counts and confidence histogram before and
           after the filter, dead letters
  filter   top-1 confidence >= threshold
  spill    each kept record, already serialized in its final form, into a
           temporary file of its bundle ──► (class, [(id, confidence, file, index)])
  balance  GroupByKey on the predicted class, a bounded top-K heap per class,
           duplication counts ──► (file, [(index, copies)]) ──► GroupByKey on
           file ──► read each spill file once, in order, emitting each
           selected record `copies` times
  write    sharded TFRecords (with a fixed shard count, each record in the
           shard its bytes hash to: `WriteShards`), failures.jsonl,
           stats.json, config.json

From the reader to the writer an element is a batch (of images, candidates or
records), never one image: Beam's cost is per element and per transform, and
with an element per image a tiny model's job took nearly twice as long per
image as the same work in a plain loop (benchmarks/label.py, 2026-11-30).

Pixels never go through the balancing shuffles: the per-class shuffle carries
`(id, confidence)` and where the record is, the shuffle on spill files carries
record locations, and records move from spill files to output files in a
streaming read. That keeps worker memory bounded on any runner — including
the local FnApiRunner, which holds every shuffle in memory — and keeps a
Dataflow job's shuffle to a few hundred bytes per image instead of its
encoded bytes (`--num_shards` adds one shuffle of the records, as Beam's
file sink does for a fixed shard count). Nothing is collected in the launcher
or in one worker beyond a class's K best tuples.

`run_labeling(config, pipeline_args)` is what the CLI calls and the tests
call directly. It writes into a temporary sibling of `output_dir` and commits
it only after the pipeline succeeded (`commit.py`). With DataflowRunner's
`--dry_run=True`, `dry_run_labeling` builds and stages the same job and
writes nothing (`launch.py`).
"""

import collections
import dataclasses
import itertools
import json
import os
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from apache_beam.utils import shared

from efficientnet.data import records
from efficientnet.data.datasets import open_source
from efficientnet.data.digits import DigitsSource, digits_withheld_labels
from efficientnet.model import export
from efficientnet.util import fileio, runlock, stopping
from efficientnet.util.cli import Stopped
from efficientnet.util.settings import check_choices, setting
from pseudolabel import balance, commit, launch, outputs, stats, targets, write
from pseudolabel.inference import LabeledBatch, LabelImages, WorkerTeacher
from pseudolabel.read import FAILED, ReadImages
from pseudolabel.write import WriteBundleFilesFn, WriteShards

DEFAULT_BATCH_SIZE = 64
SPILL_DIR = "spill"  # inside the temporary output directory; removed before the commit
PARTS_DIR = "parts"  # likewise: the records of each bundle before their final names (--num_shards=0)


@dataclasses.dataclass
class LabelingConfig:
    """Everything a labeling run needs; saved as `output_dir/config.json`.

    Each field is a setting (`efficientnet/util/settings.py`): `pseudolabel.run`'s
    flags and the checks of an iteration config's `pseudolabel` section derive from it.
    """

    input: str = setting(
        help="Dataset spec of the unlabeled images: images:GLOB, folder:PATH, tfrecord:GLOB, tfds:NAME, digits."
    )
    teacher: str = setting(help="Teacher export directory (model.keras + model.json), local or gs://.")
    output_dir: str = setting(help="Where the records and stats.json go; replaced when the job succeeds.")
    split: str | None = setting(None, "Split for digits and tfds: sources (e.g. unlabeled, train).")
    data_dir: str | None = setting(None, "TFDS data directory.")
    confidence_threshold: float = setting(
        balance.DEFAULT_CONFIDENCE_THRESHOLD, "Keep images whose top-1 confidence is >= this."
    )
    images_per_class: int | str = setting(
        balance.AUTO, "K records per predicted class; 'auto' = kept/classes; 0 = no balancing."
    )
    label_type: str = setting(
        "soft", "soft (teacher probabilities) or hard (one-hot) pseudo-label targets.", choices=records.LABEL_TYPES
    )
    temperature: float = setting(targets.DEFAULT_TEMPERATURE, "Soft labels are softmax(logits / temperature).")
    num_shards: int = setting(
        0,
        "Output files; 0 lets the runner decide (one per bundle, no shuffle of the records); "
        "N > 0: each record in the file its bytes hash to.",
    )
    batch_size: int = setting(DEFAULT_BATCH_SIZE, "Images per teacher call.")

    def validate(self) -> None:
        """Raises ValueError naming the first bad setting."""
        check_choices(self)
        if not 0.0 <= self.confidence_threshold <= 1.0:
            raise ValueError(f"--confidence_threshold must be in [0, 1], got {self.confidence_threshold}")
        self.images_per_class = balance.parse_images_per_class(self.images_per_class)
        if not self.temperature > 0:
            raise ValueError(f"--temperature must be > 0, got {self.temperature}")
        if self.num_shards < 0:
            raise ValueError(f"--num_shards must be >= 0 (0: the runner decides), got {self.num_shards}")
        if self.batch_size < 1:
            raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")
        for name in ("input", "teacher", "output_dir"):
            if not getattr(self, name):
                raise ValueError(f"--{name} is required")


@dataclasses.dataclass
class _Job:
    """The labeling job for one config, checked and ready to add to a pipeline."""

    config: LabelingConfig
    source: Any  # efficientnet.data.source.Source
    settings: dict[str, Any]
    truth: dict[str, int] | None
    teachers: shared.Shared  # each worker process's teacher (inference.WorkerTeacher)
    total_images: int | None  # the corpus size where this process labels all of it, for the ETA
    # The teacher of this process, loaded by `_prepare` when this process labels everything:
    # held here while the job runs, so that the labeling DoFn gets it instead of loading it again.
    local_teacher: WorkerTeacher | None

    def build(self, pipeline: beam.Pipeline, work_dir: str) -> None:
        build_pipeline(
            pipeline,
            self.config,
            work_dir=work_dir,
            settings=self.settings,
            truth=self.truth,
            num_read_shards=self.source.num_shards(self.config.split),
            teachers=self.teachers,
            total_images=self.total_images,
            spread_images=self.local_teacher is None,  # one process labelling everything has nobody to spread to
        )


def run_labeling(config: LabelingConfig, pipeline_args: list[str] | None = None) -> dict[str, Any]:
    """Labels `config.input` with `config.teacher` into `config.output_dir`.

    Returns the stats.json document. Bad settings and missing inputs raise
    ValueError / FileNotFoundError before any pipeline starts.
    """
    if launch.is_dry_run(pipeline_args):
        raise ValueError("--dry_run=True builds the job without running it: call dry_run_labeling")
    config.validate()
    fileio.check_writable_dir(os.path.dirname(config.output_dir.rstrip("/")) or ".", "the parent of --output_dir")
    # Held from before the teacher loads, so that a second run refuses at
    # once, and before the leftovers of other runs are removed: a live run's
    # temporary directory is not a leftover.
    with runlock.hold(config.output_dir, "--output_dir", path=commit.lock_path(config.output_dir)):
        pipeline = launch.new_pipeline(pipeline_args)
        job = _prepare(config, pipeline)
        recovered = commit.recover_interrupted_commit(config.output_dir)
        if recovered:
            logging.warning("an earlier run was killed while replacing its output: %s", recovered)
        for leftover in commit.discard_leftovers(config.output_dir):
            logging.warning("removed the leftovers of an interrupted run: %s", leftover)
        work_dir = commit.temporary_dir(config.output_dir)
        try:
            # Nothing is committed before the pipeline has finished, so a
            # signal stops it at once; the previous output stays as it was.
            with stopping.requests(interrupt=True):
                fileio.write_json(
                    os.path.join(work_dir, outputs.CONFIG_FILE), dataclasses.asdict(config) | job.settings
                )
                for scratch in (SPILL_DIR, PARTS_DIR):
                    tf.io.gfile.makedirs(os.path.join(work_dir, scratch))
                job.build(pipeline, work_dir)
                launch.run(pipeline).wait_until_finish()
            for scratch in (SPILL_DIR, PARTS_DIR):
                commit.discard(os.path.join(work_dir, scratch))
            commit.commit(work_dir, config.output_dir)
        except stopping.Interrupted as signal_name:
            commit.discard(work_dir)
            raise Stopped(
                f"stopped by {signal_name} while labeling; {config.output_dir} was not touched; "
                "rerun the same command to label again"
            ) from None
        except BaseException:
            commit.discard(work_dir)
            raise
    return fileio.read_json(outputs.stats_path(config.output_dir))


def dry_run_labeling(config: LabelingConfig, pipeline_args: list[str]) -> launch.DryRun:
    """The same job, built and staged by DataflowRunner's `--dry_run=True`
    without being submitted; nothing is written at or beside `output_dir`."""
    if not launch.is_dry_run(pipeline_args):
        raise ValueError("dry_run_labeling needs --runner=DataflowRunner --dry_run=True")
    pipeline = launch.new_pipeline(pipeline_args)
    _prepare(config, pipeline).build(pipeline, commit.temporary_dir(config.output_dir))
    return launch.dry_run(pipeline, config.output_dir)


def _prepare(config: LabelingConfig, pipeline: beam.Pipeline) -> _Job:
    """Every check that needs no writing: settings, the corpus, the teacher, the output."""
    config.validate()
    # Opened here so that a missing or empty corpus or a wrong split fails in
    # the launcher, before a teacher is loaded, and to count its shards
    # (listing a folder or bucket once).
    source = open_source(config.input, data_dir=config.data_dir)
    source.check_split(config.split)
    source.require_images(config.split)
    teacher_dir = export.resolve_export_dir(config.teacher)
    # Loaded once here, in the launcher, so that a teacher safe mode refuses
    # (or a truncated file) is a one-line error before any worker starts.
    # Where this process is the job's only worker, that load is the labeling's own.
    teachers, local_teacher, total_images = shared.Shared(), None, None
    if launch.labels_in_this_process(pipeline):
        total_images = source.num_examples(config.split)
        local_teacher = WorkerTeacher.acquire(teachers, teacher_dir, total_images)
        metadata = local_teacher.predictor.metadata
    else:
        _, metadata = export.load_export(teacher_dir)
    commit.check_replaceable(config.output_dir)
    # Every digits variant (per_class=, unlabeled_shift=) keeps the pool's ids and true labels.
    truth = digits_withheld_labels() if isinstance(source, DigitsSource) and config.split == "unlabeled" else None
    settings = {
        "input": config.input,
        "split": config.split,
        "teacher": teacher_dir,
        "num_classes": int(metadata["num_classes"]),
        "class_names": metadata.get("class_names"),
        "resolution": int(metadata["input"]["resolution"]),
        "confidence_threshold": config.confidence_threshold,
        "images_per_class_flag": config.images_per_class,
        "label_type": config.label_type,
        "temperature": config.temperature,
    }
    return _Job(config, source, settings, truth, teachers, total_images, local_teacher)


def build_pipeline(
    pipeline: beam.Pipeline,
    config: LabelingConfig,
    *,
    work_dir: str,
    settings: dict[str, Any],
    truth: dict[str, int] | None,
    num_read_shards: int,
    teachers: shared.Shared,
    total_images: int | None = None,
    spread_images: bool = True,
) -> None:
    """Adds the labeling job to `pipeline`, writing into `work_dir`; the
    corpus is read in `num_read_shards` parallel parts (its images spread over
    the workers with `spread_images`, `read.ReadImages`), and each worker process
    labels with its teacher of `teachers`. `total_images`, when given, is the
    corpus size, for the ETA of the labeling progress line."""
    num_classes = settings["num_classes"]
    threshold = config.confidence_threshold

    batches = pipeline | "Read" >> ReadImages(
        config.input, config.split, config.data_dir, num_read_shards, config.batch_size, spread=spread_images
    )
    labeled = batches | "Label" >> LabelImages(settings["teacher"], config.temperature, teachers, total_images)
    # Without defaults: a job labels at least one batch (the launcher checked
    # the corpus has an image), so the combine needs no output for an empty
    # input, and leaving that out saves it several transforms and a stage.
    summary = (
        labeled.labeled
        | "Stats" >> beam.CombineGlobally(stats.LabelingStatsFn(num_classes, truth, threshold)).without_defaults()
    )
    kept = labeled.labeled | "Threshold" >> beam.FlatMap(_confident, threshold)
    finish = {"summary": beam.pvalue.AsSingleton(summary), "failures": beam.pvalue.AsList(labeled[FAILED])}

    if config.images_per_class == 0:
        serialized = kept | "Serialize" >> beam.Map(_serialize, config.label_type)
        finish |= {"images_per_class": 0, "balanced": None}
    else:
        if config.images_per_class == balance.AUTO:
            images_per_class = beam.pvalue.AsSingleton(
                summary
                | "AutoK"
                >> beam.Map(lambda s: balance.auto_images_per_class(sum(s["after_filtering"]["counts"]), num_classes))
            )
        else:
            images_per_class = int(config.images_per_class)
        spill_dir = os.path.join(work_dir, SPILL_DIR)
        selection = (
            kept
            | "Spill" >> beam.ParDo(SpillRecordsFn(spill_dir, config.label_type))
            | "GroupByClass" >> beam.GroupByKey()
            | "TopK" >> beam.ParDo(_select_class, k=images_per_class).with_outputs(BALANCED, main="selected")
        )
        serialized = (
            selection.selected
            | "GroupBySpillFile" >> beam.GroupByKey()
            | "ReadSelected" >> beam.FlatMap(_read_selected, spill_dir)
        )
        finish |= {"images_per_class": images_per_class, "balanced": beam.pvalue.AsList(selection[BALANCED])}

    if config.num_shards:
        _ = serialized | "WriteRecords" >> WriteShards(work_dir, config.num_shards)
    else:
        parts_dir = os.path.join(work_dir, PARTS_DIR)
        bundle_files = serialized | "WriteRecords" >> beam.ParDo(WriteBundleFilesFn(parts_dir))
        finish["bundle_files"] = beam.pvalue.AsList(bundle_files)
    (
        pipeline
        | "Finish" >> beam.Create([None])
        | "Finalize" >> beam.Map(_finish, work_dir=work_dir, settings=settings, num_classes=num_classes, **finish)
    )


def _finish(
    unused, *, work_dir, settings, num_classes, summary, failures, images_per_class, balanced, bundle_files=None
):
    """The job's last step, once everything else is done: the records' final
    names (`--num_shards=0`), failures.jsonl and, last, stats.json."""
    if bundle_files is not None:
        write.name_bundle_files(bundle_files, os.path.join(work_dir, PARTS_DIR), work_dir)
    lines = [json.dumps(failure, sort_keys=True) + "\n" for failure in sorted(failures, key=lambda f: f["id"])]
    fileio.write_bytes(outputs.failures_path(work_dir), "".join(lines).encode())
    document = stats.assemble(
        settings=settings,
        before=summary["before"],
        after_filtering=summary["after_filtering"],
        balanced=None if balanced is None else stats.balanced_counts(balanced, num_classes),
        images_per_class=images_per_class,
        num_failures=summary["num_failures"],
    )
    fileio.write_json(outputs.stats_path(work_dir), document)


# ------------------------------------------------------------------ element functions
# After labeling, an element is a batch of images (inference.LabeledBatch) or
# a list of serialized records: Beam's cost per element is paid per batch.

BALANCED = "balanced"  # tag of TopK's per-class counts
RECORDS_PER_ELEMENT = 256  # serialized records per element between the spill files and the writer


def _confident(batch: LabeledBatch, threshold: float):
    """The batch's images whose top-1 confidence passes the threshold, if any."""
    _, confidences = batch.top1()
    kept = batch.subset(balance.passes_threshold(confidences, threshold))
    if len(kept):
        yield kept


def _serialize(batch: LabeledBatch, label_type: str) -> list[bytes]:
    written = targets.written_probabilities(batch.probabilities, label_type)
    return [records.encode_pseudo_label(encoded, row) for encoded, row in zip(batch.encoded, written, strict=True)]


def _select_class(label_and_candidates, k: int):
    """One class's selection, its top k duplicated to k: `(spill file, [(index, copies), ...])`
    for each file holding selected records, and `(label, images selected,
    records)` tagged BALANCED for the stats."""
    label, candidate_lists = label_and_candidates
    selection = balance.balance_class(itertools.chain.from_iterable(candidate_lists), k)
    by_file = collections.defaultdict(list)
    for (_, _, name, index), copies in selection:
        by_file[name].append((index, copies))
    yield from by_file.items()
    yield beam.pvalue.TaggedOutput(BALANCED, (label, len(selection), sum(copies for _, copies in selection)))


class SpillRecordsFn(beam.DoFn):
    """Writes each kept record, serialized as it will be output, to a file of
    its bundle (`write.BundleFile`); yields, per batch and predicted class,
    `(class, [(id, confidence, file name, index in the file), ...])`: the
    candidates the per-class selection ranks, each with where its record is.
    """

    def __init__(self, spill_dir: str, label_type: str):
        self._spill_dir, self._label_type = spill_dir, label_type

    def start_bundle(self):
        self._file = write.BundleFile(self._spill_dir)

    def process(self, batch: LabeledBatch):
        start = self._file.write(_serialize(batch, self._label_type))
        labels, confidences = batch.top1()
        candidates = collections.defaultdict(list)
        for index, (example_id, label, confidence) in enumerate(
            zip(batch.ids, labels.tolist(), confidences.tolist(), strict=True), start
        ):
            candidates[label].append((example_id, confidence, self._file.name, index))
        yield from candidates.items()

    def finish_bundle(self):
        self._file.close()


def _read_selected(name_and_selected, spill_dir: str):
    """Streams one spill file in order, yielding its selected records, each
    `copies` times: a list per RECORDS_PER_ELEMENT records read."""
    name, selected = name_and_selected
    copies_at = collections.Counter()
    for index_and_copies in selected:
        for index, copies in index_and_copies:
            copies_at[index] += copies
    # Read a list of records at a time: tf.data's cost per element is tens of microseconds.
    spill = tf.data.TFRecordDataset(os.path.join(spill_dir, name)).take(max(copies_at) + 1)
    start = 0
    for records_read in spill.batch(RECORDS_PER_ELEMENT).as_numpy_iterator():
        chunk = []
        for index, serialized in enumerate(records_read, start):
            chunk.extend([serialized] * copies_at.get(index, 0))
        start += len(records_read)
        if chunk:
            yield chunk
