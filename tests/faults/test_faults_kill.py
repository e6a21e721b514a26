"""SIGKILL of a teacher mid-run, then a rerun: nothing lost, nothing half-read.

The scenario starts the real `teacher.train` in its own process group, kills
the group with SIGKILL (no handler runs, as with an OOM kill or a pre-empted
VM) once the run is demonstrably mid-way, then reruns the same command; the
test checks that it ended like an uninterrupted run of the same settings: the
session teacher, whose settings (tiny_runs.teacher_config) the killed run
repeats. The student and the labeling job are killed the same way in
test_faults_iteration.py, against the outputs of the iteration they repeat.
"""

import json

import pytest
from faultlib import Schedule, assert_resumed_like, cli, training_killed_and_rerun
from tiny_runs import teacher_config

pytestmark = pytest.mark.slow

# Killed after its first checkpoint, with half of the steps ahead.
_TEACHER_CONFIG = teacher_config("unused")
TEACHER = Schedule(_TEACHER_CONFIG.train_steps, _TEACHER_CONFIG.checkpoint_every_steps, 50)


def teacher_killed_and_rerun(root) -> dict:
    """The session teacher's run, killed and rerun; what it saw.

    It only drives processes, so it runs in the background from the start of
    the session (tests/conftest.py), without waiting for the session teacher.
    """
    config_file = root / "teacher.json"
    config_file.write_text(json.dumps(_TEACHER_CONFIG.to_dict()))
    model_dir = root / "teacher"
    command = cli("teacher.train", f"--config={config_file}", f"--model_dir={model_dir}")
    return training_killed_and_rerun(model_dir, command, TEACHER)


BACKGROUND_SCENARIO = teacher_killed_and_rerun


def test_teacher_killed_mid_run_resumes_like_an_uninterrupted_run(background_outcome, teacher_run):
    assert_resumed_like(background_outcome, teacher_run)
