"""All-or-nothing output directories for the labeling job.

The job writes everything into a sibling `<output_dir>.tmp-<random>` (same
parent, so same filesystem or bucket) and only moves it to `output_dir` once
the pipeline has succeeded and `stats.json` is there. A failed or killed run
therefore never leaves partial records in `output_dir` — at worst a `.tmp-*`
sibling, which a failed run removes itself and a killed run's rerun removes —
and a rerun replaces a previous complete output only once the new one is
complete.

Local filesystems: the old output is renamed aside, the new one renamed into
place (two atomic renames), then the old one deleted; a kill between the
renames leaves the old output intact at `<output_dir>.old-<random>`, and
the next run puts it back (`recover_interrupted_commit`) before it starts.
Object stores (gs://) have no directory rename: the old `stats.json` is
removed first, then the new objects are renamed one by one, old objects the
new output does not overwrite are deleted, and the new `stats.json` comes
last. So on gs:// the directory is complete exactly when it holds a
`stats.json`; a reader of a bucket that another run may be replacing should
wait for it.
"""

from __future__ import annotations

import os
import uuid

import tensorflow as tf

from pseudolabel.outputs import STATS_FILE


def _is_local(path: str) -> bool:
    return "://" not in path


def lock_path(output_dir: str) -> str:
    """The run lock of `output_dir` (efficientnet/util/runlock.py): beside it, since a commit replaces it whole."""
    return f"{output_dir.rstrip('/')}.lock"


def temporary_dir(output_dir: str) -> str:
    return f"{output_dir.rstrip('/')}.tmp-{uuid.uuid4().hex[:8]}"


def check_replaceable(output_dir: str) -> None:
    """Refuses to replace a non-empty directory that is not a labeling output,
    so a mistyped --output_dir cannot delete unrelated data."""
    if not tf.io.gfile.exists(output_dir):
        return
    if not tf.io.gfile.isdir(output_dir):
        raise ValueError(f"--output_dir {output_dir!r} is a file")
    contents = tf.io.gfile.listdir(output_dir)
    if contents and STATS_FILE not in contents:
        raise ValueError(
            f"--output_dir {output_dir!r} exists, is not empty and holds no {STATS_FILE}; "
            "refusing to replace what is not a pseudo-label output"
        )


def discard_leftovers(output_dir: str) -> list[str]:
    """Removes the `<output_dir>.tmp-*` siblings of runs that were killed;
    returns their paths. Nothing reads them, but at scale they hold a
    corpus's worth of records."""
    leftovers = tf.io.gfile.glob(f"{output_dir.rstrip('/')}.tmp-*")
    for directory in leftovers:
        discard(directory)
    return leftovers


def recover_interrupted_commit(output_dir: str) -> str | None:
    """Undoes what a run killed during `commit` left behind; returns what it did, in words.

    Killed between its two renames, a local commit leaves the previous output
    at `<output_dir>.old-<random>` and nothing at `output_dir`: it is renamed
    back. Killed after them, the new output is in place and the old one is
    only waiting to be deleted: it is deleted. Only complete outputs (with
    `stats.json`) are put back; the newest, if several.
    """
    output_dir = output_dir.rstrip("/")
    if not _is_local(output_dir):
        return None
    old = [path for path in tf.io.gfile.glob(f"{output_dir}.old-*") if tf.io.gfile.isdir(path)]
    complete = sorted(
        (path for path in old if tf.io.gfile.exists(os.path.join(path, STATS_FILE))), key=os.path.getmtime
    )
    done = []
    if complete and not tf.io.gfile.exists(output_dir):
        os.rename(complete[-1], output_dir)
        done.append(f"put the previous output {complete[-1]} back at {output_dir}")
        old.remove(complete[-1])
    for path in old:
        discard(path)
        done.append(f"removed {path}")
    return "; ".join(done) or None


def discard(directory: str) -> None:
    """Best-effort removal of a temporary directory."""
    try:
        if tf.io.gfile.exists(directory):
            tf.io.gfile.rmtree(directory)
    except tf.errors.OpError:
        pass


def commit(temporary: str, output_dir: str) -> None:
    """Moves the complete `temporary` directory to `output_dir`, replacing it."""
    if not tf.io.gfile.exists(os.path.join(temporary, STATS_FILE)):
        raise RuntimeError(f"{temporary} has no {STATS_FILE}: the labeling run did not complete")
    output_dir = output_dir.rstrip("/")
    if _is_local(output_dir):
        old = None
        if os.path.exists(output_dir):
            old = f"{output_dir}.old-{uuid.uuid4().hex[:8]}"
            os.rename(output_dir, old)
        os.rename(temporary, output_dir)
        if old is not None:
            discard(old)
        return
    old_files = set(_files_under(output_dir)) if tf.io.gfile.exists(output_dir) else set()
    new_files = [relative for relative in _files_under(temporary) if relative != STATS_FILE]
    if STATS_FILE in old_files:
        tf.io.gfile.remove(os.path.join(output_dir, STATS_FILE))  # incomplete from here until the new one lands
    for relative in new_files:
        tf.io.gfile.rename(os.path.join(temporary, relative), os.path.join(output_dir, relative), overwrite=True)
    for relative in old_files - set(new_files) - {STATS_FILE}:
        tf.io.gfile.remove(os.path.join(output_dir, relative))
    tf.io.gfile.rename(os.path.join(temporary, STATS_FILE), os.path.join(output_dir, STATS_FILE), overwrite=True)
    discard(temporary)


def _files_under(directory: str) -> list[str]:
    files = []
    for root, _, names in tf.io.gfile.walk(directory):
        for name in names:
            files.append(os.path.join(root, name)[len(directory.rstrip("/")) :].lstrip("/"))
    return files
