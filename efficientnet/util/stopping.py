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
import threading
from collections.abc import Callable, Iterator

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
