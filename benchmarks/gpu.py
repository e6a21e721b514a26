"""The GPU figures in one run: mixed precision and XLA at a batch that fills the chip, and the labeling job.

  benchmarks/gpu.sh                          # B0, 224 px, batch 256, mixed_float16, XLA; 10,000 images labeled
  benchmarks/gpu.sh --batch_size=128 --output=/tmp/gpu_check.json
  benchmarks/gpu.sh --smoke                  # every code path on the CPU with tiny sizes (under a minute)

The other benchmarks ran on a 2-core CPU, where XLA makes both models slower
and mixed_float16 has no fast kernels, so they say nothing about the settings
a GPU run uses. A GPU machine may be at hand only for minutes and without a
network: this script measures everything that needs one in a single run meant
to fit in 8 minutes, downloads nothing (random weights, synthetic JPEGs),
prints the figures side by side and writes them to `--output` as JSON after
each part, so even a run cut short leaves a record. It reuses the other
benchmarks' contenders rather than its own:

  training   our EfficientNet-B0 against keras.applications.EfficientNetB0
             (weights=None), one compiled step each, measured as
             benchmarks/train_step.py measures them (`alternating_rates`),
             with --precision and --jit_compile
  inference  the same two models' forward pass
  labeling   the Beam labeling job (`run_labeling`) against the same work
             in a bare compiled loop (`Predictor.logits`, then filtering,
             balancing and writing in memory), benchmarks/label.py's
             `beam_job` and `bare`, on --num_images synthetic 224 px JPEGs;
             the export is built under the same precision policy

Contenders alternate over --rounds and medians are reported: absolute rates
drift, the ratios (ours/keras, beam/bare_compiled) are what to compare. Each contender
is run once untimed first (traces, XLA compilation, Beam's start-up; for
labeling on a small corpus of its own, so the warm-up costs seconds, not a
full pass).

Without a GPU the script refuses (exit 2) unless `--smoke`, which runs every
code path on the CPU in under a minute: the tiny model of benchmarks/label.py
(width/depth 0.25, 32 px, small_images) against Keras's B0 at 32 px, a few
steps and images, float32 without XLA (on a CPU, mixed_float16 and XLA take
minutes to compile and run; `--smoke --precision=mixed_float16 --jit_compile`
takes the GPU run's precision and compilation path there in about 2 minutes).
Its figures only show that the script works, so it skips the labeling warm-up.
"""

from __future__ import annotations

import datetime
import os
import statistics
import sys
import tempfile
import time

# The repository root, for `efficientnet`. The other benchmarks import as modules (`label`, `train_step`):
# Python puts this file's folder first on sys.path when it runs as a script.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags, logging  # noqa: E402
from label import CONFIGS, bare, beam_job, make_export, write_corpus  # noqa: E402
from train_step import alternating_rates, keras_model  # noqa: E402

from efficientnet import build_model  # noqa: E402
from efficientnet.util import cli, fileio  # noqa: E402

# flag: (GPU run, --smoke); a flag left unset takes the value for the mode.
DEFAULTS = {
    "batch_size": (256, 8),
    "precision": ("mixed_float16", "float32"),
    "jit_compile": (True, False),
    "steps": (20, 2),
    "rounds": (3, 1),
    "num_images": (10_000, 64),
    "label_batch_size": (256, 32),
}

FLAGS = flags.FLAGS
flags.DEFINE_bool("smoke", False, "Tiny sizes on the CPU: checks that every code path runs, measures nothing.")
flags.DEFINE_integer("batch_size", None, "Training and inference batch (default 256; 8 with --smoke).", lower_bound=1)
flags.DEFINE_enum(
    "precision",
    None,
    ["float32", "mixed_float16", "mixed_bfloat16"],
    "Policy (default mixed_float16; float32 with --smoke).",
)
flags.DEFINE_bool("jit_compile", None, "Compile both models' steps with XLA (default on; off with --smoke).")
flags.DEFINE_integer("steps", None, "Timed steps per measurement (default 20; 2 with --smoke).", lower_bound=1)
flags.DEFINE_integer(
    "rounds", None, "Alternating rounds, models and labeling (default 3; 1 with --smoke).", lower_bound=1
)
flags.DEFINE_integer(
    "num_images", None, "JPEGs the labeling contenders label (default 10,000; 64 with --smoke).", lower_bound=1
)
flags.DEFINE_integer("label_batch_size", None, "Labeling batch (default 256; 32 with --smoke).", lower_bound=1)
flags.DEFINE_string("output", "gpu_check.json", "Where the figures are written as JSON.")


def setting(name: str):
    value = FLAGS[name].value
    return DEFAULTS[name][FLAGS.smoke] if value is None else value


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)


def median_rates(rates: dict[str, list[float]], numerator: str, denominator: str) -> dict:
    figures = {f"{name}_img_s": statistics.median(values) for name, values in rates.items()}
    figures["ratio"] = figures[f"{numerator}_img_s"] / figures[f"{denominator}_img_s"]
    return figures


def side_by_side(kind: str, figures: dict, first: str, second: str) -> str:
    return (
        f"{kind:<10} {first} {figures[f'{first}_img_s']:9.1f} img/s   {second} {figures[f'{second}_img_s']:9.1f} img/s"
        f"   ratio {first}/{second} {figures['ratio']:.2f}"
    )


def model_speeds(overrides: dict, batch_size: int, jit_compile: bool, steps: int, rounds: int) -> dict:
    """Training and inference img/s of ours and Keras's B0, alternating, medians."""
    ours = build_model("efficientnet-b0", **overrides)
    resolution = ours.input_shape[1]
    models = {"ours": ours, "keras": keras_model("b0", resolution)}
    images = tf.random.uniform((batch_size, resolution, resolution, 3), 0, 255, seed=0)
    labels = tf.random.uniform((batch_size,), 0, ours.output_shape[-1], dtype=tf.int32, seed=1)  # Keras's has 1000
    kinds = {"training": "train", "inference": "infer"}
    rates = alternating_rates(
        models, images, labels, list(kinds.values()), jit_compile=jit_compile, steps=steps, rounds=rounds
    )
    return {
        kind: median_rates({name: rates[(name, short)] for name in models}, "ours", "keras")
        for kind, short in kinds.items()
    }


def labeling_speed(work_dir: str, overrides: dict, side: int, num_images: int, batch_size: int, rounds: int) -> dict:
    """img/s of the Beam job and of its bare compiled loop on the same corpus and export, alternating, medians."""
    corpus, warm_up = os.path.join(work_dir, "corpus.tfrecord"), os.path.join(work_dir, "warm_up.tfrecord")
    write_corpus(corpus, num_images, side, seed=0)
    write_corpus(warm_up, batch_size, side, seed=1)
    export_dir = make_export(os.path.join(work_dir, "export"), overrides)
    # Both at threshold 0 (label.THRESHOLD): every image goes through the filter, the balancing and into a record.
    contenders = {
        "beam": lambda path: beam_job(path, export_dir, batch_size, os.path.join(work_dir, "out")),
        "bare_compiled": lambda path: bare(
            path, export_dir, batch_size, os.path.join(work_dir, "bare.tfrecord"), compiled=True
        ),
    }
    if not FLAGS.smoke:  # the smoke mode measures nothing, so it spares the warm-up's Beam job
        for function in contenders.values():
            function(warm_up)
    rates = {name: [] for name in contenders}
    for round_index in range(rounds):
        for name in list(contenders) if round_index % 2 == 0 else reversed(contenders):
            start = time.perf_counter()
            labeled = contenders[name](corpus)
            rates[name].append(num_images / (time.perf_counter() - start))
            if labeled != num_images:
                raise RuntimeError(f"{name} labeled {labeled} of {num_images} images")
    return {"num_images": num_images, "labeled": labeled} | median_rates(rates, "beam", "bare_compiled")


def main(argv):
    del argv
    logging.set_verbosity(logging.ERROR)  # not TensorFlow's retracing warnings: each contender loads its own export
    start = time.perf_counter()
    device = device_name()
    if device == "CPU" and not FLAGS.smoke:
        raise ValueError("no GPU found: TensorFlow sees none on this machine; --smoke runs every code path on the CPU")
    overrides, side, _, _ = CONFIGS["tiny" if FLAGS.smoke else "b0"]
    settings = {name: setting(name) for name in DEFAULTS} | {"smoke": FLAGS.smoke}
    settings |= {"model": f"efficientnet-b0 {overrides}", "image_side": side}
    report = {
        "device": device,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "settings": settings,
    }
    print(f"device {device}, tensorflow {tf.__version__}, keras {keras.__version__}, {report['date']}", flush=True)
    print("settings " + ", ".join(f"{name}={value}" for name, value in settings.items()), flush=True)
    keras.config.set_dtype_policy(settings["precision"])

    def write(part: str) -> None:
        """After each part, so that a lease that ends early still leaves the figures measured so far."""
        report["seconds"] = round(time.perf_counter() - start, 1)
        fileio.write_json(FLAGS.output, report)
        print(f"wrote {FLAGS.output} after {part} ({report['seconds']} s since the start)", flush=True)

    report |= model_speeds(
        overrides, settings["batch_size"], settings["jit_compile"], settings["steps"], settings["rounds"]
    )
    for kind in ("training", "inference"):
        print(side_by_side(kind, report[kind], "ours", "keras"), flush=True)
    write("training and inference")
    with tempfile.TemporaryDirectory() as work_dir:
        report["labeling"] = labeling_speed(
            work_dir, overrides, side, settings["num_images"], settings["label_batch_size"], settings["rounds"]
        )
    print(side_by_side("labeling", report["labeling"], "beam", "bare_compiled"), flush=True)
    write("labeling")


if __name__ == "__main__":
    cli.run(main)
