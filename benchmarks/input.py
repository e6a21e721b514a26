"""The training input pipeline at ImageNet sizes: images/s per core, peak memory, and per-worker rate.

A run at 224 px spends its CPU on the input: every image is read, decoded,
cropped, resized and (for a student) RandAugmented before the accelerator sees
it. This script measures `input_pipeline.train_dataset` against the pipeline
it replaced (`today_dataset` below: decode every image, then shuffle decoded
pixels), same images, same run, on synthetic photo-like JPEGs of 500×375
(ImageNet's typical size, about 100 KiB each at quality 90, as photos are;
benchmarks/photos.py) stored three ways: a class folder (`folder:`),
ImageNet-format TFRecords and pseudo-label TFRecords (`tfrecord:`). What each
part tells a user of a real run:

  throughput   images/s at batch 32, 224 px, from the folder and from
               TFRecords: decoding alone (`Source.examples`), the training
               view (crop + flip) and the student's (crop + flip +
               RandAugment N=2 M=15), today's pipeline against the new one.
               Per core twice: img/s divided by the cores this process may
               use, and images per CPU second of this process, which other
               load on a shared machine hardly moves (the first counts only
               the share of the cores the process got; the output says how
               much that was). The ratios new/today are what changed.
  cores        how many such cores one GPU needs to be fed with RandAugment at
               3,454 img/s, NVIDIA's published EfficientNet-B0 training rate on
               an A100 with AMP + XLA (docs/platform.md, speeds measured
               elsewhere): whether a host's own CPUs suffice or the tf.data
               service is needed (docs/training.md#tfdata-service).
  workers      the rate of worker 0 of a 2-worker run (InputContext(2, 0, 2))
               against a single worker, per-replica batch 32, crop + flip:
               today's pipeline reads and decodes everything and keeps its
               slices, `input_sharding="files"` reads only its own files,
               `"exact"` reads every record but decodes only its slices
               (docs/training.md#input-sharding). A ratio near 1 means that
               each added worker adds a worker's worth of input.
  rss          peak resident memory of a student's input at the default
               settings (TrainConfig: labeled batch 256 from the folder,
               unlabel_ratio 3 → 768 pseudo-labeled from TFRecords,
               RandAugment at the student's defaults, a shuffle buffer of
               `input_pipeline.DEFAULT_SHUFFLE_BUFFER` per stream), each
               contender in its own process: the host memory the input
               needs beside the model. The first step fills both buffers;
               RSS after each step is printed, as it goes on rising after
               the buffers are full (the prefetch buffers grow by whole
               batches, and glibc's per-thread arenas fragment under the
               churn of 100 KiB records), and the new contender runs twice,
               as its peak moves between runs. Today's buffers hold decoded
               pixels (about 580 KiB per 500×375 image, measured), 13.7 GiB
               at the defaults: it runs at `--baseline_rss_buffer` and at a
               tenth of it, and the growth per buffered image gives its
               extrapolated peak at the default.

The timing passes use a shuffle buffer of `--shuffle_buffer` (1,000), not the
default 10,000, so that filling it (today's pipeline decodes every buffered
image first) costs seconds; each pass builds a fresh iterator and its clock
starts at its first batch, so the fill is not counted, and the rate of a
pipeline does not depend on its buffer's size once it is full. A warm-up pass
per contender (tracing, thread pools) is not counted; the timed passes
alternate the contenders' order, so that drifts in machine load hit them
all. Rates are medians of `--repeats` passes; a ratio is the median of its
per-round ratios, so that drift between rounds cancels.

The data is generated once into `--work_dir` (about a minute and 3 GB) and
reused by later runs with the same `--num_images`, `--num_files` and `--seed`.

Usage:
  python benchmarks/input.py                                                    # about 7 minutes on 2 cores
  python benchmarks/input.py --parts=throughput,workers --images_per_pass=320   # quicker
  python benchmarks/input.py --parts=rss --baseline_rss_buffer=10000            # today measured directly, 14 GiB
"""

from __future__ import annotations

import dataclasses
import datetime
import glob
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# The repository root, for `efficientnet`; `photos` is this file's neighbour (Python
# puts this file's folder first on sys.path when it runs as a script).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags, logging  # noqa: E402
from photos import encode_jpeg, photo  # noqa: E402

from efficientnet.data import datasets, input_pipeline, preprocessing, records  # noqa: E402
from efficientnet.data.randaugment import RandAugment  # noqa: E402
from efficientnet.data.source import Source  # noqa: E402
from efficientnet.data.tfrecord_source import write_dataset_info  # noqa: E402
from efficientnet.train.config import STUDENT_DEFAULTS, TrainConfig  # noqa: E402
from efficientnet.util.cli import run  # noqa: E402

PHOTO_HEIGHT, PHOTO_WIDTH = 375, 500  # a typical ImageNet training image
JPEG_QUALITY = 90
NUM_CLASSES = 4
# NVIDIA DeepLearningExamples, TensorFlow 2 EfficientNet-B0, 1× A100-80GB, AMP + XLA
# training (docs/platform.md, speeds measured elsewhere).
GPU_IMAGES_PER_SECOND = 3454
CORPUS_FILE = "corpus.json"  # written last: its presence means the data is complete
PARTS = ("throughput", "workers", "rss")
GIB = 2**30
MIB = 2**20

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "work_dir",
    os.path.join(tempfile.gettempdir(), "efficientnet-input-benchmark"),
    "Where the generated images and records live; reused when complete and made with the same flags.",
)
flags.DEFINE_integer(
    "num_images",
    10_240,
    "Images generated (each stored three ways); at least the default shuffle buffer, so that the RSS part fills it.",
    lower_bound=64,
)
flags.DEFINE_integer("num_files", 16, "TFRecord files of each format.", lower_bound=2)
flags.DEFINE_list("parts", list(PARTS), f"Which measurements to run, of {list(PARTS)}.")
flags.DEFINE_integer("batch_size", 32, "Per-replica batch of the throughput and workers parts.")
flags.DEFINE_integer("resolution", 224, "Training resolution.")
flags.DEFINE_integer("shuffle_buffer", 1_000, "Shuffle buffer of the timing passes (not of the RSS part).")
flags.DEFINE_integer("images_per_pass", 960, "Images timed per pass, after its first batch.")
flags.DEFINE_integer("repeats", 5, "Timed passes per contender, alternating their order.")
flags.DEFINE_integer("num_layers", 2, "RandAugment N of the throughput part.")
flags.DEFINE_float("magnitude", 15.0, "RandAugment M of the throughput part.")
flags.DEFINE_integer(
    "baseline_rss_buffer",
    1_000,
    "Shuffle buffer per stream of today's contender in the RSS part; its peak at the default buffer is "
    "extrapolated unless this is at least the default (which needs ~14 GiB).",
)
flags.DEFINE_integer("rss_steps", 5, "Steps pulled in the RSS part after the first (which fills the buffers).")
flags.DEFINE_integer("rss_repeats", 2, "Runs of the new contender in the RSS part (its peak varies).", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the images, shuffles, crops and augmentation.")
flags.DEFINE_string("rss_child", None, "Internal: run one RSS contender, 'today:BUFFER' or 'new:BUFFER'.")


# ---------------------------------------------------------------------------------------------
# Data


def corpus_paths(work_dir: str) -> dict[str, str]:
    """The folders of the three stores of the same images."""
    return {
        "folder": os.path.join(work_dir, "folder"),
        "imagenet": os.path.join(work_dir, "imagenet"),
        "pseudo": os.path.join(work_dir, "pseudo"),
    }


def source_specs(work_dir: str) -> dict[str, str]:
    """Dataset specs (efficientnet/data/datasets.py) of the three stores."""
    paths = corpus_paths(work_dir)
    return {
        "folder": f"folder:{paths['folder']}",
        "tfrecord": f"tfrecord:{os.path.join(paths['imagenet'], 'train-*')}",
        "pseudo": f"tfrecord:{os.path.join(paths['pseudo'], 'pseudo-*')}",
    }


def corpus_settings() -> dict:
    return {
        "num_images": FLAGS.num_images,
        "num_files": FLAGS.num_files,
        "seed": FLAGS.seed,
        "height": PHOTO_HEIGHT,
        "width": PHOTO_WIDTH,
        "quality": JPEG_QUALITY,
        "num_classes": NUM_CLASSES,
    }


def ensure_corpus(work_dir: str) -> tuple[dict, bool]:
    """The corpus's description (settings, sizes), generating it unless a complete one matches; and whether reused."""
    marker = os.path.join(work_dir, CORPUS_FILE)
    settings = corpus_settings()
    if os.path.exists(marker):
        with open(marker) as file:
            corpus = json.load(file)
        if all(corpus.get(key) == value for key, value in settings.items()):
            return corpus, True
    corpus = settings | write_corpus(work_dir)
    with open(marker, "w") as file:
        json.dump(corpus, file, indent=1)
    return corpus, False


def write_corpus(work_dir: str) -> dict:
    """Writes every image as a JPEG file in a class folder, an ImageNet-format record and a pseudo-label record.

    Image i is class i mod 4 and goes to file i mod `num_files` of each
    format; its pseudo-label is a soft distribution peaked at its class.
    """
    paths = corpus_paths(work_dir)
    for path in [*paths.values(), os.path.join(work_dir, CORPUS_FILE)]:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    class_names = [f"class_{label}" for label in range(NUM_CLASSES)]
    for name in class_names:
        os.makedirs(os.path.join(paths["folder"], name))
    os.makedirs(paths["imagenet"])
    os.makedirs(paths["pseudo"])
    num_files = FLAGS.num_files
    file_names = [f"{index:05d}-of-{num_files:05d}" for index in range(num_files)]
    imagenet = [tf.io.TFRecordWriter(os.path.join(paths["imagenet"], f"train-{name}")) for name in file_names]
    pseudo = [tf.io.TFRecordWriter(os.path.join(paths["pseudo"], f"pseudo-{name}")) for name in file_names]
    rng, label_rng = np.random.default_rng(FLAGS.seed), np.random.default_rng(FLAGS.seed + 1)
    total_bytes = 0
    start = time.perf_counter()
    for index in range(FLAGS.num_images):
        label = index % NUM_CLASSES
        encoded = encode_jpeg(photo(rng, PHOTO_HEIGHT, PHOTO_WIDTH, texture=1.0), JPEG_QUALITY)
        total_bytes += len(encoded)
        with open(os.path.join(paths["folder"], class_names[label], f"{index:06d}.jpg"), "wb") as file:
            file.write(encoded)
        logits = label_rng.normal(size=NUM_CLASSES) + 3.0 * np.eye(NUM_CLASSES)[label]
        probabilities = np.exp(logits) / np.exp(logits).sum()
        imagenet[index % num_files].write(records.encode_labeled(encoded, label))
        pseudo[index % num_files].write(records.encode_pseudo_label(encoded, probabilities))
    for writer in imagenet + pseudo:
        writer.close()
    counts = {f"train-{name}": len(range(index, FLAGS.num_images, num_files)) for index, name in enumerate(file_names)}
    write_dataset_info(paths["imagenet"], NUM_CLASSES, class_names, counts)
    return {"mean_jpeg_bytes": total_bytes / FLAGS.num_images, "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------------------------------------
# Pipelines


def today_dataset(
    source: Source,
    *,
    batch_size: int,
    resolution: int,
    seed: int,
    augment=None,
    shuffle_buffer: int,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """The training input before records were shuffled (for comparison only): decode, then shuffle pixels.

    Every image is decoded whole as it is read (`Source.examples`), the
    shuffle buffer holds decoded pixels, and a worker of several reads and
    decodes the whole stream, keeping its replicas' slices of every global
    batch. Same per-example seeds as `train_dataset` with one worker.
    """
    context = input_context or tf.distribute.InputContext()
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local
    per_replica = context.get_per_replica_batch_size(batch_size)
    examples = source.examples(None, shuffle_files=True, seed=seed)
    examples = examples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True).repeat().enumerate()
    if local < replicas:

        def in_local_slices(index, example):
            replica = index // per_replica % replicas
            return (replica >= first) & (replica < first + local)

        examples = examples.filter(in_local_slices)

    def preprocess(index, example):
        example_seed = tf.stack([tf.constant(seed, tf.int64), index])
        crop_seed, augment_seed = tf.unstack(tf.random.experimental.stateless_split(example_seed, 2))
        image = preprocessing.train_image(example["image"], resolution, crop_seed, random_flip=True)
        if augment is not None:
            image = tf.cast(augment(preprocessing.to_uint8(image), augment_seed), tf.float32)
        return example | {"image": image}

    examples = examples.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return examples.batch(per_replica, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def new_dataset(source: Source, *, input_sharding: str = "files", **settings) -> tf.data.Dataset:
    """`input_pipeline.train_dataset`, the pipeline under test (random flip on, as today's)."""
    return input_pipeline.train_dataset(source, None, input_sharding=input_sharding, **settings)


def decode_only(source: Source, batch_size: int, seed: int) -> tf.data.Dataset:
    """Whole-image decoding alone: `Source.examples`, each image reduced to its shape so that batching is free."""
    examples = source.examples(None, shuffle_files=True, seed=seed).repeat()
    shapes = examples.map(lambda example: tf.shape(example["image"]), num_parallel_calls=tf.data.AUTOTUNE)
    return shapes.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def timing_contenders(sources: dict[str, Source]) -> dict[tuple[str, str], tf.data.Dataset]:
    """(source, contender) → endless batches, for the throughput and workers parts."""
    augment = RandAugment(num_layers=FLAGS.num_layers, magnitude=FLAGS.magnitude)
    single = dict(
        batch_size=FLAGS.batch_size, resolution=FLAGS.resolution, seed=FLAGS.seed, shuffle_buffer=FLAGS.shuffle_buffer
    )
    # Worker 0 of 2, one replica each: the global batch is two per-replica batches.
    of_two = single | dict(batch_size=2 * FLAGS.batch_size, input_context=tf.distribute.InputContext(2, 0, 2))
    parts = set(FLAGS.parts)
    contenders = {}
    for name, source in sources.items():
        if "throughput" in parts:
            contenders[(name, "decode")] = decode_only(source, FLAGS.batch_size, FLAGS.seed)
        contenders[(name, "today crop")] = today_dataset(source, **single)
        contenders[(name, "new crop")] = new_dataset(source, **single)
        if "throughput" in parts:
            contenders[(name, "today randaugment")] = today_dataset(source, augment=augment, **single)
            contenders[(name, "new randaugment")] = new_dataset(source, augment=augment, **single)
        if "workers" in parts:
            contenders[(name, "today 0 of 2")] = today_dataset(source, **of_two)
            contenders[(name, "files 0 of 2")] = new_dataset(source, input_sharding="files", **of_two)
            contenders[(name, "exact 0 of 2")] = new_dataset(source, input_sharding="exact", **of_two)
    return contenders


@dataclasses.dataclass(frozen=True)
class Pass:
    """One timed pass: images delivered, wall-clock seconds, and CPU seconds of this process (all threads)."""

    images: int
    seconds: float
    cpu_seconds: float


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed_pass(dataset: tf.data.Dataset, images: int) -> Pass:
    """`images` images from a fresh iterator, timed from its first batch on (which fills the shuffle buffer)."""
    iterator = iter(dataset)
    next(iterator)
    count, start, start_cpu = 0, time.perf_counter(), cpu_seconds()
    while count < images:
        batch = next(iterator)
        count += int((batch["image"] if isinstance(batch, dict) else batch).shape[0])
    return Pass(count, time.perf_counter() - start, cpu_seconds() - start_cpu)


def alternating_passes(contenders: dict, images: int, repeats: int) -> dict[tuple[str, str], list[Pass]]:
    """`repeats` passes of each contender; first a short untimed pass of each (tracing, thread pools),
    then rounds that alternate the contenders' order, so that drifts in machine load hit all of them."""
    for dataset in contenders.values():
        timed_pass(dataset, 2 * FLAGS.batch_size)
    print(f"warm-up done ({len(contenders)} contenders, not counted)", flush=True)
    passes = {key: [] for key in contenders}
    for repeat in range(repeats):
        order = list(contenders) if repeat % 2 == 0 else list(reversed(contenders))
        start = time.perf_counter()
        for key in order:
            passes[key].append(timed_pass(contenders[key], images))
        print(f"pass {repeat + 1} of {repeats} done ({time.perf_counter() - start:.0f} s)", flush=True)
    return passes


@dataclasses.dataclass(frozen=True)
class Rate:
    """A contender's passes as images per wall-clock second and per CPU second of this process, with medians."""

    walls: tuple[float, ...]
    cpus: tuple[float, ...]

    @classmethod
    def of(cls, passes: list[Pass]) -> Rate:
        return cls(tuple(p.images / p.seconds for p in passes), tuple(p.images / p.cpu_seconds for p in passes))

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)

    def ratio_to(self, other: Rate) -> tuple[float, float]:
        """Median over rounds of this rate / `other`'s in the same round (by wall clock, by CPU time):
        both ran minutes apart at most, so drifts in machine load between rounds cancel."""
        return (
            statistics.median(a / b for a, b in zip(self.walls, other.walls, strict=True)),
            statistics.median(a / b for a, b in zip(self.cpus, other.cpus, strict=True)),
        )


# ---------------------------------------------------------------------------------------------
# Peak RSS, one process per contender


def current_rss_bytes() -> int:
    with open("/proc/self/status") as file:
        for line in file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def rss_child(spec: str) -> None:
    """A student's two input streams (TrainConfig defaults) with contender `spec`; prints RSS figures as JSON."""
    contender, buffer = spec.split(":")
    config = TrainConfig(**STUDENT_DEFAULTS)
    specs = source_specs(FLAGS.work_dir)
    labeled, pseudo = datasets.open_source(specs["folder"]), datasets.open_source(specs["pseudo"])
    augment = RandAugment(num_layers=config.randaugment_layers, magnitude=config.randaugment_magnitude)
    build = today_dataset if contender == "today" else new_dataset
    before = current_rss_bytes()
    streams = [
        build(
            source, batch_size=size, resolution=FLAGS.resolution, seed=seed, augment=augment, shuffle_buffer=int(buffer)
        )
        for source, size, seed in (
            (labeled, config.batch_size, config.seed),
            (pseudo, config.unlabeled_batch_size(), config.seed + 1),
        )
    ]
    start = time.perf_counter()
    after_steps = []  # RSS after each step: the first fills both buffers
    for _ in tf.data.Dataset.zip(*streams).take(1 + FLAGS.rss_steps):
        after_steps.append(current_rss_bytes())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "before": before,
                "after_steps": after_steps,
                "peak": peak,
                "seconds": time.perf_counter() - start,
                "image_bytes": [stream.element_spec["image"].dtype.size for stream in streams],
            }
        )
    )


def measure_rss(spec: str) -> dict:
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--rss_child={spec}",
        f"--work_dir={FLAGS.work_dir}",
        f"--resolution={FLAGS.resolution}",
        f"--rss_steps={FLAGS.rss_steps}",
        f"--seed={FLAGS.seed}",
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"RSS contender {spec} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def rss_part(num_images: int) -> dict:
    """Peak RSS of each contender in its own process; today's extrapolated to the default buffer."""
    default = input_pipeline.DEFAULT_SHUFFLE_BUFFER
    config = TrainConfig(**STUDENT_DEFAULTS)
    held = min(default, num_images)
    print(
        f"\npeak RSS of a student's input, each contender in its own process: labeled stream from the folder "
        f"(batch {config.batch_size}) + pseudo-labeled stream from TFRecords (batch {config.unlabeled_batch_size()}, "
        f"unlabel_ratio {config.unlabel_ratio:g}), {FLAGS.resolution} px, RandAugment N={config.randaugment_layers} "
        f"M={config.randaugment_magnitude:g} (student defaults); the first step fills both buffers, then "
        f"{FLAGS.rss_steps} more",
        flush=True,
    )
    if num_images < default:
        print(f"  note: {num_images} images per stream, fewer than the buffer: it holds {held}, not {default}")
    results = {"new": []}
    pseudo_dir = corpus_paths(FLAGS.work_dir)["pseudo"]
    pixels = FLAGS.resolution**2 * 3
    baseline = FLAGS.baseline_rss_buffer
    # The new contender's peak moves between runs by a batch or more (when the prefetch buffers
    # grow, how the allocator's arenas fragment): it runs `--rss_repeats` times, first and last.
    runs = [("new", f"new:{default}"), ("today", f"today:{baseline}")]
    if baseline < default:
        runs.append(("today small", f"today:{max(1, baseline // 10)}"))
    runs += [("new", f"new:{default}")] * (FLAGS.rss_repeats - 1)
    for name, spec in runs:
        result = measure_rss(spec)
        buffer = int(spec.split(":")[1])
        result |= {"buffer": buffer, "held": min(buffer, num_images)}
        if name == "new":
            results["new"].append(result)
        else:
            results[name] = result
        steps = " ".join(f"{rss / GIB:.2f}" for rss in result["after_steps"])
        print(
            f"  {name.split()[0]:<5} buffer {buffer:>6,} per stream: peak {result['peak'] / GIB:5.2f} GiB; before the "
            f"input {result['before'] / GIB:.2f} GiB (TF imported, sources opened); after each step {steps} GiB "
            f"({result['seconds']:.0f} s)",
            flush=True,
        )
        if name == "new" and len(results["new"]) == 1:
            sizes = (config.batch_size, config.unlabeled_batch_size())
            step_bytes = sum(size * pixels * item for size, item in zip(sizes, result["image_bytes"], strict=True))
            names = {1: "uint8", 4: "float32"}
            batches = " + ".join(
                f"{size} {names.get(item, f'{item}-byte')}"
                for size, item in zip(sizes, result["image_bytes"], strict=True)
            )
            record = sum(os.path.getsize(path) for path in glob.glob(os.path.join(pseudo_dir, "pseudo-*")))
            record /= num_images
            print(
                f"        its buffers hold {held:,} file paths and {held:,} pseudo-label records of "
                f"{record / 1024:.0f} KiB: {held * record / GIB:.2f} GiB; the rest is batches in flight "
                f"({step_bytes / GIB:.2f} GiB a step: {batches} images of {FLAGS.resolution} px), decoding "
                "and TensorFlow's allocator",
                flush=True,
            )
    if "today small" in results:
        large, small = results["today"], results["today small"]
        buffered = 2 * (min(large["buffer"], num_images) - min(small["buffer"], num_images))
        # After the first step: buffers just filled, before the prefetch buffers grow (by whole batches).
        per_image = (large["after_steps"][0] - small["after_steps"][0]) / buffered
        extrapolated = large["peak"] + per_image * 2 * (held - min(large["buffer"], num_images))
        results["today extrapolated"] = extrapolated
        print(
            f"  today: {per_image / 1024:.0f} KiB per buffered image (RSS after the first step at buffer "
            f"{large['buffer']:,} less at {small['buffer']:,}, over {buffered:,} more images in two streams); "
            f"EXTRAPOLATED peak at {held:,} per stream: {extrapolated / GIB:.1f} GiB (not measured; "
            f"--baseline_rss_buffer={default} measures it)"
        )
    return results


# ---------------------------------------------------------------------------------------------
# Report


def cpu_model() -> str:
    with open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown CPU"


PIPELINES = {
    "decode": "decode only (whole image)",
    "today crop": "crop + flip, today",
    "new crop": "crop + flip, new",
    "today randaugment": "+ RandAugment, today",
    "new randaugment": "+ RandAugment, new",
    "today 0 of 2": "today (decodes everything)",
    "files 0 of 2": "new, input_sharding=files",
    "exact 0 of 2": "new, input_sharding=exact",
}


def rate_columns(rate: Rate, cores: int) -> str:
    passes = " ".join(f"{value:.0f}" for value in rate.walls)
    return f"{rate.wall:7.1f} img/s {rate.wall / cores:7.1f} per core {rate.cpu:7.1f} per CPU-s   (passes {passes})"


def throughput_report(rates: dict[tuple[str, str], Rate], cores: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Prints the throughput and cores-per-GPU tables; returns (source, kind) → new/today (per core, per CPU-s)."""
    names = sorted({name for name, _ in rates})
    print(
        f"\nthroughput, batch {FLAGS.batch_size}, {FLAGS.resolution} px, RandAugment N={FLAGS.num_layers} "
        f"M={FLAGS.magnitude:g}, median of {FLAGS.repeats} passes, ratios median of per-pass ratios "
        f"(per core = img/s / {cores} cores; per CPU-s = images per CPU second of this process)"
    )
    ratios = {}
    for name in names:
        for key in ("decode", "today crop", "new crop", "today randaugment", "new randaugment"):
            print(f"  {name:<9} {PIPELINES[key]:<26} {rate_columns(rates[(name, key)], cores)}")
            if key.startswith("new"):
                kind = key.split()[1]
                today, new = rates[(name, f"today {kind}")], rates[(name, key)]
                ratios[(name, kind)] = wall, cpu = new.ratio_to(today)
                print(f"  {'':<36} new/today {wall:.2f} per core, {cpu:.2f} per CPU-s")
    print(
        f"\ncores one GPU needs for {GPU_IMAGES_PER_SECOND:,} img/s (EfficientNet-B0 training, A100, AMP + XLA, "
        f"NVIDIA's figure) with RandAugment N={FLAGS.num_layers} M={FLAGS.magnitude:g}: "
        f"{GPU_IMAGES_PER_SECOND:,} / per CPU-s rate (by img/s per core in brackets)"
    )
    for name in names:
        needed = {
            pipeline: f"{GPU_IMAGES_PER_SECOND / rate.cpu:5.1f} ({GPU_IMAGES_PER_SECOND * cores / rate.wall:5.1f})"
            for pipeline in ("today", "new")
            for rate in [rates[(name, f"{pipeline} randaugment")]]
        }
        print(f"  {name:<9} today {needed['today']} cores, new {needed['new']} cores")
    return ratios


def workers_report(rates: dict[tuple[str, str], Rate], cores: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Prints the per-worker table; returns (source, mode) → 2 workers / 1 worker (img/s, per CPU-s)."""
    names = sorted({name for name, _ in rates})
    print(
        f"\nper-worker rate, crop + flip, per-replica batch {FLAGS.batch_size}: worker 0 of 2 (InputContext(2, 0, 2)) "
        "against one worker (crop + flip above; files and exact are one stream with one worker)"
    )
    ratios = {}
    for name in names:
        for mode, single in (("today", "today crop"), ("files", "new crop"), ("exact", "new crop")):
            one, two = rates[(name, single)], rates[(name, f"{mode} 0 of 2")]
            ratios[(name, mode)] = wall, cpu = two.ratio_to(one)
            print(f"  {name:<9} {PIPELINES[f'{mode} 0 of 2']:<26} {rate_columns(two, cores)}")
            print(f"  {'':<36} 2 workers / 1 worker {wall:.2f} img/s, {cpu:.2f} per CPU-s")
    return ratios


def summary(throughput: dict | None, workers: dict | None, rss: dict | None) -> None:
    def line(goal: str, figures: str, met: bool) -> None:
        print(f"  {goal:<52} {figures:<48} {'met' if met else 'NOT MET'}")

    print("\ngoals (per core: img/s / cores, as measured; per CPU-s in brackets)")
    if rss is not None:
        peaks = [run["peak"] for run in rss["new"]]
        figures = (
            " and ".join(f"{peak / GIB:.2f}" for peak in peaks)
            + f" GiB peak ({len(peaks)} run{'s' if len(peaks) > 1 else ''})"
        )
        goal = f"student's input, buffers of {rss['new'][0]['held']:,}: peak RSS <= 2 GiB"
        line(goal, figures, max(peaks) <= 2 * GIB)

    def ratio_line(goal: str, ratios: dict, kind: str, threshold: float) -> None:
        values = {name: ratio for (name, which), ratio in ratios.items() if which == kind}
        figures = ", ".join(f"{name} {wall:.3f} ({cpu:.3f})" for name, (wall, cpu) in values.items())
        line(goal, figures, min(wall for wall, _ in values.values()) >= threshold)

    if workers is not None:
        ratio_line("files mode: worker 0 of 2 / 1 worker >= 0.95", workers, "files", 0.95)
    if throughput is not None:
        ratio_line("crop + flip per core: new/today >= 1.3", throughput, "crop", 1.3)
        ratio_line("RandAugment per core: new/today >= 1.0", throughput, "randaugment", 1.0)


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.rss_child:
        rss_child(FLAGS.rss_child)
        return
    unknown = set(FLAGS.parts) - set(PARTS)
    if unknown:
        raise ValueError(f"--parts: unknown {sorted(unknown)}; choose from {list(PARTS)}")
    cores = len(os.sched_getaffinity(0))
    started = time.perf_counter()
    print(
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC | {cpu_model()} | {cores} cores | "
        f"TensorFlow {tf.__version__} | {FLAGS.num_images:,} synthetic JPEGs of {PHOTO_WIDTH}x{PHOTO_HEIGHT}, "
        f"{NUM_CLASSES} classes, as a class folder, {FLAGS.num_files} ImageNet-format and {FLAGS.num_files} "
        f"pseudo-label TFRecord files | load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    corpus, reused = ensure_corpus(FLAGS.work_dir)
    how = "reused" if reused else f"generated ({corpus['seconds']:.0f} s)"
    print(
        f"data: {how} in {FLAGS.work_dir}; mean JPEG {corpus['mean_jpeg_bytes'] / 1024:.1f} KiB at quality "
        f"{JPEG_QUALITY}",
        flush=True,
    )
    throughput = workers = rss = None
    timed = {"throughput", "workers"} & set(FLAGS.parts)
    if timed:
        specs = source_specs(FLAGS.work_dir)
        sources = {name: datasets.open_source(specs[name]) for name in ("folder", "tfrecord")}
        contenders = timing_contenders(sources)
        print(
            f"\ntiming {len(contenders)} pipelines: shuffle buffer {FLAGS.shuffle_buffer:,} (timing only; the default "
            f"is {input_pipeline.DEFAULT_SHUFFLE_BUFFER:,}, see the RSS part), {FLAGS.images_per_pass} images per pass "
            "from each fresh iterator's first batch on, contenders alternating",
            flush=True,
        )
        passes = alternating_passes(contenders, FLAGS.images_per_pass, FLAGS.repeats)
        used = sum(p.cpu_seconds for runs in passes.values() for p in runs)
        used /= sum(p.seconds for runs in passes.values() for p in runs)
        print(
            f"this process used {used:.1f} of its {cores} cores on average while timed: per core by img/s counts "
            "only that share of a core; per CPU-s, less disturbed by other load on the machine, does not"
        )
        rates = {key: Rate.of(runs) for key, runs in passes.items()}
        if "throughput" in FLAGS.parts:
            throughput = throughput_report(rates, cores)
        if "workers" in FLAGS.parts:
            workers = workers_report(rates, cores)
    if "rss" in FLAGS.parts:
        rss = rss_part(FLAGS.num_images)
    summary(throughput, workers, rss)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    run(main)
