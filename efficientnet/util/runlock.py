"""One run per directory: a lock file naming the run that holds it.

Two runs writing one model_dir, labeling output or work_dir interleave their
checkpoints and outputs and each overwrites what the other wrote; nothing
fails, the results are simply wrong. So every run that writes a directory
holds `LOCK_FILE` in it (labeling: beside its output, which a commit replaces
whole) while it runs, and a second run refuses at once, naming the holder's
PID, host and command.

A run that is killed (SIGKILL, a lost VM) cannot remove its lock, so a lock
is taken over when its holder is gone: on the same host when its PID no
longer runs, from any host when its heartbeat, rewritten every
`HEARTBEAT_SECONDS` by a thread of the holder, is older than `STALE_SECONDS`
(a preempted VM's run restarted on a new VM waits that long at most).

Local filesystems create the lock with O_EXCL and take a stale one over by
renaming it aside first, so of two runs starting together exactly one wins.
Object stores (gs://) have no exclusive create through tf.io.gfile: there a
run checks, writes, and reads back its own lock, which leaves a window of a
second between two runs started at the same moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import tensorflow as tf
from absl import logging

from efficientnet.util import fileio

LOCK_FILE = "run.lock"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 120.0


class Locked(ValueError):
    """Another live run holds the directory."""


def lock_path(directory: str) -> str:
    return os.path.join(directory, LOCK_FILE)


@contextlib.contextmanager
def hold(directory: str, flag: str, path: str | None = None) -> Iterator[None]:
    """Holds the lock of `directory` (at `path`, default `directory/run.lock`) for the block.

    Raises `Locked`, naming `flag` and the other run, when a live run holds it.
    """
    path = path or lock_path(directory)
    token = uuid.uuid4().hex
    _acquire(path, token, directory, flag)
    stop = threading.Event()
    heartbeat = threading.Thread(target=_beat, args=(path, token, stop), daemon=True, name="run-lock-heartbeat")
    heartbeat.start()
    try:
        yield
    finally:
        stop.set()
        heartbeat.join()
        _release(path, token)


def holder(path: str) -> dict | None:
    """The lock's document, or None when there is no (readable) lock."""
    try:
        with tf.io.gfile.GFile(path) as f:
            return json.loads(f.read())
    except (tf.errors.NotFoundError, FileNotFoundError):
        return None
    except (json.JSONDecodeError, tf.errors.OpError, OSError):
        return {}  # cut short while being written: treated as stale (no pid, no heartbeat)


def is_stale(document: dict, now: float | None = None) -> bool:
    """Whether the run that wrote `document` is gone."""
    now = time.time() if now is None else now
    if now - float(document.get("heartbeat", 0)) > STALE_SECONDS:
        return True
    return document.get("host") == socket.gethostname() and not _pid_runs(int(document.get("pid", 0)))


def _document(token: str, started: float | None = None) -> dict:
    now = time.time()
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": shlex.join(sys.orig_argv),
        "started": started or now,
        "heartbeat": now,
        "token": token,
    }


def _acquire(path: str, token: str, directory: str, flag: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    for _ in range(3):  # a lost race for a stale lock is retried: the winner's lock is then live
        document = holder(path)
        if document is not None and not is_stale(document):
            raise Locked(_busy_message(directory, flag, document, path))
        if document is not None:
            if not _move_aside(path):
                continue
            logging.warning(
                "took over %s from a run that is gone (pid %s on %s, last heartbeat %s)",
                path,
                document.get("pid", "?"),
                document.get("host", "?"),
                _ago(document.get("heartbeat")),
            )
        if _create(path, _document(token)):
            return
    raise Locked(f"{flag} {directory}: another run took its lock {path} at the same moment")


def _busy_message(directory: str, flag: str, document: dict, path: str) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(document["started"])))
    return (
        f"{flag} {directory} is in use by another run: pid {document['pid']} on {document['host']}, "
        f"started {started}, alive {_ago(document['heartbeat'])} ({document.get('command', '?')}); "
        f"wait for it or stop it (its lock {path} is taken over once that run is gone)"
    )


def _ago(timestamp) -> str:
    return f"{max(0, round(time.time() - float(timestamp or 0)))} s ago"


def _create(path: str, document: dict) -> bool:
    """Creates the lock unless it exists; False when another run created it first."""
    data = json.dumps(document).encode()
    if fileio.is_remote(path):
        if tf.io.gfile.exists(path):
            return False
        fileio.write_bytes(path, data)
        return (holder(path) or {}).get("token") == document["token"]
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "wb") as f:
        f.write(data)
    return True


def _move_aside(path: str) -> bool:
    """Removes a stale lock; False when another run removed it first."""
    aside = f"{path}.stale-{uuid.uuid4().hex[:8]}"
    try:
        tf.io.gfile.rename(path, aside)
    except (tf.errors.NotFoundError, FileNotFoundError):
        return False
    tf.io.gfile.remove(aside)
    return True


def _beat(path: str, token: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_SECONDS):
        document = holder(path)
        if not document or document.get("token") != token:
            return  # taken over (this run was presumed dead): never write over another run's lock
        try:
            fileio.write_bytes(path, json.dumps(_document(token, document["started"])).encode())
        except (tf.errors.OpError, OSError) as error:
            logging.warning("cannot refresh the lock %s: %s", path, error)


def _release(path: str, token: str) -> None:
    document = holder(path)
    if document and document.get("token") == token:
        tf.io.gfile.remove(path)


def _pid_runs(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet is a zombie: gone for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
