"""Running the project's CLIs as real processes, killing them, reading their errors.

The fault tests drive exactly what a user types: `python -m <module> --flags`
in a fresh process, so that exit codes, stderr and files on disk are the
user's, not an in-process approximation. Where one CLI has several bad-input
cases, all but one share a process (tests/cli_driver.py): each still runs the
module's own entry block with its own exit status and stderr, without paying
for another Python and TensorFlow start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[2]
# One TensorFlow thread per process comes with os.environ (tiny_runs.ONE_THREAD, set by conftest.py).
ENV = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY_FLAGS = ["--width=0.25", "--depth=0.25", "--resolution=32", "--small_images"]


def cli(module: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", module, *flags]


def run(command: list[str], timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs `command` to its end; `env` adds to the suite's environment (e.g. a worker's TF_CONFIG)."""
    return subprocess.run(command, cwd=ROOT, env=ENV | (env or {}), capture_output=True, text=True, timeout=timeout)


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """Starts `command` in its own process group, so a kill takes its children too."""
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=ENV | (env or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def kill_when(process: subprocess.Popen, condition: Callable[[], bool], timeout: float = 240) -> None:
    """SIGKILLs the process group as soon as `condition()` holds; fails if it never does."""
    deadline = time.time() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the process ended (exit {process.returncode}) before it could be killed mid-run")
        if time.time() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the kill condition never held")
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    process.stderr.close()


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
