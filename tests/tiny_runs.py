"""The tiny digits training run of the suite's teacher, shared by conftest.py and test_training.py.

One run serves both: tests/test_training.py checks what it wrote, and the
session `teacher` fixture hands its export to the labeling and fault tests.
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from efficientnet.model import export
from efficientnet.train.config import TrainConfig

TINY = dict(width=0.25, depth=0.25, resolution=32, small_images=True)
TEACHER_NOISE = dict(randaugment_layers=1, randaugment_magnitude=5)


def tiny_config(model_dir, **overrides) -> TrainConfig:
    values = dict(
        model_dir=str(model_dir),
        dataset="digits",
        batch_size=32,
        train_steps=100,
        warmup_epochs=1,
        random_flip=False,
        checkpoint_every_steps=50,
        log_every_steps=50,
        **TINY,
    )
    return TrainConfig(**(values | overrides))


# TensorFlow's CPU kernels split their work, and so their float sums, by the number of threads,
# which by default follows the CPUs a process may use (tests/conftest.py confines background
# processes to one, then frees both). So every TensorFlow of the session, in the pytest process
# and in every process it starts, runs with one thread: conftest.py puts this in the environment
# before anything starts TensorFlow, and a killed run then reaches the weights of the run it is
# compared with wherever each of them ran.
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def teacher_config(model_dir) -> TrainConfig:
    """Deterministic, so that the numbers several tests read from it do not change between sessions."""
    return tiny_config(model_dir, deterministic=True, **TEACHER_NOISE)


# The multi-replica comparisons (tests/test_distributed.py): 10 steps without warm-up, so that
# the weights move; no dropout or stochastic depth, whose masks each replica draws for its own
# slice and so differ from a 1-replica run's; synchronized batch norm, so that every replica
# normalises with the statistics of the whole global batch, as one replica does.
REPLICATED = dict(
    batch_size=8,
    train_steps=10,
    warmup_epochs=0,
    base_learning_rate=0.1,
    dropout_rate=0.0,
    drop_connect_rate=0.0,
    sync_batch_norm=True,
    deterministic=True,
    eval_split="validation",
    checkpoint_every_steps=5,
    log_every_steps=5,
)


def replicated_config(model_dir, **overrides) -> TrainConfig:
    return tiny_config(model_dir, **(REPLICATED | overrides))


# ------------------------------------------------- runs on several replicas, compared with one
# Shared by tests/test_distributed.py (two replicas) and tests/faults/test_faults_workers.py
# (two worker processes); tests/test_distributed.py explains the tolerance.

WEIGHT_TOLERANCE = 1e-3


def tf_config(task_type="worker", index=0, cluster=None) -> str:
    cluster = cluster or {"worker": ["localhost:2001", "localhost:2002"]}
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


def live_weights(model_dir: Path) -> dict[str, np.ndarray]:
    """The model's weights at the run's last checkpoint (its export holds their EMA)."""
    model, _ = export.load_export(str(model_dir / "export"))
    tf.train.Checkpoint(model=model).read(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))).expect_partial()
    return {weight.path: weight.numpy() for weight in model.weights}


def compare(reference: Path, other: Path, label: str) -> float:
    """Asserts the two runs end alike; prints and returns the largest weight difference."""
    ours, theirs = live_weights(reference), live_weights(other)
    assert ours.keys() == theirs.keys()
    difference = max(float(np.max(np.abs(ours[key] - theirs[key]))) for key in ours)
    accuracy = [
        json.loads((run / "export" / "model.json").read_text())["metrics"]["top1"] for run in (reference, other)
    ]
    print(f"{label}: max |weight difference| {difference:.3g}; validation top-1 {accuracy[0]} vs {accuracy[1]}")
    assert difference < WEIGHT_TOLERANCE
    assert abs(accuracy[0] - accuracy[1]) <= 1 / 200  # at most one of the 200 validation images
    return difference
