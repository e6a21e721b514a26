"""Progress lines for the long loops: how many images are done, how fast, and when it ends.

Labeling a corpus, predicting a folder or running a robustness benchmark takes minutes to
hours on real data, and a silent console cannot be told from a hung one. `ProgressLine`
prints lines such as

  predict folder:/data/photos: 3,072/50,000 images | 412.3 images/s | ETA 1m54s

at most every `REPORT_INTERVAL_S` seconds, and a last line with the total count, time and mean
rate when the loop ends. The interval is measured in time, not in images, because the same
loop runs at 50 images/s on a CPU and at thousands on an accelerator. The rate of a line is
the one since the previous line (the first batches include tracing and loading; the line
should say how fast the run goes now); the ETA divides what is left by that rate and needs the
total, which not every source can count (`Source.num_examples` may be None): without it a
line gives the count and the rate only.

Lines go to stderr, flushed at once, so they pass through pipes and the console filter
(efficientnet/util/console.py) as they are written, and stdout stays free for a tool's
results. One object may be advanced from several threads (the labeling job's DoFn instances
of one worker process share one).

The training loop's lines come from `StepProgress`, every --log_every_steps steps rather than
every few seconds (a step is the loop's unit, and every worker of a multi-worker run then
prints the same steps); they carry the loss parts, go to TensorBoard too, and share the ETA
arithmetic and the duration format below:

  step 10/60 | 83.1 img/s | loss 2.52, labeled 2.492, l2 0.02773 | lr 0.00100 | ETA 0m36s
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

import tensorflow as tf

REPORT_INTERVAL_S = 10.0


def format_duration(seconds: float) -> str:
    """`3m12s` under an hour, `1h02m` from an hour on (seconds are noise at that length)."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def seconds_left(done: float, total: float | None, rate: float) -> float | None:
    """Seconds until `total` at `rate` per second; None when the total or the rate is unknown."""
    if total is None or rate <= 0:
        return None
    return max(total - done, 0) / rate


class ProgressLine:
    """Counts work done in a loop and prints a progress line now and then (see the module docstring).

    Args:
      label: What is running, first on every line (e.g. `predict folder:/data/photos`).
      total: How many units the loop will do, or None when unknown (no ETA then).
      unit: What is counted, in the plural (`images`, `sequences`).
      interval_s: At least this long between two lines.
      clock: Seconds, monotonic; tests pass a fake one.
      stream: Where lines go; None for the `sys.stderr` of the moment of each line (so that a
        stderr redirected after this object was made, as pytest does, still gets them).
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "images",
        interval_s: float = REPORT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        stream: TextIO | None = None,
    ):
        self.label, self.total, self.unit, self.interval_s = label, total, unit, interval_s
        self.done = self.failed = 0
        self._clock, self._stream = clock, stream
        self._start = self._last_time = clock()
        self._last_done = 0
        self._closed = False
        self._lock = threading.Lock()

    def advance(self, count: int, *, failed: int = 0) -> None:
        """Adds `count` units done (`failed` of them could not be read) and prints a line when one is due."""
        with self._lock:
            self.done += count
            self.failed += failed
            now = self._clock()
            # Once the total is reached, the final line (`close`) says it all.
            unfinished = self.total is None or self.done < self.total
            if unfinished and now - self._last_time >= self.interval_s:
                self._print(self.line(now))
                self._last_time, self._last_done = now, self.done

    def line(self, now: float) -> str:
        """The line for the state at `now`: count, rate since the previous line, ETA."""
        rate = (self.done - self._last_done) / max(now - self._last_time, 1e-9)
        parts = [f"{self.label}: {self._count()} {self.unit}", f"{rate:.1f} {self.unit}/s"]
        eta = seconds_left(self.done, self.total, rate)
        if eta is not None:
            parts.append(f"ETA {format_duration(eta)}")
        return " | ".join(parts + self._failures())

    def final_line(self, now: float) -> str:
        """The last line: count, total time and mean rate."""
        elapsed = now - self._start
        parts = [
            f"{self.label}: {self._count()} {self.unit} in {format_duration(elapsed)}",
            f"{self.done / max(elapsed, 1e-9):.1f} {self.unit}/s",
        ]
        return " | ".join(parts + self._failures())

    def close(self) -> None:
        """Prints the final line; later calls print nothing."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._print(self.final_line(self._clock()))

    def _count(self) -> str:
        return f"{self.done:,}" if self.total is None else f"{self.done:,}/{self.total:,}"

    def _failures(self) -> list[str]:
        return [f"{self.failed:,} undecodable"] if self.failed else []

    def _print(self, text: str) -> None:
        print(text, file=self._stream or sys.stderr, flush=True)


def format_metrics(values: dict[str, float]) -> str:
    """`loss 2.52, labeled 2.492`: four significant digits, as the training lines and logs print them."""
    return ", ".join(f"{name} {value:.4g}" for name, value in values.items())


class StepProgress:
    """The training loop's progress: a line on stderr and TensorBoard scalars per report.

    Args:
      total_steps: The step the run ends at.
      start_step: The step it starts (or resumes) at; the first line's rate counts from there.
      images_per_step: Images in one step's global batch, labeled and unlabeled together.
      summary_dir: Where TensorBoard scalars go; None writes none (only the chief writes them,
        every worker prints its lines).
      clock: Seconds; tests pass a fake one.
      stream: Where lines go; None for the `sys.stderr` of the moment (as `ProgressLine`).
    """

    def __init__(
        self,
        total_steps: int,
        start_step: int,
        images_per_step: int,
        summary_dir: str | None,
        *,
        clock: Callable[[], float] = time.time,
        stream: TextIO | None = None,
    ):
        self.total_steps, self.images_per_step = total_steps, images_per_step
        self.writer = tf.summary.create_file_writer(summary_dir) if summary_dir else tf.summary.create_noop_writer()
        self._clock, self._stream = clock, stream
        self._last_time, self._last_step = clock(), start_step

    def report(self, step: int, losses: dict[str, float], learning_rate: float) -> None:
        """Prints the line for `step` (rate since the previous report) and writes its scalars."""
        now = self._clock()
        rate = (step - self._last_step) * self.images_per_step / max(now - self._last_time, 1e-9)
        eta = seconds_left(step * self.images_per_step, self.total_steps * self.images_per_step, rate)
        print(
            f"step {step}/{self.total_steps} | {rate:.1f} img/s | {format_metrics(losses)} | "
            f"lr {learning_rate:.5f} | ETA {format_duration(eta)}",
            file=self._stream or sys.stderr,
            flush=True,
        )
        with self.writer.as_default(step=step):
            for name, value in losses.items():
                tf.summary.scalar(f"loss/{name}", value)
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("images_per_second", rate)
        self._last_time, self._last_step = now, step

    def close(self) -> None:
        self.writer.flush()
