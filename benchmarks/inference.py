"""The one inference path (`Predictor.logits`) against the ways it could have been written.

  python benchmarks/inference.py                  # tiny model at 32 px, batch 500, and B0 at 224 px, batch 32
  python benchmarks/inference.py --rounds=7

Evaluation, the labeling job and the robustness benchmarks all turn images into
logits through `efficientnet.model.inference.Predictor`, which freezes the
model's variables into the graph once. This script times it side by side with
the alternatives on the same random images: a plain `tf.function` of
`model(x, training=False)` with the same fixed signature, and Keras's
`model.predict`. The contenders alternate for `--rounds` rounds and the median
is reported; only the printed ratios are meaningful on a shared machine.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from efficientnet import build_model  # noqa: E402
from efficientnet.model.inference import Predictor  # noqa: E402
from efficientnet.util import cli  # noqa: E402

_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternating measurement rounds (median reported).")
# name → (build_model overrides, number of images, batch size)
CONFIGS = {
    "tiny": (dict(num_classes=10, width=0.25, depth=0.25, resolution=32, small_images=True), 2000, 500),
    "b0": (dict(), 64, 32),
}


def contenders(model, resolution: int, batch_size: int):
    predictor = Predictor(model, resolution)
    plain = tf.function(
        lambda images: model(images, training=False),
        input_signature=[tf.TensorSpec([None, resolution, resolution, 3], tf.float32)],
    )

    def run_plain(images):
        return np.concatenate(
            [plain(tf.constant(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
        )

    return {
        "predictor": lambda images: predictor.logits(images, batch_size),
        "plain tf.function": run_plain,
        "model.predict": lambda images: model.predict(images, batch_size=batch_size, verbose=0),
    }


def main(argv):
    del argv
    for name, (overrides, count, batch_size) in CONFIGS.items():
        model = build_model("efficientnet-b0", **overrides)
        resolution = model.input_shape[1]
        images = np.random.default_rng(0).uniform(0, 255, (count, resolution, resolution, 3)).astype(np.float32)
        runs = contenders(model, resolution, batch_size)
        reference = runs["predictor"](images)  # also the warm-up: every contender is traced before timing
        for label, run in runs.items():
            difference = float(np.abs(run(images) - reference).max())
            print(f"{name}: {label} max |logit difference| vs predictor {difference:.2e}")
        times = {label: [] for label in runs}
        for _ in range(_ROUNDS.value):
            for label, run in runs.items():
                start = time.perf_counter()
                run(images)
                times[label].append(time.perf_counter() - start)
        rates = {label: count / statistics.median(values) for label, values in times.items()}
        summary = ", ".join(f"{label} {rate:.1f} img/s" for label, rate in rates.items())
        ratios = ", ".join(
            f"predictor/{label} {rates['predictor'] / rate:.2f}"
            for label, rate in rates.items()
            if label != "predictor"
        )
        print(f"{name} ({resolution} px, batch {batch_size}): {summary}; {ratios}", flush=True)


if __name__ == "__main__":
    cli.run(main)
