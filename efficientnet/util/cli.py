"""Shared entry point for the project's absl command-line tools.

Users should see one line saying what is wrong with their input, not a
Python traceback, and scripts calling the tools need a non-zero exit code.
`run(main)` gives every CLI that behaviour: errors that describe bad input
(`ValueError`, which includes unknown registry names, and missing files) are
printed on one line as `error: …` and exit with status 2. A run stopped by
something outside the program (`Stopped`: a worker of a multi-worker run
died, SIGTERM stopped it) is one line too, saying how to resume, and exits
with status 1, as does a full disk (`disk_full`), whatever library raised it.
Anything else is a bug and keeps its traceback. A flag the program does not
define is an error too, named with the nearest one it does define
(`unknown_flag`): absl's own message names the nearest of every flag in the
process, TensorFlow's included, and exits with status 1.
"""

from __future__ import annotations

import difflib
import errno
import re
import sys
from collections.abc import Callable, Iterable
from typing import NoReturn

from absl import app, flags

USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, PermissionError)
EXIT_USER_ERROR = 2
EXIT_STOPPED = 1


# Libraries whose flags every program has but no user of ours sets: not suggested for a misspelling.
LIBRARY_FLAG_MODULES = ("absl", "tensorflow", "keras", "tf_keras", "apache_beam")


class Stopped(RuntimeError):
    """The work stopped for a reason outside this program; the message says how to go on."""


def one_line(message: str) -> str:
    """Library messages sometimes span lines (TFDS's, Beam's); a CLI error is one."""
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


def own_flags() -> list[str]:
    """The names of the flags this program defines (not its libraries')."""
    return sorted(
        flag.name
        for module, defined in flags.FLAGS.flags_by_module_dict().items()
        if module.split(".")[0] not in LIBRARY_FLAG_MODULES
        for flag in defined
    )


def unknown_flag(name: str, known: Iterable[str] | None = None) -> str:
    """`--name: unknown flag; did you mean --nearest?`, the nearest among `known` (default: `own_flags()`)."""
    nearest = difflib.get_close_matches(name, list(own_flags() if known is None else known), n=1)
    return f"--{name}: unknown flag" + (f"; did you mean --{nearest[0]}?" if nearest else " (--helpshort lists them)")


def disk_full(error: BaseException) -> str | None:
    """The one-line message for an error caused by a full disk, else None.

    A full disk reaches us as OSError(ENOSPC) from Python, as TensorFlow's
    `ResourceExhaustedError` ("PATH; No space left on device") from its file
    system, and wrapped in a RuntimeError by Beam; the path is named where
    the error holds one. Every writer writes to a temporary name and renames
    it into place, so what was written before stays intact.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return _disk_full_line(error.filename)
        found = re.search(r"(?:(\S+?);? )?No space left on device", str(error))
        if found:
            return _disk_full_line(found.group(1))
        error = error.__cause__ or error.__context__
    return None


def _disk_full_line(path: str | None) -> str:
    where = f" writing {path}" if path else ""
    return f"no space left on device{where}; what was written before is intact: free space and rerun the same command"


def _exit_with(message: str, status: int) -> NoReturn:
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(status)


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return flags.FLAGS(argv)
    except flags.UnrecognizedFlagError as error:
        _exit_with(unknown_flag(error.flagname), EXIT_USER_ERROR)
    except flags.Error as error:  # a value the flag's type refuses: "flag --batch_size=abc: …"
        _exit_with(str(error), EXIT_USER_ERROR)


def run(main: Callable[[list[str]], None]) -> None:
    """`absl.app.run(main)` with one-line errors for bad input and unknown flags."""

    def guarded(argv):
        try:
            main(argv)
        except USER_ERRORS as error:
            _exit_with(str(error), EXIT_USER_ERROR)
        except Stopped as error:
            _exit_with(str(error), EXIT_STOPPED)
        except Exception as error:
            message = disk_full(error)
            if message is None:
                raise
            _exit_with(message, EXIT_STOPPED)

    app.run(guarded, flags_parser=_parse_flags)
