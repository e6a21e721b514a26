"""The pieces that keep a run safe from its surroundings: the run lock, the
stop request SIGTERM sets, and the one-line message for a full disk.

Their behaviour through the real CLIs is in tests/faults/ (test_faults_input.py
for a second run and a stale lock, test_faults_signals.py for SIGTERM,
test_faults_disk.py for a full disk); here are the cases those cannot reach
cheaply: a heartbeat that went stale on another host, a lock taken over
under a live run, a signal while the block runs, child processes run a few at a
time and told of SIGTERM.
"""

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

from efficientnet.util import cli, runlock, stopping


def _write_lock(directory, **document) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / runlock.LOCK_FILE).write_text(json.dumps(document))


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_held_lock_names_its_holder_and_is_removed_when_the_run_ends(tmp_path):
    with runlock.hold(str(tmp_path), "--model_dir"):
        document = json.loads((tmp_path / runlock.LOCK_FILE).read_text())
        assert (document["pid"], document["host"]) == (os.getpid(), socket.gethostname())
        with pytest.raises(runlock.Locked, match=f"--model_dir {tmp_path} is in use by another run: pid {os.getpid()}"):
            with runlock.hold(str(tmp_path), "--model_dir"):
                pass
    assert not (tmp_path / runlock.LOCK_FILE).exists()


def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path):
    now = time.time()
    _write_lock(tmp_path, pid=_dead_pid(), host=socket.gethostname(), started=now, heartbeat=now)
    with runlock.hold(str(tmp_path), "--model_dir"):
        assert json.loads((tmp_path / runlock.LOCK_FILE).read_text())["pid"] == os.getpid()


def test_another_hosts_lock_holds_while_its_heartbeat_is_fresh(tmp_path):
    now = time.time()
    _write_lock(tmp_path, pid=1, host="elsewhere", started=now - 600, heartbeat=now - 5, command="teacher.train")
    with pytest.raises(runlock.Locked, match="pid 1 on elsewhere, started .*, alive 5 s ago \\(teacher.train\\)"):
        with runlock.hold(str(tmp_path), "--model_dir"):
            pass
    _write_lock(tmp_path, pid=1, host="elsewhere", started=now - 600, heartbeat=now - runlock.STALE_SECONDS - 1)
    with runlock.hold(str(tmp_path), "--model_dir"):
        pass


def test_a_lock_cut_short_while_written_counts_as_stale(tmp_path):
    (tmp_path / runlock.LOCK_FILE).write_text('{"pid": 12')
    with runlock.hold(str(tmp_path), "--model_dir"):
        pass


def test_a_run_whose_lock_was_taken_over_leaves_the_new_one_in_place(tmp_path):
    with runlock.hold(str(tmp_path), "--model_dir"):
        _write_lock(tmp_path, pid=1, host="elsewhere", started=0, heartbeat=time.time(), token="theirs")
    assert json.loads((tmp_path / runlock.LOCK_FILE).read_text())["token"] == "theirs"


def test_the_heartbeat_keeps_a_long_run_from_going_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(runlock, "HEARTBEAT_SECONDS", 0.05)
    with runlock.hold(str(tmp_path), "--model_dir"):
        first = json.loads((tmp_path / runlock.LOCK_FILE).read_text())["heartbeat"]
        time.sleep(0.3)
        second = json.loads((tmp_path / runlock.LOCK_FILE).read_text())
    assert second["heartbeat"] > first and second["started"] == first


def test_sigterm_is_recorded_and_the_previous_handler_restored():
    previous = signal.getsignal(signal.SIGTERM)
    with stopping.requests() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        assert stop.requested and stop.name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is previous


def test_an_interrupting_block_raises_at_once_and_forwards_first():
    forwarded = []
    with pytest.raises(stopping.Interrupted, match="SIGTERM"):
        with stopping.requests(interrupt=True, forward=forwarded.append):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert forwarded == [signal.SIGTERM]


def test_a_second_ctrl_c_interrupts_at_once():
    with pytest.raises(KeyboardInterrupt), stopping.requests() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert stop.name == "Ctrl-C (SIGINT)"
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


@pytest.mark.parametrize(
    "error, path",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/run/export/model.keras"),
            "/data/run/export/model.keras",
        ),
        (
            tf.errors.ResourceExhaustedError(None, None, "/data/ckpt-10_temp/part.tempstate1; No space left on device"),
            "/data/ckpt-10_temp/part.tempstate1",
        ),
        (
            RuntimeError(
                "ResourceExhaustedError: /p.tmp-1/spill/a.tfrecord; No space left on device [while running 'Spill']"
            ),
            "/p.tmp-1/spill/a.tfrecord",
        ),
    ],
)
def test_a_full_disk_is_one_line_naming_the_path(error, path):
    assert cli.disk_full(error) == (
        f"no space left on device writing {path}; what was written before is intact: "
        "free space and rerun the same command"
    )


def test_a_full_disk_is_found_behind_a_wrapping_error():
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/x")
        except OSError as cause:
            raise RuntimeError("the pipeline failed") from cause
    except RuntimeError as error:
        assert cli.disk_full(error).startswith("no space left on device writing /x;")
    assert cli.disk_full(OSError(errno.EACCES, "Permission denied", "/x")) is None


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_children_run_at_most_jobs_at_a_time_and_each_exit_code_is_reported():
    started, codes = [], {}

    def starter(index):
        def start():
            started.append(sum(child.poll() is None for child in started_children))
            child = subprocess.Popen(_python(f"import time, sys; time.sleep(0.3); sys.exit({index})"))
            started_children.append(child)
            return child

        return start

    started_children: list[subprocess.Popen] = []
    stop = stopping.run_children([starter(i) for i in range(4)], jobs=2, on_exit=codes.__setitem__)
    assert not stop.requested
    assert codes == {0: 0, 1: 1, 2: 2, 3: 3}
    assert max(started) <= 1, f"children already running when each started: {started}"


def test_sigterm_reaches_every_running_child_and_no_further_one_starts():
    """As a preempted VM stops a label curve: its running iterations checkpoint and exit, none starts."""
    exits_on_term = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(7)); time.sleep(30)"
    codes = {}
    threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    begun = time.time()
    starts = [lambda: subprocess.Popen(_python(exits_on_term)) for _ in range(3)]
    stop = stopping.run_children(starts, jobs=2, on_exit=codes.__setitem__)
    assert stop.name == "SIGTERM"
    assert codes == {0: 7, 1: 7}, "the third child must not start once SIGTERM arrived"
    assert time.time() - begun < 10
