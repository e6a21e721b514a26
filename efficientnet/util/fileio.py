"""Atomic writes for local and gs:// paths.

A reader must never see a half-written file: an interrupted run leaves either
the previous complete file or none. Everything is written to a temporary name
in the destination directory and renamed into place (atomic on local
filesystems; on GCS the object only appears once the upload completes).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from collections.abc import Iterator
from typing import Any

import tensorflow as tf

# Every run (training, labeling, a step of the iteration) writes its resolved
# settings next to its outputs under this name, so a result can be traced.
RUN_CONFIG_FILE = "config.json"


def is_remote(path: str) -> bool:
    """Whether `path` is a URL (gs://…) rather than a local path: only local files take O_EXCL or an append."""
    return "://" in path


def _temporary_name(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def atomic_writer(path: str, mode: str = "wb") -> Iterator[tf.io.gfile.GFile]:
    """A file to write `path` through, for outputs written piece by piece.

    It is a temporary name beside `path`, renamed to `path` when the block
    ends and removed when the block raises (a Ctrl-C included); a killed
    process leaves only the hidden temporary file, never a partial `path`.
    """
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    temporary = _temporary_name(path)
    try:
        with tf.io.gfile.GFile(temporary, mode) as f:
            yield f
        tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise


def write_bytes(path: str, data: bytes) -> None:
    with atomic_writer(path) as f:
        f.write(data)


def write_json(path: str, value: Any) -> None:
    """Standard JSON: NaN (an undefined ratio, say) is written as null, which every reader parses."""
    text = json.dumps(_without_nan(value), indent=2, sort_keys=True, allow_nan=False)
    write_bytes(path, (text + "\n").encode())


def _without_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value


def check_writable_dir(path: str, flag: str) -> None:
    """Creates `path` if needed and proves it writable, naming `flag` if not.

    Called before a run's work starts, so that a read-only or mistyped output
    location fails in a second, not at the first checkpoint an hour later.
    """
    probe = _temporary_name(os.path.join(path, "write-check"))
    try:
        tf.io.gfile.makedirs(path)
        with tf.io.gfile.GFile(probe, "wb") as f:
            f.write(b"")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as error:
        reason = error.message if isinstance(error, tf.errors.OpError) else str(error)
        raise ValueError(f"{flag} {path!r} cannot be written ({reason})") from None


def read_json(path: str) -> Any:
    """Reads JSON, naming the file when it is missing or corrupt."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    with tf.io.gfile.GFile(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None


def copy_file(source: str, destination: str) -> None:
    """Copies a (typically local, freshly written) file into place atomically."""
    tf.io.gfile.makedirs(os.path.dirname(destination) or ".")
    temporary = _temporary_name(destination)
    try:
        tf.io.gfile.copy(source, temporary, overwrite=True)
        tf.io.gfile.rename(temporary, destination, overwrite=True)
    except BaseException:  # a full disk leaves a partial copy: never a file nobody removes
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise
