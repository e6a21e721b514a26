"""Two replicas in one process (tests/two_replicas.py), and two worker processes of one run
(MultiWorkerMirroredStrategy, `TF_CONFIG` on localhost ports, the real CLI), one of them
killed with SIGKILL and both rerun. Both end with the weights of the same run on one replica,
up to float reduction order (tiny_runs.WEIGHT_TOLERANCE; tests/test_distributed.py explains
it). The killed worker makes the chief fail instead of waiting for it forever, and the rerun
resumes from the chief's last checkpoint. Only the chief writes into `--model_dir`; the other
worker's checkpoints go to its temporary directory (TMPDIR here), removed when it ends.

The scenario only drives processes and waits for the chief to notice its dead peer, so it runs
in the background from the start of the session (tests/conftest.py), the two-replica process
(which also trains the one-replica reference) beside the workers.
"""

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from faultlib import cli, free_ports, kill_when, latest_checkpoint_step, run, start
from tiny_runs import REPLICATED, compare, replicated_config, tf_config

from efficientnet.train.loop import SCRATCH_PREFIX

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parents[1]

STEPS, EVERY = REPLICATED["train_steps"], REPLICATED["checkpoint_every_steps"]
KILL_AFTER = 5  # the kill comes after the first checkpoint, with 5 of the 10 steps still ahead
SURVIVOR_TIMEOUT_S = 180  # the chief notices a dead peer through missed heartbeats (~25 s here)
CHIEF_FILES = {"config.json", "checkpoints", "train", "export"}


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


def workers_scenario(root: Path) -> dict:
    """Two replicas beside two workers with worker 1 killed and both rerun; returns what the tests check.

    The two-replica process also trains the run on one replica (`ROOT/cpu`), the reference of both.
    """
    exact, files = root / "exact.json", root / "files.json"
    exact.write_text(json.dumps(replicated_config("unused", input_sharding="exact").to_dict()))
    files.write_text(json.dumps(replicated_config("unused", input_sharding="files").to_dict()))
    with ThreadPoolExecutor(max_workers=1) as pool:
        replicas = pool.submit(run, [sys.executable, str(TESTS / "two_replicas.py"), str(root / "replicas")], 600)
        killed = Workers(root / "killed", exact)
        seen = killed.killed_and_rerun()
        by_files = Workers(root / "files", files)
        return {
            "replicas": root / "replicas",
            "replicas result": replicas.result(),
            "killed": killed,
            "killed seen": seen,
            "files": by_files,
            "files results": by_files.run(),
        }


BACKGROUND_SCENARIO = workers_scenario
BACKGROUND_PROCESSES = 3  # the two-replica process beside two workers
BACKGROUND_WAITS = True  # the chief waits ~25 s for its killed peer's heartbeats


@pytest.fixture
def runs(background_outcome):
    result = background_outcome["replicas result"]
    assert result.returncode == 0, result.stderr[-4000:]
    return background_outcome


def test_two_replicas_train_like_one(runs):
    result, root = runs["replicas result"], runs["replicas"]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2 and report["same_global_batches"]
    assert report["odd_batch_error"] == "--batch_size 7 does not split evenly over 2 replicas; give a multiple of 2"
    assert not (root / "odd").exists()
    compare(root / "cpu", root / "mirrored", "1 vs 2 replicas")
    compare(root / "cpu", root / "mirrored-exact", "1 vs 2 replicas, --input_sharding=exact")


def assert_only_the_chief_wrote(workers: Workers, chief_runs: int = 1) -> None:
    assert {path.name for path in workers.model_dir.iterdir()} == CHIEF_FILES
    assert len(list((workers.model_dir / "train").iterdir())) == chief_runs  # an events file per chief process
    checkpoints = {path.name for path in (workers.model_dir / "checkpoints").iterdir()}
    assert checkpoints == {"checkpoint"} | {
        f"ckpt-{step}.{suffix}"
        for step in range(EVERY, STEPS + 1, EVERY)
        for suffix in ("index", "data-00000-of-00001")
    }


def test_a_killed_worker_stops_the_chief_and_both_resume(runs):
    seen, killed = runs["killed seen"], runs["killed"]
    assert KILL_AFTER <= seen["last"] < STEPS
    assert seen["chief exit"] not in (None, 0), "the chief hung or finished without its peer"
    # One line naming the dead peer and saying how to resume, not TensorFlow's traceback.
    assert "Traceback" not in seen["chief stderr"], seen["chief stderr"][-4000:]
    last_line = seen["chief stderr"].strip().splitlines()[-1]
    assert last_line.startswith("error: a worker of this multi-worker run stopped (") and "task:1" in last_line
    assert last_line.endswith(
        f"rerun every worker with the same command and TF_CONFIG to resume from the last "
        f"checkpoint in {killed.model_dir}/checkpoints"
    )
    assert len(seen["scratch after the kill"]) == 1  # the killed worker's, outside model_dir
    chief, worker = seen["rerun"]
    for result in (chief, worker):
        assert result.returncode == 0, result.stderr[-4000:]
        assert (
            f"resumed from {killed.model_dir}/checkpoints/ckpt-{seen['last']} at step {seen['last']}" in result.stderr
        )
    assert latest_checkpoint_step(killed.model_dir) == STEPS
    assert len(killed.scratch_checkpoints()) == 1  # the rerun worker removed its own; the killed one's stays


def test_two_workers_in_exact_mode_train_like_one_and_only_the_chief_writes(runs):
    compare(runs["replicas"] / "cpu", runs["killed"].model_dir, "1 worker vs 2 workers (one killed, both rerun)")
    assert_only_the_chief_wrote(runs["killed"], chief_runs=2)


def test_two_workers_in_files_mode_each_read_their_own_files_and_only_the_chief_writes(runs):
    """The default: each worker reads and decodes half of the 150 digits; the run completes and exports."""
    for index, result in enumerate(runs["files results"]):
        assert result.returncode == 0, result.stderr[-4000:]
        assert f"input of worker {index} of 2: --input_sharding=files (reads its own files only)" in result.stderr
    assert_only_the_chief_wrote(runs["files"])
    metrics = json.loads((runs["files"].model_dir / "export" / "model.json").read_text())["metrics"]
    assert metrics["num_examples"] == 200  # the chief evaluated the whole validation split
