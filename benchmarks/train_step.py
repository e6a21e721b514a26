"""Training-step and inference throughput: our EfficientNet against keras.applications.

  python benchmarks/train_step.py                       # B0, 224 px, batch 32, float32, CPU
  python benchmarks/train_step.py --jit_compile         # both with XLA
  python benchmarks/train_step.py --jit_compile --modes=infer --rounds=5
  python benchmarks/train_step.py --model=b3 --precision=mixed_float16 --batch_size=64
  python benchmarks/train_step.py --precision=mixed_bfloat16   # also ours in float32

Both models get the same batch, resolution, precision and optimizer (RMSProp as
in the reference recipe) and `weights=None`; each step is one compiled
`tf.function` (forward, backward, update) so neither pays for Python in the
step. Measurements alternate between the two models over several rounds and
report medians, because absolute times on a shared machine drift; only the
printed ratios ours/keras are meaningful. Under a mixed policy our model in
float32 runs in the same rounds as well, and the ratio ours/ours-float32 says
what the policy buys on this machine (docs/platform.md#bfloat16-on-cpu).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from efficientnet import build_from_config, build_model, model_config  # noqa: E402
from efficientnet.util import cli  # noqa: E402

# Flags only when run as a script: benchmarks/gpu.py imports the helpers below and has flags of its own.
if __name__ == "__main__":
    _MODEL = flags.DEFINE_string("model", "b0", "Size b0 … b7 (keras.applications has no b8/l2).")
    _BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size.")
    _RESOLUTION = flags.DEFINE_integer("resolution", None, "Input resolution (default: the size's own).")
    _PRECISION = flags.DEFINE_enum("precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"], "Policy.")
    _JIT = flags.DEFINE_boolean("jit_compile", False, "Compile both steps with XLA.")
    _STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per measurement.")
    _ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternating measurement rounds (median reported).")
    _MODES = flags.DEFINE_multi_enum(
        "modes",
        ["train", "infer"],
        ["train", "infer"],
        "What to time (e.g. --modes=infer for a longer XLA inference run).",
    )


def keras_model(size: str, resolution: int) -> keras.Model:
    application = getattr(keras.applications, f"EfficientNet{size.upper()}")
    return application(weights=None, classifier_activation=None, input_shape=(resolution, resolution, 3))


def make_steps(model: keras.Model, jit_compile: bool):
    optimizer = keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.9, epsilon=1e-3)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile)
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        return loss

    @tf.function(jit_compile=jit_compile)
    def predict_step(images):
        return model(images, training=False)

    return train_step, predict_step


def images_per_second(function, arguments, steps: int, batch_size: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        result = function(*arguments)
    float(tf.reduce_sum(tf.cast(result, tf.float32)))  # wait for the last step
    return steps * batch_size / (time.perf_counter() - start)


def alternating_rates(
    models: dict[str, keras.Model], images, labels, kinds, *, jit_compile: bool, steps: int, rounds: int
) -> dict[tuple[str, str], list[float]]:
    """img/s of each model and kind ("train", "infer") in every round; rounds alternate the models' order.

    Each model's compiled steps run twice untimed first (tracing, warm-up).
    Progress goes to stdout, a line per warm-up and per round.
    """
    batch_size = int(images.shape[0])
    functions = {name: make_steps(model, jit_compile) for name, model in models.items()}

    def measure(name: str, kind: str, steps_to_run: int) -> float:
        train_step, predict_step = functions[name]
        if kind == "train":
            return images_per_second(train_step, (images, labels), steps_to_run, batch_size)
        return images_per_second(predict_step, (images,), steps_to_run, batch_size)

    for name in functions:
        for kind in kinds:
            measure(name, kind, 2)
        print(f"warmed up {name}", flush=True)
    rates = {(name, kind): [] for name in functions for kind in kinds}
    for round_index in range(rounds):
        order = list(functions) if round_index % 2 == 0 else list(reversed(functions))
        for name in order:
            for kind in kinds:
                rates[(name, kind)].append(measure(name, kind, steps))
        print(
            f"round {round_index + 1}: "
            + ", ".join(f"{name} {kind} {values[-1]:.1f} img/s" for (name, kind), values in rates.items()),
            flush=True,
        )
    return rates


def main(argv):
    del argv
    size = _MODEL.value.lower()
    resolution = _RESOLUTION.value or build_model(f"efficientnet-{size}").input_shape[1]
    keras.config.set_dtype_policy(_PRECISION.value)
    models = {
        "ours": build_model(f"efficientnet-{size}", resolution=resolution),
        "keras": keras_model(size, resolution),
    }
    if _PRECISION.value != "float32":
        config = model_config(f"efficientnet-{size}", resolution=resolution)
        models["ours-float32"] = build_from_config(config, policy="float32")
    images = tf.random.uniform((_BATCH.value, resolution, resolution, 3), 0, 255, seed=0)
    labels = tf.random.uniform((_BATCH.value,), 0, 1000, dtype=tf.int32, seed=1)
    print(
        f"efficientnet-{size} {resolution} px, batch {_BATCH.value}, {_PRECISION.value}, "
        f"jit_compile={_JIT.value}, {os.cpu_count()} CPUs, tensorflow {tf.__version__}, keras {keras.__version__}",
        flush=True,
    )
    kinds = [kind for kind in ("train", "infer") if kind in _MODES.value]
    rates = alternating_rates(
        models, images, labels, kinds, jit_compile=_JIT.value, steps=_STEPS.value, rounds=_ROUNDS.value
    )
    for kind in kinds:
        ours_rate = statistics.median(rates[("ours", kind)])
        keras_rate = statistics.median(rates[("keras", kind)])
        label = "training step" if kind == "train" else "inference"
        ratio = ours_rate / keras_rate
        print(f"{label}: ours {ours_rate:.1f} img/s, keras {keras_rate:.1f} img/s, ratio ours/keras {ratio:.2f}")
        if ("ours-float32", kind) in rates:
            float32_rate = statistics.median(rates[("ours-float32", kind)])
            print(
                f"{label}: ours {_PRECISION.value} {ours_rate:.1f} img/s, ours float32 {float32_rate:.1f} img/s, "
                f"ratio ours/ours-float32 {ours_rate / float32_rate:.2f}"
            )


if __name__ == "__main__":
    cli.run(main)
