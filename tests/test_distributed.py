"""Several replicas and workers train the run one replica trains (efficientnet/train/distribute.py).

Two replicas in one process (MirroredStrategy over two logical CPU devices) and two worker
processes (MultiWorkerMirroredStrategy, `TF_CONFIG` on localhost ports, through the real CLI)
run in tests/faults/test_faults_workers.py; this module holds the in-process checks. Both train
on the same global batches as one replica, with synchronized batch norm
(`tiny_runs.REPLICATED`), and must end with the weights of a 1-replica run up to float
reduction order. What differs is only the order of float32 sums: gradients are summed per
replica and then across replicas, batch statistics come from per-replica sums instead of the
fused kernel, and convolutions run on 4 images instead of 8. With SGD that leaves weights
within 1e-6 of each other; RMSProp (the recipe's optimiser) divides each gradient by the root
of its running square, which in the first steps magnifies the rounding of small gradients, and
the measured difference after 10 steps is about 5e-5 (printed by the tests).
`tiny_runs.WEIGHT_TOLERANCE` is 1e-3; without synchronized batch norm the replicas normalise 4
images each instead of 8, a different computation, and the weights differ by 0.3 after the
same 10 steps.
"""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from tiny_runs import TINY, tf_config

from efficientnet.data import input_pipeline, records
from efficientnet.data.datasets import open_source
from efficientnet.model import scaling
from efficientnet.model.network import build_from_config
from efficientnet.train.config import TrainConfig
from efficientnet.train.distribute import check_batch_split, parse_tf_config, peer_lost

TESTS = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------------ TF_CONFIG


def test_tf_config_names_the_chief():
    assert parse_tf_config(tf_config(index=0)).is_chief
    assert not parse_tf_config(tf_config(index=1)).is_chief
    with_chief = {"chief": ["localhost:2000"], "worker": ["localhost:2001"]}
    assert parse_tf_config(tf_config("chief", 0, with_chief)).is_chief
    assert not parse_tf_config(tf_config("worker", 0, with_chief)).is_chief


@pytest.mark.parametrize(
    "value, fragments",
    [
        (None, ["--strategy=multiworker needs TF_CONFIG: set it in every worker's environment", '"cluster"']),
        ("", ["--strategy=multiworker needs TF_CONFIG"]),
        ('{"cluster": {"worker": ["localhost:2001"]', ["TF_CONFIG is not valid JSON (Expecting", "localhost:2001"]),
        (tf_config(index=2), ['TF_CONFIG task {"type": "worker", "index": 2} is outside its cluster', "has 2"]),
        (tf_config("ps", 0), ['TF_CONFIG task must be {"type": "worker" or "chief"', '"ps"']),
        (tf_config("chief", 0), ['TF_CONFIG task {"type": "chief", "index": 0} is outside its cluster', "has 0"]),
        ('{"task": {"type": "worker", "index": 0}}', ['TF_CONFIG needs a "cluster" and a "task" object']),
        ('{"cluster": {"worker": "localhost:2001"}, "task": {}}', ['cluster job "worker" must be a list']),
        ('{"cluster": {"ps": ["localhost:2001"]}, "task": {}}', ['TF_CONFIG cluster has no "worker"']),
    ],
)
def test_bad_tf_config_is_one_line_naming_it(value, fragments):
    with pytest.raises(ValueError) as raised:
        parse_tf_config(value)
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_a_global_batch_that_replicas_cannot_share_is_refused():
    check_batch_split("--batch_size", 8, 2)
    with pytest.raises(ValueError, match="--batch_size 9 does not split evenly over 2 replicas; give a multiple of 2"):
        check_batch_split("--batch_size", 9, 2)


# ---------------------------------------------------------------------- input and batch norm


def digits_batches(context=None, skip=0, sharding="files", **options):
    return input_pipeline.train_dataset(
        open_source("digits"),
        "train",
        batch_size=8,
        resolution=32,
        input_context=context,
        skip_batches=skip,
        input_sharding=sharding,
        **options,
    )


@pytest.mark.parametrize("workers, replicas", [(1, 2), (2, 2), (2, 4)])
def test_in_exact_mode_each_workers_pipeline_holds_its_replicas_slices_of_the_global_batches(workers, replicas):
    """Replica r of n gets rows [r·b/n, (r+1)·b/n) of every global batch, also after a resume."""
    whole = [batch["image"].numpy() for batch in digits_batches().take(3)]
    for skip in (0, 1):
        slices = []
        for worker in range(workers):
            context = tf.distribute.InputContext(workers, worker, replicas)
            batches = digits_batches(context, skip, "exact").take(3 * replicas // workers)
            slices.append([batch["image"].numpy() for batch in batches])
        for step in range(3 - skip):
            local = replicas // workers
            parts = [slices[w][step * local + r] for w in range(workers) for r in range(local)]
            np.testing.assert_array_equal(np.concatenate(parts), whole[step + skip])


def test_one_worker_reads_the_same_stream_in_both_modes():
    context = tf.distribute.InputContext(1, 0, 2)
    files, exact = (digits_batches(context, sharding=mode).take(4) for mode in ("files", "exact"))
    for a, b in zip(files, exact, strict=True):
        np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())
        np.testing.assert_array_equal(a["id"].numpy(), b["id"].numpy())


def test_in_files_mode_each_worker_reads_only_its_own_share_and_resumes_in_it():
    """Worker w of 2 sees only its half of the examples, every one of them each epoch, and
    a resume at step 1 continues its own stream; the two halves make up the split."""
    split_ids = {example["id"] for example in open_source("digits").examples("train").as_numpy_iterator()}
    seen = []
    for worker in range(2):
        context = tf.distribute.InputContext(2, worker, 2)
        # 75 examples per worker: 9 batches of 4 (its one replica's slice of 8) are 36, about half an epoch;
        # 19 batches (76 examples) run past one epoch.
        ids = [i for batch in digits_batches(context, shuffle_buffer=1000).take(19) for i in batch["id"].numpy()]
        assert len(set(ids[:75])) == 75 and set(ids[75:]) <= set(ids[:75])
        seen.append(set(ids))
        resumed = digits_batches(context, skip=1).take(2)
        plain = list(digits_batches(context).take(3))[1:]
        for a, b in zip(resumed, plain, strict=True):
            np.testing.assert_array_equal(a["image"].numpy(), b["image"].numpy())
    assert not seen[0] & seen[1] and seen[0] | seen[1] == split_ids


def test_in_files_mode_a_source_with_fewer_files_than_workers_is_refused(tmp_path):
    for index in range(3):
        with tf.io.TFRecordWriter(str(tmp_path / f"part-{index}")) as writer:
            writer.write(records.encode_pseudo_label(b"not decoded here", np.array([0.5, 0.5])))
    source = open_source(f"tfrecord:{tmp_path}/part-*")
    context = tf.distribute.InputContext(4, 0, 4)
    with pytest.raises(ValueError) as raised:
        input_pipeline.train_dataset(source, None, batch_size=8, resolution=32, input_context=context)
    assert str(raised.value) == (
        f"'tfrecord:{tmp_path}/part-*' holds 3 file(s) for 4 workers: with --input_sharding=files every worker "
        "reads files of its own, so 1 would have none; store the data in at least 4 files, or use "
        "--input_sharding=exact"
    )
    input_pipeline.train_dataset(  # reads everything: no files of its own needed
        source, None, batch_size=8, resolution=32, input_context=context, input_sharding="exact"
    )


def test_synchronized_batch_norm_changes_nothing_on_one_replica():
    config = scaling.model_config("efficientnet-b0", 10, **TINY, dropout_rate=0.0, drop_connect_rate=0.0)  # no noise
    plain = build_from_config(config)
    synchronized = build_from_config(scaling.ModelConfig(**(config.to_dict() | {"sync_batch_norm": True})))
    synchronized.set_weights(plain.get_weights())
    images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[1, 2], maxval=255.0)
    np.testing.assert_array_equal(plain(images, training=True).numpy(), synchronized(images, training=True).numpy())
    for a, b in zip(plain.weights, synchronized.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert all(
        layer.synchronized for layer in synchronized.layers if isinstance(layer, keras.layers.BatchNormalization)
    )


def test_synchronized_batch_norm_is_refused_with_xla():
    with pytest.raises(ValueError, match="--sync_batch_norm cannot be combined with --jit_compile"):
        TrainConfig(model_dir="x", sync_batch_norm=True, jit_compile=True).validate()


# What TensorFlow 2.21 raised in the chief when worker 1 was killed (tests/faults/test_faults_workers.py),
# shortened: its stack of the failed collective, then the lines that say what happened.
PEER_LOST = """Graph execution error:

Detected at node efficientnet-b0_1/stem_bn_1/CollectiveReduceV2_2 defined at (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main

  File "/work/main/efficientnet/train/loop.py", line 433, in step

Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks are unhealthy \
(stopped sending heartbeats):
/job:worker/replica:0/task:1
The tasks have crashed. Check the task logs for an earlier error, or scheduler events (e.g. preemption, eviction) \
to debug further."""


def test_a_lost_peer_is_one_line_naming_it_and_how_to_resume():
    stopped = peer_lost(tf.errors.UnavailableError(None, None, PEER_LOST), "runs/x/checkpoints")
    assert str(stopped) == (
        "a worker of this multi-worker run stopped (Collective ops is aborted by: Error reported from "
        "/job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats): "
        "/job:worker/replica:0/task:1); rerun every worker with the same command and TF_CONFIG to resume from "
        "the last checkpoint in runs/x/checkpoints"
    )
