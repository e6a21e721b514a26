"""Stopping cleanly on SIGTERM and Ctrl-C.

Preemptible VMs, TPU hosts, `timeout`, batch schedulers and Kubernetes all
stop a process with SIGTERM and a few seconds of grace before SIGKILL. Python
dies at once on SIGTERM by default, losing the steps since the last periodic
checkpoint and leaving any child process running. `requests()` replaces that
for the length of a block: the signal is recorded, and the work stops at its
next safe point (training: after the current step, with a checkpoint), or at
once when the block asked to be interrupted (labeling: nothing is committed
until the end, so there is nothing to save). A second Ctrl-C interrupts at
once, as a user pressing it twice expects.

Handlers can only be installed from the main thread; elsewhere (a test
running a loop in a thread) the block runs with the process's own handling.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """Raised in the main thread by a signal when the block asked for it.

    A BaseException, like KeyboardInterrupt, so that libraries which catch
    and wrap `Exception` (Beam does) let it through to the CLI.
    """


class StopRequest:
    """Which signal asked the work to stop, if one did."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return {signal.SIGINT: "Ctrl-C (SIGINT)"}.get(self.signal, self.signal.name if self.signal else "")


@contextlib.contextmanager
def requests(interrupt: bool = False, forward: Callable[[int], None] | None = None) -> Iterator[StopRequest]:
    """Records SIGTERM and SIGINT in the returned request while the block runs.

    `interrupt`: raise `Interrupted` at once instead. `forward(signum)` is
    called with each signal first (to pass it on to child processes).
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum, frame):
        del frame
        again = request.requested
        request.signal = signal.Signals(signum)
        if forward:
            forward(signum)
        if interrupt:
            raise Interrupted(request.name)
        if again and signum == signal.SIGINT:
            raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, handle) for signum in SIGNALS}
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_children(
    starts: Sequence[Callable[[], subprocess.Popen]],
    jobs: int = 1,
    on_exit: Callable[[int, int], None] | None = None,
) -> StopRequest:
    """Starts child processes (`starts[i]()` starts the i-th) at most `jobs` at a time, to their end.

    SIGTERM is passed on to every running child, so that each checkpoints and
    exits instead of running on without its parent (a scheduler or a
    preempted VM signals this process only); Ctrl-C is not, because a terminal
    sends it to the children already. Once either arrives no further child is
    started, and the running ones are waited for. `on_exit(i, returncode)` is
    called as each ends. Returns the stop request, for the caller to report.
    """
    running: dict[int, subprocess.Popen] = {}
    pending = list(range(len(starts)))

    def forward(signum: int) -> None:
        if signum == signal.SIGTERM:
            for child in running.values():
                if child.poll() is None:
                    child.send_signal(signum)

    with requests(forward=forward) as stop:
        while running or (pending and not stop.requested):
            while pending and len(running) < jobs and not stop.requested:
                index = pending.pop(0)
                running[index] = starts[index]()
                if stop.requested:  # signalled while the child was starting
                    forward(stop.signal)
            ended = {index: child.poll() for index, child in running.items()}
            ended = {index: code for index, code in ended.items() if code is not None}
            for index, returncode in ended.items():
                del running[index]
                if on_exit:
                    on_exit(index, returncode)
            if running and not ended:
                # One child: block in wait() (retried by Python after a handled signal); several: poll.
                if len(running) == 1 and not pending:
                    next(iter(running.values())).wait()
                else:
                    time.sleep(0.2)
    return stop
