"""A quiet console for the command-line tools: TensorFlow's native log noise is filtered out.

Importing TensorFlow prints native (C++) INFO lines — oneDNN, CPU features, "Could not find
cuda drivers" — and, on a machine without a GPU, a `failed call to cuInit` error; every
checkpoint save adds a `Sharding callback duration` line. None of it says anything about the
user's run, and it buries the progress lines and real errors. `TF_CPP_MIN_LOG_LEVEL` cannot
help: the lines written while TensorFlow's shared libraries load ignore it, and the checkpoint
line is Python (absl) logging. So the filter works on file descriptor 2 itself: fd 2 becomes a
pipe, and a reader forwards every line to the real stderr except the noise (`is_noise`).
Everything else — Python warnings and tracebacks, `error: …` lines, the project's progress
lines and absl Python logging such as `resumed from … at step N`, native E/F lines — passes.
`--verbosity=1` (absl's flag, also `-v 1`) turns the filter off. Apache Beam's INFO logging
(Python, but about Beam's internals) is held back to warnings on the same terms.

The reader is a forked process, not a thread: a native fatal error (`F… Check failed`) or a
crash writes its last words to fd 2 and aborts at once, which would take a reader thread down
before it forwards them; a separate process outlives the writer and forwards everything up to
EOF. Children (the CLIs that `pipelines.iterate` runs, Beam workers) inherit the pipe as their
fd 2 and keep writing through the same filter, even after this process has exited.

Installed only for `python -m <cli>` runs (`quiet_native_logs`), from the CLI packages'
`__init__`, before anything imports TensorFlow; `import efficientnet` from a notebook or pytest
leaves the console alone. Only the standard library and absl's logging are imported here, so it
stays cheap.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import select
import signal
import sys
import time

VERBOSE_LEVEL = 1  # --verbosity at or above this turns the filter off

# glog/absl line prefix, C++ and Python alike: severity, MMDD, time, thread id, file:line].
# Before absl::InitializeLog() the C++ time reads `00:00:<unix seconds>`, hence `\S+`.
_LOG_LINE = re.compile(r"^(?P<severity>[IWEF])\d{4} \S+\s+\d+ (?P<file>[^\s:\]]+):\d+\] (?P<message>.*)$")
_PRE_INIT_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_CPU_FEATURES_CONTINUATION = "To enable the following instructions:"  # second line of cpu_feature_guard's INFO
# Following lines of a native warning about a failed op (an undecodable image that is skipped and reported).
_OP_CONTEXT_CONTINUATION = "[[{{"
# (file, message prefix): a line on every checkpoint save, and one per cross-replica reduction
# traced in a multi-worker step (hundreds, with synchronized batch norm).
_PYTHON_NOISE = {
    ("functional_saver.py", "Sharding callback duration:"),
    ("cross_device_ops.py", "Collective all_reduce tensors:"),
}
_VERBOSITY_ARG = re.compile(r"^--?(?:verbosity|v)(?:=(?P<value>.*))?$")

_LINE_END = re.compile(rb"\r\n|\r|\n")  # `\r` too, so that progress bars redrawn in place stay live
_PARTIAL_LINE_WAIT_S = 0.1  # an unterminated line is forwarded after this long without more output
_DRAIN_TIMEOUT_S = 2.0  # at exit, how long to wait for the reader to forward what is left
_READ_SIZE = 65536

_installed = False


def has_nvidia_gpu() -> bool:
    """Whether an NVIDIA driver exposes a device; without one, a cuInit failure is expected."""
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


def is_noise(line: str, has_gpu: bool) -> bool:
    """Whether a stderr line (with or without its line end) is TensorFlow noise to drop.

    Native INFO/WARNING lines are dropped; absl Python logging has the same prefix but names
    a `.py` file, and the project's own messages (`resumed from …`, `exported …`) are among
    those, so Python lines stay except the checkpoint-save line. Native errors stay, except the
    cuInit failure on a machine without an NVIDIA GPU, where it only says there is no GPU.
    """
    line = line.rstrip("\r\n")
    if line == _PRE_INIT_BANNER or line.startswith(_CPU_FEATURES_CONTINUATION):
        return True
    if line.lstrip().startswith(_OP_CONTEXT_CONTINUATION):
        return True
    match = _LOG_LINE.match(line)
    if not match:
        return False
    severity, source, message = match["severity"], match["file"], match["message"]
    if source.endswith(".py"):
        return any(source == file and message.startswith(prefix) for file, prefix in _PYTHON_NOISE)
    if severity in "IW":
        return True
    return severity == "E" and "failed call to cuInit" in message and not has_gpu


def verbosity(args: list[str]) -> int:
    """The value of absl's `--verbosity`/`-v` among command-line arguments (not argv[0]); 0 if absent.

    Read by hand because the filter must be in place before absl parses flags (parsing needs
    the CLI's modules, and so TensorFlow, imported). Accepts absl's spellings: one or two
    dashes, `=value` or the value as the next argument; the last one wins; `--` ends flags.
    A value that is not an integer counts as 0: absl itself will reject it.
    """
    level = 0
    for i, arg in enumerate(args):
        if arg == "--":
            break
        match = _VERBOSITY_ARG.match(arg)
        if not match:
            continue
        value = match["value"] if match["value"] is not None else (args[i + 1] if i + 1 < len(args) else "")
        try:
            level = int(value)
        except ValueError:
            level = 0
    return level


def quiet_native_logs(argv: list[str] | None = None) -> bool:
    """Installs the stderr filter for a `python -m <cli>` run below `--verbosity=1`; True if it is on.

    While Python imports the packages of `python -m package.module`, `sys.argv[0]` is still
    "-m"; that is what tells a command line from `import efficientnet` in a notebook or under
    pytest, where nothing is installed. Installed at most once per process: every CLI package
    calls this, and `efficientnet` too.
    """
    global _installed
    if _installed:
        return True
    argv = sys.argv if argv is None else argv
    if not argv or argv[0] != "-m":
        return False
    # TensorFlow gives its Python logger a handler of its own when the root logger has none at the time
    # it is imported, and every TensorFlow warning then prints twice (its format and absl's). absl's
    # handler, which `absl.app.run` installs anyway, is put in place first.
    from absl import logging as absl_logging

    absl_logging.use_absl_handler()
    if verbosity(argv[1:]) >= VERBOSE_LEVEL:
        return False
    # Beam's INFO lines ("Creating state cache with size …", "Renamed 1 shards in 0.01 seconds.") describe
    # its internals, not the labeling run; its warnings and errors stay. absl's handler formats them like
    # the project's own logging, so they are silenced at the source rather than by the filter.
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    # An exception in a transform reaches the launcher, which reports it (one line for a full disk,
    # a traceback for a bug); the in-process worker's ERROR log of the same traceback only doubles it.
    logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    if not hasattr(os, "fork"):
        return False
    _installed = _install(has_nvidia_gpu())
    return _installed


def _install(has_gpu: bool) -> bool:
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:  # forking would copy other threads' locks
        return False
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    try:
        real_stderr = os.dup(2)  # not inheritable: children see only the pipe
    except OSError:  # no stderr at all: nothing to filter
        return False
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # out of processes: run unfiltered rather than not at all
        for fd in (real_stderr, read_end, write_end):
            os.close(fd)
        return False
    if pid == 0:  # the reader
        code = 0
        try:
            os.close(write_end)
            _forward(read_end, real_stderr, has_gpu)
        except BaseException:  # the reader must never run the parent's code after its fork
            code = 1
        finally:
            os._exit(code)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    atexit.register(_restore, os.getpid(), pid, real_stderr)
    return True


def _restore(owner: int, reader: int, real_stderr: int) -> None:
    """At exit: gives fd 2 back and waits (briefly) until the reader has forwarded everything.

    Restoring fd 2 closes this process's end of the pipe; the reader then sees EOF once every
    child holding the pipe is gone, forwards the rest and exits. A child still running after
    `_DRAIN_TIMEOUT_S` is not waited for: the reader stays with it and forwards its output.
    """
    if os.getpid() != owner:  # a forked child exiting: its fd 2 stays the pipe
        return
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    os.dup2(real_stderr, 2)
    os.close(real_stderr)
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(reader, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else's wait(): it has finished
            return
        if done:
            return
        time.sleep(0.005)


def _forward(read_end: int, out: int, has_gpu: bool) -> None:
    """The reader's loop: copies the pipe to `out` line by line, without the noise, until EOF.

    Complete lines go out as soon as they arrive. A line still unterminated after
    `_PARTIAL_LINE_WAIT_S` (a prompt, a progress bar) is judged on what has arrived and the rest
    of it follows that verdict.
    """
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # Ctrl-C hits the whole process group; drain to EOF instead
    import fcntl  # POSIX only, like fork: imported here so that `import efficientnet` works everywhere

    # With stdin or stdout closed, a new descriptor can land on 0 or 1; move ours out of the way.
    read_end, out = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3) if fd < 3 else fd for fd in (read_end, out))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # hold no one's stdin/stdout open: a `| consumer` must see EOF when the CLI ends
        os.dup2(devnull, fd)
    os.close(devnull)
    keep = sorted({read_end, out})
    os.closerange(3, keep[0])
    if len(keep) > 1:
        os.closerange(keep[0] + 1, keep[1])
    os.closerange(keep[-1] + 1, max(os.sysconf("SC_OPEN_MAX"), keep[-1] + 1))

    pending = b""
    rest_of_line: bool | None = None  # the verdict on a line whose start was already forwarded or dropped
    while True:
        if pending and not select.select([read_end], [], [], _PARTIAL_LINE_WAIT_S)[0]:
            keep_it = rest_of_line if rest_of_line is not None else not _noise(pending, has_gpu)
            if keep_it:
                _write(out, pending)
            pending, rest_of_line = b"", keep_it
            continue
        chunk = os.read(read_end, _READ_SIZE)
        if not chunk:
            break
        pending += chunk
        start = 0
        kept = []
        for end in _LINE_END.finditer(pending):
            line = pending[start : end.end()]
            keep_it = rest_of_line if rest_of_line is not None else not _noise(line, has_gpu)
            if keep_it:
                kept.append(line)
            rest_of_line = None
            start = end.end()
        pending = pending[start:]
        _write(out, b"".join(kept))
    if pending and (rest_of_line if rest_of_line is not None else not _noise(pending, has_gpu)):
        _write(out, pending)


def _noise(line: bytes, has_gpu: bool) -> bool:
    return is_noise(line.decode("utf-8", errors="replace"), has_gpu)


def _write(fd: int, data: bytes) -> None:
    """Writes all of `data`; if the real stderr is gone, drops it (and keeps draining the pipe)."""
    while data:
        try:
            data = data[os.write(fd, data) :]
        except InterruptedError:
            continue
        except OSError:
            return
