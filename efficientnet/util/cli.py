"""Shared entry point for the project's absl command-line tools.

Users should see one line saying what is wrong with their input, not a
Python traceback, and scripts calling the tools need a non-zero exit code.
`run(main)` gives every CLI that behaviour: errors that describe bad input
(`ValueError`, which includes unknown registry names, and missing files) are
printed on one line as `error: …` and exit with status 2. A run stopped by
something outside the program (`Stopped`: a worker of a multi-worker run
died) is one line too, saying how to resume, and exits with status 1.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from absl import app

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)
EXIT_USER_ERROR = 2
EXIT_STOPPED = 1


class Stopped(RuntimeError):
    """The work stopped for a reason outside this program; the message says how to go on."""


def one_line(message: str) -> str:
    """Library messages sometimes span lines (TFDS's, Beam's); a CLI error is one."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def run(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)` with one-line errors for bad input."""

    def guarded(argv):
        try:
            main(argv)
        except USER_ERRORS as error:
            print(f"error: {one_line(str(error))}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        except Stopped as error:
            print(f"error: {one_line(str(error))}", file=sys.stderr)
            sys.exit(EXIT_STOPPED)

    app.run(guarded)
