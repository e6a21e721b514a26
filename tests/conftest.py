"""Fixtures shared by several test modules."""

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
