"""Images/s of the Beam labeling job against a bare predict loop, same images, same model, same run.

Two configurations (docs/platform.md#this-machine has the machine's reference speeds):
  --config=tiny  2,000 32 px images, EfficientNet-B0 at width/depth 0.25, small_images
  --config=b0    224 px images, the full EfficientNet-B0 (random weights: speed only)

The images are synthetic, smooth and JPEG-encoded, written as one
ImageNet-format TFRecord file in a temporary directory, so every contender
reads and decodes the same bytes. All contenders load the export the same
way (`Predictor.from_export`, counted in their time) and use the same batch
size and the same eval preprocessing (`preprocessing.eval_image` via
`Predictor.views_of_encoded`), and all of them do the job's whole work:
the confidence threshold is 0 (`THRESHOLD`), so that every image goes
through the filter, the per-class balancing and into a written record (a
model with random weights would pass no image at the default 0.3, and the
job would end at its statistics). They differ only in what drives the work:

  beam           `run_labeling`: the whole job as users run it (read,
                 label, filter, balance, write records and stats) on the
                 local FnApiRunner, model loaded inside the job.
  bare predict   a plain loop: read records, preprocess, Keras
                 `model.predict(images, batch_size=B)`, then the same
                 filtering and balancing (`balance.filter_and_balance`, the
                 job's own pure functions) and the same records written to
                 one file, all in memory in this process.
  bare compiled  the same loop calling `Predictor.logits` (the frozen,
                 fixed-signature forward pass every consumer uses) instead
                 of `model.predict`: the job with Beam taken away, so
                 beam/compiled is Beam's overhead alone.

The contenders alternate for `--repeats` rounds (machine-load drift hits all
of them) and the median time is reported. Ratios are beam / bare.

Each contender also labels a corpus `--scale` times larger in the same rounds.
The whole-job ratio at the default size weighs Beam's fixed cost per job
(building and translating the job graph, running its ten stages: about half
a second whatever the corpus) against a job of a few seconds; the per-image
ratio, `(large - small images) / (large - small seconds)` of each contender,
is what a corpus of millions of images sees. Both are printed, with the fixed
cost that the per-image rates imply. The per-image figures are also given in
CPU time of this process (user + system), which other tenants of a shared
machine disturb less than wall time: a difference of two times is noisier
than either time.

`--memory_check` runs the whole job on 2,000 and on 20,000 tiny images, each in
its own subprocess, and prints each one's peak RSS (with every image kept, as
above: the worst case for memory).

Usage:
  python benchmarks/label.py --config=tiny
  python benchmarks/label.py --config=b0
  python benchmarks/label.py --memory_check
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags, logging  # noqa: E402

import efficientnet  # noqa: E402
from efficientnet.data import records  # noqa: E402
from efficientnet.model import export  # noqa: E402
from efficientnet.model.inference import Predictor  # noqa: E402
from efficientnet.util.cli import run  # noqa: E402
from pseudolabel import balance  # noqa: E402
from pseudolabel.pipeline import LabelingConfig, run_labeling  # noqa: E402
from pseudolabel.targets import soft_probabilities  # noqa: E402

# name: (model overrides, image side, default number of images, default batch size)
CONFIGS = {
    "tiny": (dict(num_classes=10, width=0.25, depth=0.25, resolution=32, small_images=True), 32, 2000, 64),
    "b0": (dict(num_classes=1000), 224, 256, 32),
}
MEMORY_CHECK_SIZES = (2_000, 20_000)
THRESHOLD = 0.0  # every image is kept, balanced and written, in every contender

FLAGS = flags.FLAGS
# Flags only when run as a script: benchmarks/gpu.py imports the helpers below and has flags of its own.
if __name__ == "__main__":
    flags.DEFINE_enum("config", "tiny", list(CONFIGS), "Which model and image size.")
    flags.DEFINE_integer("num_images", None, "Images in the corpus (default: 2000 tiny, 256 b0).")
    flags.DEFINE_integer("batch_size", None, "Batch size for every contender (default: 64 tiny, 32 b0).")
    flags.DEFINE_integer("repeats", 3, "Timed rounds; each runs every contender once on each corpus.")
    flags.DEFINE_integer("scale", 4, "The second corpus holds this many times the images.", lower_bound=2)
    flags.DEFINE_bool("memory_check", False, "Peak RSS of the job at 2,000 and 20,000 tiny images.")
    flags.DEFINE_string("memory_child", None, "Internal: WORK_DIR of one memory-check job.")
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic images.")


def synthetic_image(rng: np.random.Generator, side: int) -> np.ndarray:
    """A smooth colour ramp with one flat rectangle: compresses like a photo, not like noise."""
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * x + np.sin(angle) * y
    start, end = rng.uniform(0, 255, size=(2, 3))
    image = start + (end - start) * ((ramp - ramp.min()) / np.ptp(ramp))[..., None]
    top, left = rng.integers(0, side // 2, size=2)
    image[top : top + side // 3, left : left + side // 3] = rng.uniform(0, 255, size=3)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_corpus(path: str, num_images: int, side: int, seed: int) -> None:
    """ImageNet-format records (`image/encoded` JPEG, `image/class/label` 0)."""
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(num_images):
            encoded = tf.io.encode_jpeg(synthetic_image(rng, side), quality=90).numpy()
            feature = {
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def make_export(directory: str, overrides: dict) -> str:
    model = efficientnet.build_model("efficientnet-b0", **overrides)
    export.save_export(
        directory, model, efficientnet.model_config("efficientnet-b0", **overrides), class_names=None, extra={}
    )
    return directory


def read_encoded(path: str) -> list[bytes]:
    encoded = []
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
        encoded.append(tf.train.Example.FromString(record).features.feature["image/encoded"].bytes_list.value[0])
    return encoded


def bare(corpus: str, export_dir: str, batch_size: int, output_path: str, *, compiled: bool) -> int:
    """Read, preprocess, predict, then filter, balance and write; returns the number of images labeled."""
    teacher = Predictor.from_export(export_dir)
    encoded = read_encoded(corpus)
    batches = [
        teacher.views_of_encoded(encoded[start : start + batch_size])[0] for start in range(0, len(encoded), batch_size)
    ]
    if compiled:
        probabilities = np.concatenate([soft_probabilities(teacher.logits(images)) for images in batches])
    else:
        probabilities = soft_probabilities(teacher.model.predict(np.concatenate(batches), batch_size, verbose=0))
    write_records(encoded, probabilities, output_path)
    return len(probabilities)


def write_records(encoded: list[bytes], probabilities: np.ndarray, path: str) -> None:
    """What the job does after labeling, in memory: filter, balance, serialize, write one file."""
    labels, confidences = np.argmax(probabilities, axis=1), np.max(probabilities, axis=1)
    predictions = [(str(i), int(label), float(c)) for i, (label, c) in enumerate(zip(labels, confidences, strict=True))]
    copies, _ = balance.filter_and_balance(
        predictions, confidence_threshold=THRESHOLD, images_per_class=balance.AUTO, num_classes=probabilities.shape[1]
    )
    with tf.io.TFRecordWriter(path) as writer:
        for example_id, count in copies.items():
            record = records.encode_pseudo_label(encoded[int(example_id)], probabilities[int(example_id)])
            for _ in range(count):
                writer.write(record)


def beam_job(corpus: str, export_dir: str, batch_size: int, output_dir: str) -> int:
    stats = run_labeling(
        LabelingConfig(
            input=f"tfrecord:{corpus}",
            teacher=export_dir,
            output_dir=output_dir,
            batch_size=batch_size,
            num_shards=0,  # the default: no shuffle of the records
            confidence_threshold=THRESHOLD,
        )
    )
    return stats["num_images"]


def speed(work_dir: str) -> None:
    overrides, side, default_images, default_batch = CONFIGS[FLAGS.config]
    num_images = FLAGS.num_images or default_images
    sizes = (num_images, num_images * FLAGS.scale)
    batch_size = FLAGS.batch_size or default_batch
    corpora = {size: os.path.join(work_dir, f"corpus-{size}.tfrecord") for size in sizes}
    for size, corpus in corpora.items():
        write_corpus(corpus, size, side, FLAGS.seed)
    export_dir = make_export(os.path.join(work_dir, "export"), overrides)
    records_path = os.path.join(work_dir, "bare.tfrecord")
    contenders = {
        "beam": lambda corpus: beam_job(corpus, export_dir, batch_size, os.path.join(work_dir, "out")),
        "bare predict": lambda corpus: bare(corpus, export_dir, batch_size, records_path, compiled=False),
        "bare compiled": lambda corpus: bare(corpus, export_dir, batch_size, records_path, compiled=True),
    }
    for function in contenders.values():  # warm-up: TF/Beam imports, thread pools, first traces
        function(corpora[sizes[0]])
    seconds = {(name, size): [] for name in contenders for size in sizes}
    cpu_seconds = {(name, size): [] for name in contenders for size in sizes}
    for _ in range(FLAGS.repeats):
        for size in sizes:
            for name, function in contenders.items():
                start, start_cpu = time.perf_counter(), cpu_time()
                labeled = function(corpora[size])
                seconds[(name, size)].append(time.perf_counter() - start)
                cpu_seconds[(name, size)].append(cpu_time() - start_cpu)
                if labeled != size:
                    raise RuntimeError(f"{name} labeled {labeled} of {size} images")
    median = {key: statistics.median(times) for key, times in seconds.items()}
    median_cpu = {key: statistics.median(times) for key, times in cpu_seconds.items()}
    small, large = sizes
    print(
        f"config {FLAGS.config}: {small} and {large} images of {side} px, efficientnet-b0 {overrides}, "
        f"batch {batch_size}, median of {FLAGS.repeats}"
    )
    whole = {name: small / median[(name, small)] for name in contenders}
    per_image = {name: (large - small) / (median[(name, large)] - median[(name, small)]) for name in contenders}
    per_image_cpu = {
        name: (large - small) / (median_cpu[(name, large)] - median_cpu[(name, small)]) for name in contenders
    }
    for name in contenders:
        times = "; ".join(f"{size}: " + ", ".join(f"{t:.2f}" for t in seconds[(name, size)]) for size in sizes)
        fixed = median[(name, small)] - small / per_image[name]
        print(
            f"  {name:<14} {whole[name]:7.1f} img/s whole job at {small}, {per_image[name]:7.1f} img/s per image "
            f"({per_image_cpu[name]:6.1f} per CPU-s), fixed {fixed:5.2f} s   ({times} s)"
        )
    for bare_name in ("bare predict", "bare compiled"):
        print(
            f"  ratio beam/{bare_name:<13} whole job {whole['beam'] / whole[bare_name]:.2f}, "
            f"per image {per_image['beam'] / per_image[bare_name]:.2f} "
            f"(in CPU time {per_image_cpu['beam'] / per_image_cpu[bare_name]:.2f})"
        )


def cpu_time() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory_child(work_dir: str) -> None:
    """One job on WORK_DIR/corpus.tfrecord; prints its peak RSS as JSON."""
    _, _, _, batch_size = CONFIGS["tiny"]
    corpus = os.path.join(work_dir, "corpus.tfrecord")
    labeled = beam_job(corpus, os.path.join(work_dir, "export"), batch_size, os.path.join(work_dir, "out"))
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"num_images": labeled, "peak_rss_mib": peak_kib / 1024}))


def memory_check(work_dir: str) -> None:
    overrides, side, _, _ = CONFIGS["tiny"]
    export_dir = make_export(os.path.join(work_dir, "export"), overrides)
    print(f"peak RSS of the labeling job (tiny model, {side} px JPEGs, confidence_threshold=0, own subprocess each)")
    for num_images in MEMORY_CHECK_SIZES:
        child_dir = os.path.join(work_dir, str(num_images))
        os.makedirs(child_dir)
        os.symlink(export_dir, os.path.join(child_dir, "export"))
        write_corpus(os.path.join(child_dir, "corpus.tfrecord"), num_images, side, FLAGS.seed)
        start = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, os.path.abspath(__file__), f"--memory_child={child_dir}"],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"memory-check job failed:\n{completed.stderr[-3000:]}")
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        print(
            f"  {result['num_images']:>6} images: peak RSS {result['peak_rss_mib']:7.1f} MiB "
            f"({time.perf_counter() - start:.1f} s)"
        )


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    with tempfile.TemporaryDirectory() as work_dir:
        if FLAGS.memory_child:
            memory_child(FLAGS.memory_child)
        elif FLAGS.memory_check:
            memory_check(work_dir)
        else:
            speed(work_dir)


if __name__ == "__main__":
    run(main)
