"""Several command lines of one CLI module in a single Python process.

A `python -m <cli>` start is mostly Python and TensorFlow importing (~5 s on
a 2-core machine), far more than a bad-input case itself takes. This driver
imports the CLI module once, then for each command line resets absl's flags
and runs the module's own `if __name__ == "__main__":` block, so every case
goes through the real entry code (`cli.run` → `absl.app.run`, which re-parses
the flags on a rerun). Each case gets its own stdout, stderr (file descriptors
1 and 2, so TensorFlow's C++ output lands there too) and exit status, as a
process of its own would. Tests keep at least one case per CLI as a genuinely
fresh `python -m` process, so that the interpreter's side of the entry point
stays covered too.

Run as `python tests/cli_driver.py MODULE REQUEST_JSON`; tests call
`run_in_one_process`.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path


def _main_block(module) -> object:
    """The compiled body of the module's `if __name__ == "__main__":` block."""
    path = Path(module.__file__)
    for node in ast.parse(path.read_text(), str(path)).body:
        test = node.test if isinstance(node, ast.If) else None
        if (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Name)
            and test.left.id == "__name__"
            and [type(op) for op in test.ops] == [ast.Eq]
            and [getattr(c, "value", None) for c in test.comparators] == ["__main__"]
        ):
            return compile(ast.Module(body=node.body, type_ignores=[]), str(path), "exec")
    raise SystemExit(f"{path} has no `if __name__ == '__main__':` block")


def _exit_status(code) -> int:
    """What the interpreter makes of `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _redirected(stdout_path: str, stderr_path: str):
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _drive(module_name: str, request_path: str) -> None:
    from absl import flags

    request = json.loads(Path(request_path).read_text())
    module = importlib.import_module(module_name)
    entry = _main_block(module)
    statuses = []
    for case in request:
        with _redirected(case["stdout"], case["stderr"]):
            flags.FLAGS.unparse_flags()
            sys.argv = [module.__file__, *case["arguments"]]
            try:
                exec(entry, vars(module))
                status = 0
            except SystemExit as exit_:
                status = _exit_status(exit_.code)
            except Exception:  # what the interpreter does with an uncaught exception
                traceback.print_exc()
                status = 1
        statuses.append(status)
    Path(request_path).with_suffix(".statuses.json").write_text(json.dumps(statuses))


def run_in_one_process(
    module: str, argument_lists: list[list[str]], work_dir: Path, *, cwd, env, timeout: float = 600
) -> list[subprocess.CompletedProcess]:
    """Runs `python -m module *arguments` for each list, in one process; one result per list.

    `args` of each result is the command line it stands for. The driver's own
    stdout and stderr (imports, warnings) belong to no case; they are in the
    exception if the driver fails.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    request_path = work_dir / f"{module}.request.json"
    cases = [
        {
            "arguments": arguments,
            "stdout": str(work_dir / f"{module}.{index}.stdout"),
            "stderr": str(work_dir / f"{module}.{index}.stderr"),
        }
        for index, arguments in enumerate(argument_lists)
    ]
    request_path.write_text(json.dumps(cases))
    driver = subprocess.run(
        [sys.executable, __file__, module, str(request_path)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if driver.returncode != 0:
        raise RuntimeError(f"the driver for {module} failed (exit {driver.returncode}):\n{driver.stderr[-4000:]}")
    statuses = json.loads(request_path.with_suffix(".statuses.json").read_text())
    return [
        subprocess.CompletedProcess(
            [sys.executable, "-m", module, *case["arguments"]],
            status,
            Path(case["stdout"]).read_text(),
            Path(case["stderr"]).read_text(),
        )
        for case, status in zip(cases, statuses, strict=True)
    ]


if __name__ == "__main__":
    _drive(sys.argv[1], sys.argv[2])
