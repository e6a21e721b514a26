"""Several replicas and workers train the run one replica trains (efficientnet/train/distribute.py).

Two replicas in one process (MirroredStrategy over two logical CPU devices, in a process of its
own: tests/two_replicas.py) and two worker processes (MultiWorkerMirroredStrategy, `TF_CONFIG`
on localhost ports, through the real CLI) train on the same global batches as one replica, with
synchronized batch norm (`tiny_runs.REPLICATED`), and must end with the weights of a 1-replica
run up to float reduction order. What differs is only the order of float32 sums: gradients are
summed per replica and then across replicas, batch statistics come from per-replica sums instead
of the fused kernel, and convolutions run on 4 images instead of 8. With SGD that leaves weights
within 1e-6 of each other; RMSProp (the recipe's optimiser) divides each gradient by the root of
its running square, which in the first steps magnifies the rounding of small gradients, and the
measured difference after 10 steps is about 5e-5 (printed by the tests). WEIGHT_TOLERANCE is
1e-3; without synchronized batch norm the replicas normalise 4 images each instead of 8, a
different computation, and the weights differ by 0.3 after the same 10 steps.

Only the chief writes into `--model_dir`; the other worker's checkpoints go to its temporary
directory (TMPDIR, one per scenario here), removed when it ends. A worker killed with SIGKILL
makes the chief fail instead of waiting for it forever, and rerunning both resumes from the
chief's last checkpoint.
"""

import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from faults.faultlib import cli, kill_when, latest_checkpoint_step, run, start
from tiny_runs import REPLICATED, TINY, replicated_config

from efficientnet.data import input_pipeline
from efficientnet.data.datasets import open_source
from efficientnet.model import export, scaling
from efficientnet.model.network import build_from_config
from efficientnet.train.config import TrainConfig
from efficientnet.train.distribute import check_batch_split, parse_tf_config
from efficientnet.train.loop import SCRATCH_PREFIX, train

TESTS = Path(__file__).resolve().parent
WEIGHT_TOLERANCE = 1e-3
STEPS, EVERY = REPLICATED["train_steps"], REPLICATED["checkpoint_every_steps"]
KILL_AFTER = 5  # the kill comes after the first checkpoint, with 5 of the 10 steps still ahead
SURVIVOR_TIMEOUT_S = 180  # the chief notices a dead peer through missed heartbeats (~25 s here)
CHIEF_FILES = {"config.json", "checkpoints", "train", "export"}


# ------------------------------------------------------------------------------------ TF_CONFIG


def tf_config(task_type="worker", index=0, cluster=None) -> str:
    cluster = cluster or {"worker": ["localhost:2001", "localhost:2002"]}
    return json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})


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


@pytest.mark.parametrize("workers, replicas", [(1, 2), (2, 2), (2, 4)])
def test_each_workers_pipeline_holds_its_replicas_slices_of_the_global_batches(workers, replicas):
    """Replica r of n gets rows [r·b/n, (r+1)·b/n) of every global batch, also after a resume."""
    source = open_source("digits")

    def batches(context=None, skip=0):
        return input_pipeline.train_dataset(
            source, "train", batch_size=8, resolution=32, input_context=context, skip_batches=skip
        )

    whole = [batch["image"].numpy() for batch in batches().take(3)]
    for skip in (0, 1):
        slices = []
        for worker in range(workers):
            context = tf.distribute.InputContext(workers, worker, replicas)
            slices.append([batch["image"].numpy() for batch in batches(context, skip).take(3 * replicas // workers)])
        for step in range(3 - skip):
            local = replicas // workers
            parts = [slices[w][step * local + r] for w in range(workers) for r in range(local)]
            np.testing.assert_array_equal(np.concatenate(parts), whole[step + skip])


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


# --------------------------------------------------------------------------- compared runs


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


@pytest.mark.slow  # a process of its own: the CPU split into two devices
def test_two_replicas_train_like_one(tmp_path):
    result = run([sys.executable, str(TESTS / "two_replicas.py"), str(tmp_path)], timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["same_global_batches"]
    assert report["odd_batch_error"] == "--batch_size 7 does not split evenly over 2 replicas; give a multiple of 2"
    assert not (tmp_path / "odd").exists()
    compare(tmp_path / "cpu", tmp_path / "mirrored", "1 vs 2 replicas")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("localhost", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


class Workers:
    """Two worker processes of one run: the CLI with `--strategy=multiworker` and a TF_CONFIG each."""

    def __init__(self, root: Path, config_file: Path):
        self.model_dir, self.scratch = root / "run", root / "tmp"
        self.scratch.mkdir(parents=True)
        self.command = cli(
            "teacher.train", f"--config={config_file}", f"--model_dir={self.model_dir}", "--strategy=multiworker"
        )

    def environments(self) -> list[dict[str, str]]:
        """Fresh ports on every start; TMPDIR shows where a worker's scratch checkpoints go."""
        cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
        return [{"TF_CONFIG": tf_config("worker", index, cluster), "TMPDIR": str(self.scratch)} for index in (0, 1)]

    def scratch_checkpoints(self) -> list[Path]:
        return list(self.scratch.glob(SCRATCH_PREFIX + "*"))

    def run(self) -> list[subprocess.CompletedProcess]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(lambda env: run(self.command, timeout=600, env=env), self.environments()))

    def killed_and_rerun(self) -> dict:
        """SIGKILLs worker 1 after checkpoint KILL_AFTER; the chief must then fail by itself."""
        chief, worker = (start(self.command, env) for env in self.environments())
        kill_when(worker, lambda: latest_checkpoint_step(self.model_dir) >= KILL_AFTER)
        seen = {"last": latest_checkpoint_step(self.model_dir)}
        try:
            seen["chief stderr"] = chief.communicate(timeout=SURVIVOR_TIMEOUT_S)[1].decode()
            seen["chief exit"] = chief.returncode
        except subprocess.TimeoutExpired:
            chief.kill()
            chief.communicate()
            seen["chief exit"] = None
        seen["scratch after the kill"] = self.scratch_checkpoints()
        seen["rerun"] = self.run()
        return seen


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One worker in this process, beside two uninterrupted workers and two killed and rerun ones."""
    root = tmp_path_factory.mktemp("distributed")
    config_file = root / "config.json"
    config_file.write_text(json.dumps(replicated_config("unused").to_dict()))
    straight, killed = Workers(root / "straight", config_file), Workers(root / "killed", config_file)
    with ThreadPoolExecutor(max_workers=2) as pool:
        straight_results = pool.submit(straight.run)
        killed_seen = pool.submit(killed.killed_and_rerun)
        train(replicated_config(root / "one", strategy="cpu"))
        return {
            "one": root / "one",
            "straight": straight,
            "straight results": straight_results.result(),
            "killed": killed,
            "killed seen": killed_seen.result(),
        }


def assert_only_the_chief_wrote(workers: Workers, chief_runs: int = 1) -> None:
    assert {path.name for path in workers.model_dir.iterdir()} == CHIEF_FILES
    assert len(list((workers.model_dir / "train").iterdir())) == chief_runs  # an events file per chief process
    checkpoints = {path.name for path in (workers.model_dir / "checkpoints").iterdir()}
    assert checkpoints == {"checkpoint"} | {
        f"ckpt-{step}.{suffix}"
        for step in range(EVERY, STEPS + 1, EVERY)
        for suffix in ("index", "data-00000-of-00001")
    }


@pytest.mark.slow  # real CLI processes
def test_two_workers_train_like_one_and_only_the_chief_writes(runs):
    for result in runs["straight results"]:
        assert result.returncode == 0, result.stderr[-4000:]
    compare(runs["one"], runs["straight"].model_dir, "1 vs 2 workers")
    assert_only_the_chief_wrote(runs["straight"])
    assert runs["straight"].scratch_checkpoints() == []  # worker 1 removed its own


@pytest.mark.slow  # real CLI processes
def test_a_killed_worker_stops_the_chief_and_both_resume(runs):
    seen, killed = runs["killed seen"], runs["killed"]
    assert KILL_AFTER <= seen["last"] < STEPS
    assert seen["chief exit"] not in (None, 0), "the chief hung or finished without its peer"
    assert "task:1" in seen["chief stderr"], seen["chief stderr"][-4000:]  # names the dead peer
    assert len(seen["scratch after the kill"]) == 1  # the killed worker's, outside model_dir
    chief, worker = seen["rerun"]
    for result in (chief, worker):
        assert result.returncode == 0, result.stderr[-4000:]
        assert (
            f"resumed from {killed.model_dir}/checkpoints/ckpt-{seen['last']} at step {seen['last']}" in result.stderr
        )
    assert latest_checkpoint_step(killed.model_dir) == STEPS
    assert_only_the_chief_wrote(killed, chief_runs=2)
    compare(runs["straight"].model_dir, killed.model_dir, "2 workers, killed and resumed vs uninterrupted")
