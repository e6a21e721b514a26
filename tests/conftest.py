"""Fixtures shared by several test modules, and the work the suite runs in the background.

Most tests run in this process and keep about one core busy; the end-to-end
scenarios only drive CLI processes, each of which also keeps about one core
busy. So the scenarios run in background threads from the start of the
session, one scenario at a time and confined to the last CPU, while this
process runs the other tests; the tests that check a scenario run last, and
the first of them to wait lets the scenarios use every CPU. Confining them,
rather than letting a dozen TensorFlow processes share two cores, keeps this
process's tests at full speed and spares the CPU time that TensorFlow's
thread pools spin away when oversubscribed. The session teacher trains in the
background too, unconfined, as a `teacher.train` process: the tests that do
not need it run first.
"""

import collections
import contextlib
import inspect
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tiny_runs import ONE_THREAD

ROOT = Path(__file__).resolve().parents[1]
# One TensorFlow thread per process, for this process and every process the tests start (they
# inherit os.environ), set before anything starts TensorFlow: a run's numbers then do not depend
# on how many CPUs it found (tiny_runs.py), and the suite runs about two things at once on two
# cores, where larger thread pools would only spin away CPU time waiting for each other.
os.environ.update(ONE_THREAD)
TEACHER_FIXTURES = {"teacher", "teacher_run"}
SESSION_START = time.monotonic()
BACKGROUND = {}  # name -> _Background, for the terminal summary


class _Scheduling:
    """Where and how many scenarios run: one at a time on the last CPU, until `release()`."""

    def __init__(self):
        self.all_cpus = os.sched_getaffinity(0)
        self.confined = {max(self.all_cpus)} if len(self.all_cpus) > 1 else self.all_cpus
        self.slots = threading.Semaphore(1)
        self.released = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self):
        """Held by a scenario's thread while it runs; confined while the suite runs other tests."""
        with self._lock:
            if not self.released:
                # This thread only; the threads and processes it starts inherit it.
                os.sched_setaffinity(0, self.confined)
        with self.slots:
            yield

    def release(self) -> None:
        """Every CPU, and a second slot, for the scenarios and the processes they started."""
        with self._lock:
            if self.released:
                return
            self.released = True
            for tid in _threads_from(os.getpid()):
                with contextlib.suppress(OSError):  # ended meanwhile
                    os.sched_setaffinity(tid, self.all_cpus)
        self.slots.release()


def _threads_from(root: int) -> list[int]:
    """The threads of process `root` and of every process below it (Linux /proc)."""
    children = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            children[parent].append(int(entry.name))
    threads, pending = [], [root]
    while pending:
        pid = pending.pop()
        pending += children[pid]
        with contextlib.suppress(OSError):
            threads += [int(tid) for tid in os.listdir(f"/proc/{pid}/task")]
    return threads


class _Background:
    """A function run in a thread of its own; `outcome()` waits for its result or re-raises its error.

    `ran` is when it held its slot, in seconds since the session started, for
    the summary that shows which background work the suite's length hangs on.
    """

    def __init__(self, function, *args, scheduling: _Scheduling | None = None):
        self._outcome = self._error = None
        self.ran = None
        self._thread = threading.Thread(target=self._run, args=(function, args, scheduling), daemon=True)
        self._thread.start()

    def _run(self, function, args, scheduling):
        try:
            with scheduling.slot() if scheduling else contextlib.nullcontext():
                began = time.monotonic()
                try:
                    self._outcome = function(*args)
                finally:
                    self.ran = (began - SESSION_START, time.monotonic() - SESSION_START)
        except BaseException as error:  # handed to the test that waits for it
            self._error = error

    def outcome(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._outcome


def _train_teacher(model_dir: Path) -> Path:
    """The suite's one tiny digits teacher (`tiny_runs.teacher_config`), as a `teacher.train` process."""
    from tiny_runs import teacher_config

    config_file = model_dir.parent / f"{model_dir.name}.json"
    config_file.write_text(json.dumps(teacher_config(model_dir).to_dict()))
    env = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "teacher.train", f"--config={config_file}", f"--model_dir={model_dir}"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"the session teacher failed to train:\n{result.stderr[-4000:]}")
    return model_dir


# ----------------------------------------------------------------- scenarios run in the background
#
# A test module that defines `BACKGROUND_SCENARIO(work_dir) -> outcome` has it started when the
# session starts, if one of its selected tests uses the `background_outcome` fixture. A scenario
# that takes a second parameter, `teacher`, gets a function that waits for the session teacher
# and returns its export directory. A module whose scenario keeps several processes running at
# once says how many in `BACKGROUND_PROCESSES` (default 1): scenarios start, and so take the slot,
# in increasing order of it, so that those able to use both CPUs run last, when the other tests
# are done and the CPUs are free, instead of one lone process ending the session on one CPU.
# A scenario that spends a good part of its time waiting (for a peer's heartbeat to time out)
# says so with `BACKGROUND_WAITS = True` and starts first: its waits then overlap the other
# tests' work instead of leaving the CPUs idle at the end of the session.


def _scenario_modules(items) -> dict:
    return {
        item.module.__name__: item.module
        for item in items
        if hasattr(item.module, "BACKGROUND_SCENARIO") and "background_outcome" in item.fixturenames
    }


def _needs_teacher(item) -> bool:
    return bool(TEACHER_FIXTURES & set(item.fixturenames))


def _wants_teacher(scenario) -> bool:
    return len(inspect.signature(scenario).parameters) > 1


def pytest_collection_modifyitems(items):
    """Tests without the teacher first, then those with it, then those that check a scenario.

    The sort is stable, so each module keeps its own order.
    """
    items.sort(key=lambda item: (hasattr(item.module, "BACKGROUND_SCENARIO"), _needs_teacher(item)))


@pytest.fixture(scope="session", autouse=True)
def _background(request, tmp_path_factory):
    items = request.session.items
    scenarios = _scenario_modules(items)
    teacher = None
    if any(_needs_teacher(item) for item in items) or any(
        _wants_teacher(module.BACKGROUND_SCENARIO) for module in scenarios.values()
    ):
        teacher = _Background(_train_teacher, tmp_path_factory.mktemp("teacher") / "run")

    def teacher_export() -> str:
        return str(teacher.outcome() / "export")

    scheduling = _Scheduling()
    started = {"teacher": teacher, "scheduling": scheduling}

    def start_order(entry):
        module = entry[1]
        return not getattr(module, "BACKGROUND_WAITS", False), getattr(module, "BACKGROUND_PROCESSES", 1)

    for name, module in sorted(scenarios.items(), key=start_order):
        scenario, work_dir = module.BACKGROUND_SCENARIO, tmp_path_factory.mktemp(name)
        args = (work_dir, teacher_export) if _wants_teacher(scenario) else (work_dir,)
        started[name] = _Background(scenario, *args, scheduling=scheduling)
    BACKGROUND.update((name, work) for name, work in started.items() if isinstance(work, _Background))
    return started


def pytest_terminal_summary(terminalreporter):
    """When each background job ran (seconds since the session started): the suite ends with the last."""
    spans = sorted((work.ran, name) for name, work in BACKGROUND.items() if work.ran)
    if spans:
        terminalreporter.write_sep("-", "background work, seconds since the session started")
        for (began, ended), name in spans:
            terminalreporter.write_line(f"{began:6.0f} – {ended:4.0f}  ({ended - began:4.0f} s)  {name}")


@pytest.fixture(scope="session")
def teacher_run(_background):
    """The session teacher's run directory (`tiny_runs.teacher_config`, ~20 s, trained in the background).

    100 steps with RandAugment reach ~70% test accuracy (chance is 10%), so its
    predictions spread over every class, while its confidences stay well below
    1 (label smoothing). tests/test_training.py checks the run directory itself.
    """
    return _background["teacher"].outcome()


@pytest.fixture(scope="session")
def teacher(teacher_run):
    """The teacher's export directory."""
    return str(teacher_run / "export")


@pytest.fixture(scope="session")
def imagenet_export(tmp_path_factory) -> str:
    """A tiny untrained 1000-class export at 64 px (width and depth 0.1; ~1 s), for the ImageNet benchmarks.

    Its predictions are arbitrary but fixed, which is all the robustness tests need: they
    compare the benchmarks' scores with the same images scored directly.
    """
    import keras

    from efficientnet import build_model, model_config
    from efficientnet.model import export

    keras.utils.set_random_seed(2)
    settings = {"width": 0.1, "depth": 0.1, "resolution": 64, "small_images": True}
    model = build_model("efficientnet-b0", num_classes=1000, **settings)
    directory = tmp_path_factory.mktemp("imagenet_export")
    config = model_config("efficientnet-b0", 1000, **settings)
    export.save_export(str(directory), model, config, class_names=None, extra={})
    return str(directory)


@pytest.fixture
def background_outcome(request, _background):
    """The outcome of this module's `BACKGROUND_SCENARIO` (waits for it; re-raises its failure)."""
    _background["scheduling"].release()  # the other tests are done: nothing else needs the CPUs
    return _background[request.module.__name__].outcome()
