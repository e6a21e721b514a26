"""Fixtures shared by several test modules."""

import threading

import pytest


@pytest.fixture(scope="session")
def teacher_run(tmp_path_factory):
    """The suite's one tiny digits teacher run (~20 s), `tiny_runs.teacher_config`.

    100 steps with RandAugment reach ~70% test accuracy (chance is 10%), so its
    predictions spread over every class, while its confidences stay well below
    1 (label smoothing). tests/test_training.py checks the run directory itself.
    """
    from tiny_runs import teacher_config

    from efficientnet.train.loop import train

    model_dir = tmp_path_factory.mktemp("teacher")
    train(teacher_config(model_dir))
    return model_dir


@pytest.fixture(scope="session")
def teacher(teacher_run):
    """The teacher's export directory."""
    return str(teacher_run / "export")


# ----------------------------------------------------------------- scenarios run in the background
#
# An end-to-end scenario that only drives CLI processes one after another (the
# whole iteration, killed and resumed) leaves a core idle most of the time. A
# test module that defines `BACKGROUND_SCENARIO(work_dir) -> outcome` has it
# started in a thread when the session's first test starts, if any of the
# module's tests is selected; its tests run last and take the outcome from the
# `background_outcome` fixture, so the rest of the suite runs meanwhile.


class _Background:
    def __init__(self, scenario, work_dir):
        self._outcome = self._error = None
        self._thread = threading.Thread(target=self._run, args=(scenario, work_dir), daemon=True)
        self._thread.start()

    def _run(self, scenario, work_dir):
        try:
            self._outcome = scenario(work_dir)
        except BaseException as error:  # handed to the test that waits for it
            self._error = error

    def outcome(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._outcome


def _scenario_modules(items) -> dict:
    return {item.module.__name__: item.module for item in items if hasattr(item.module, "BACKGROUND_SCENARIO")}


def pytest_collection_modifyitems(items):
    """Tests that wait for a background scenario go last (the sort is stable)."""
    items.sort(key=lambda item: hasattr(item.module, "BACKGROUND_SCENARIO"))


@pytest.fixture(scope="session", autouse=True)
def _background_scenarios(request, tmp_path_factory):
    return {
        name: _Background(module.BACKGROUND_SCENARIO, tmp_path_factory.mktemp(name))
        for name, module in _scenario_modules(request.session.items).items()
    }


@pytest.fixture
def background_outcome(request, _background_scenarios):
    """The outcome of this module's `BACKGROUND_SCENARIO` (waits for it; re-raises its failure)."""
    return _background_scenarios[request.module.__name__].outcome()
