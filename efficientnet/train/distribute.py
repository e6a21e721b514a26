"""Strategy and precision selection: one code path for CPU, GPU and TPU.

The training loop only ever talks to a `tf.distribute.Strategy`; which one is
a flag. What changes with more than one replica, and where it is handled:

- Batches: `--batch_size` is the global batch, split evenly over the replicas
  (`check_batch_split`). Each worker reads only its own files by default, or,
  with `--input_sharding=exact`, gives every replica its slice of the same
  global batch a 1-replica run sees (`input_pipeline.train_dataset`).
- Gradients and loss parts are summed over replicas (the losses divide by
  the global batch, so the sum is the 1-replica value).
- Batch norm normalises with each replica's own batch statistics, as Keras
  does, unless `--sync_batch_norm` (`layers.FusedBatchNormalization`); the
  moving statistics are averaged across replicas after every step
  (`loop.average_across_replicas`).
- Files: only the chief writes (`Task.is_chief`, `TrainingRun`), and it
  evaluates alone after the last step (`loop.train`).
- A worker that dies stops the others at their next collective (the
  coordination service misses its heartbeats); `peer_lost` turns TensorFlow's
  error into one line that says how to resume.

Multi-worker runs read the cluster from `TF_CONFIG`, as TensorFlow does;
`parse_tf_config` checks it first so that a mistake is one line naming
`TF_CONFIG`, not a hang or a gRPC error.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

import keras
import tensorflow as tf
from absl import logging

from efficientnet.util.cli import Stopped

STRATEGIES = ("auto", "tpu", "mirrored", "multiworker", "cpu")
# bfloat16 on TPU as in the reference, float16 with loss scaling on GPUs; the
# logits stay float32 either way (the model's classifier is float32).
PRECISIONS = {"float32": "float32", "bfloat16": "mixed_bfloat16", "mixed_float16": "mixed_float16"}
TF_CONFIG = "TF_CONFIG"
# The jobs MultiWorkerMirroredStrategy trains with: an optional "chief" and the "worker"s.
TRAINING_JOBS = ("chief", "worker")
TF_CONFIG_EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's place in a multi-worker cluster, from `TF_CONFIG`."""

    type: str
    index: int
    jobs: dict[str, int]  # job name → number of tasks

    @property
    def is_chief(self) -> bool:
        """TensorFlow's rule: the "chief" task, or worker 0 when there is no chief."""
        return self.type == "chief" or (self.type == "worker" and self.index == 0 and "chief" not in self.jobs)


def parse_tf_config(value: str | None) -> Task:
    """Parses and checks `TF_CONFIG` for `--strategy=multiworker`.

    Raises ValueError, naming TF_CONFIG, when it is unset, not JSON, or names
    a task outside its cluster: without this check TensorFlow either waits
    forever for a worker that does not exist or fails deep in gRPC.
    """
    if not value:
        raise ValueError(
            f"--strategy=multiworker needs {TF_CONFIG}: set it in every worker's environment to the cluster "
            f"and that worker's task, e.g. {TF_CONFIG}='{TF_CONFIG_EXAMPLE}' (index 0, 1, … per worker)"
        )
    try:
        config = json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"{TF_CONFIG} is not valid JSON ({error}): {value!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f'{TF_CONFIG} needs a "cluster" and a "task" object, e.g. {TF_CONFIG_EXAMPLE}; got {value!r}')
    jobs = {}
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not all(isinstance(address, str) for address in addresses):
            raise ValueError(
                f'{TF_CONFIG} cluster job "{job}" must be a list of "host:port" strings, got {addresses!r}'
            )
        jobs[job] = len(addresses)
    if not any(jobs.get(job) for job in TRAINING_JOBS):
        raise ValueError(f'{TF_CONFIG} cluster has no "worker" (or "chief") addresses: {value!r}')
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in TRAINING_JOBS or not isinstance(index, int) or isinstance(index, bool):
        raise ValueError(
            f'{TF_CONFIG} task must be {{"type": "worker" or "chief", "index": N}}, got {json.dumps(task)}'
        )
    if not 0 <= index < jobs.get(task_type, 0):
        raise ValueError(
            f"{TF_CONFIG} task {json.dumps(task)} is outside its cluster: "
            f'job "{task_type}" has {jobs.get(task_type, 0)} address(es)'
        )
    return Task(task_type, index, jobs)


@functools.cache
def make_strategy(name: str, tpu: str | None = None) -> tf.distribute.Strategy:
    """Returns the strategy for `--strategy` (`auto` picks TPU > GPUs > default).

    Call it before anything else touches TensorFlow: a multi-worker strategy
    configures collective ops, which TensorFlow allows only before its
    runtime starts. It is built once per process (cached), so that a run
    followed by its fine-tune shares it, as the TPU system is initialised once.

    `mirrored` replicates over every local GPU, or, without one, over every
    logical CPU device (how the tests run two replicas on one CPU).
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy must be one of {list(STRATEGIES)}, got {name!r}")
    if name == "tpu" or (name == "auto" and tpu):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multiworker":
        parse_tf_config(os.environ.get(TF_CONFIG))
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    if len(gpus) == 1:
        return tf.distribute.OneDeviceStrategy("/gpu:0")
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files.

    Every strategy but the multi-worker one is driven by one process, which
    writes; among multiple workers only the chief does (`Task.is_chief`).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return parse_tf_config(os.environ.get(TF_CONFIG)).is_chief


def peer_lost(error: tf.errors.UnavailableError, checkpoint_dir: str) -> Stopped:
    """The one-line error of a multi-worker run whose peer stopped, from TensorFlow's `error`.

    TensorFlow's message holds the Python stack of the collective that failed;
    only its lines naming tasks (`/job:worker/replica:0/task:1`) say what happened.
    """
    lines = [line.strip() for line in str(error).splitlines() if "/job:" in line]
    cause = " ".join(lines) or str(error).strip().splitlines()[-1]
    return Stopped(
        f"a worker of this multi-worker run stopped ({cause}); rerun every worker with the same command and "
        f"{TF_CONFIG} to resume from the last checkpoint in {checkpoint_dir}"
    )


def check_batch_split(flag: str, batch_size: int, replicas: int) -> None:
    """Every replica takes an equal slice of the global batch, or the run is refused."""
    if batch_size % replicas:
        raise ValueError(
            f"{flag} {batch_size} does not split evenly over {replicas} replicas; give a multiple of {replicas}"
        )


def set_precision(precision: str) -> None:
    """Sets Keras's global dtype policy for models built afterwards."""
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "mixed_float16" and not tf.config.list_logical_devices("GPU"):
        logging.warning("--precision=mixed_float16 without a GPU is slow on CPU; float32 is faster there")
    keras.config.set_dtype_policy(PRECISIONS[precision])
