"""Running the project's CLIs as real processes, killing them, reading their errors.

The fault tests drive exactly what a user types: `python -m <module> --flags`
in a fresh process, so that exit codes, stderr and files on disk are the
user's, not an in-process approximation. Where one CLI has several bad-input
cases, all but one share a process (tests/cli_driver.py): each still runs the
module's own entry block with its own exit status and stderr, without paying
for another Python and TensorFlow start. A training run killed mid-way and
rerun (`training_killed_and_rerun`) must end where an uninterrupted run of the
same command ended (`assert_resumed_like`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from efficientnet.model import export

ROOT = Path(__file__).resolve().parents[2]
# One TensorFlow thread per process comes with os.environ (tiny_runs.ONE_THREAD, set by conftest.py).
ENV = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY_FLAGS = ["--width=0.25", "--depth=0.25", "--resolution=32", "--small_images"]


def cli(module: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", module, *flags]


def run(
    command: list[str], timeout: float = 300, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """Runs `command` to its end; `env` adds to the suite's environment (e.g. a worker's TF_CONFIG)."""
    return subprocess.run(command, cwd=cwd, env=ENV | (env or {}), capture_output=True, text=True, timeout=timeout)


def start(command: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    """Starts `command` in its own process group, so a kill takes its children too."""
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=ENV | (env or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def free_ports(count: int) -> list[int]:
    """Ports free on localhost now (for servers the test starts)."""
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("localhost", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def _wait_for(process: subprocess.Popen, condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the process ended (exit {process.returncode}) before it could be stopped mid-run")
        if time.time() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the stop condition never held")
        time.sleep(0.05)


def kill_when(process: subprocess.Popen, condition: Callable[[], bool], timeout: float = 240) -> None:
    """SIGKILLs the process group as soon as `condition()` holds; fails if it never does."""
    _wait_for(process, condition, timeout)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()


def terminate_when(
    process: subprocess.Popen, condition: Callable[[], bool], timeout: float = 240
) -> subprocess.CompletedProcess:
    """Sends SIGTERM to the process alone, as a scheduler or a preempted VM does, as soon as
    `condition()` holds; returns how it ended (its stderr included) once it has."""
    _wait_for(process, condition, timeout)
    process.send_signal(signal.SIGTERM)
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, "", stderr)


def processes_naming(text: str) -> list[str]:
    """The command lines of the running processes that contain `text` (to find orphans)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(command)
    return found


def earlier_labeling_output(output_dir: Path) -> None:
    """A stand-in for a labeling output a rerun would replace: complete (it has its stats.json),
    and small; what the faults check is that it stays exactly as it was (`digests`)."""
    output_dir.mkdir()
    (output_dir / "stats.json").write_text('{"num_records": 1}')
    (output_dir / "pseudo-00000-of-00001.tfrecord").write_bytes(b"an earlier run's records")


def digests(directory: Path) -> dict[str, str]:
    """Each file of `directory` by name, as its MD5: what "left exactly as it was" compares."""
    return {path.name: hashlib.md5(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}


def error_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, no traceback, and a last line `error: …` holding every fragment."""
    line = error_line(result)
    assert result.returncode == 2, result.stderr[-4000:]
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    assert line.startswith("error: "), line
    for fragment in fragments:
        assert fragment in line, line
    return line


def latest_checkpoint_step(model_dir: Path) -> int:
    """The step of the checkpoint a rerun resumes from, 0 if none.

    A checkpoint counts once TensorFlow's `checkpoint` state file names it;
    its data and index files are written before that, so a kill in between
    leaves a complete ckpt-N that the rerun rightly ignores.
    """
    path = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    return int(path.rsplit("-", 1)[1]) if path else 0


def assert_same_weights(first, second, atol: float = 1e-4) -> None:
    for a, b in zip(first.weights, second.weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=atol, err_msg=a.path)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A training run's length, its checkpoint (and log) interval, and the checkpoint after which it is killed."""

    steps: int
    every: int
    kill_after: int


def training_killed_and_rerun(model_dir: Path, command: list[str], schedule: Schedule) -> dict:
    """Kills `command`, a training run into `model_dir`, after checkpoint `schedule.kill_after`, then reruns it.

    Returns what it saw, for `assert_resumed_like`.
    """
    kill_when(start(command), lambda: latest_checkpoint_step(model_dir) >= schedule.kill_after)
    seen = {"export after the kill": (model_dir / "export").exists(), "last": latest_checkpoint_step(model_dir)}
    return seen | {"resumed": run(command), "killed": model_dir, "schedule": schedule}


def assert_resumed_like(seen: dict, uninterrupted: Path) -> None:
    """The rerun resumed from the kill's last checkpoint, not from the start, and ended with the
    step count, accuracy and weights of the uninterrupted run in `uninterrupted`."""
    killed, schedule = seen["killed"], seen["schedule"]
    steps, every = schedule.steps, schedule.every
    assert not seen["export after the kill"]
    last = seen["last"]
    assert schedule.kill_after <= last < steps

    resumed = seen["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resumed from {killed}/checkpoints/ckpt-{last} at step {last}" in resumed.stderr
    assert f"step {last + every}/{steps}" in resumed.stderr and f"step {every}/{steps}" not in resumed.stderr

    resumed_model, resumed_meta = export.load_export(str(killed))
    straight_model, straight_meta = export.load_export(str(uninterrupted))
    assert resumed_meta["steps"] == straight_meta["steps"] == steps
    assert resumed_meta["metrics"]["top1"] == pytest.approx(straight_meta["metrics"]["top1"], abs=0.01)
    assert_same_weights(resumed_model, straight_model)
