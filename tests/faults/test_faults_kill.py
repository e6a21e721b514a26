"""SIGKILL at the worst moments, then a rerun: nothing lost, nothing half-read.

Each scenario starts the real CLI in its own process group, kills the group
with SIGKILL (no handler runs, as with an OOM kill or a pre-empted VM) once the
run is demonstrably mid-way, then reruns the same command; its test checks the
outcome against an uninterrupted run. For the teacher that is the session
teacher, whose settings the killed run repeats.

The processes are nearly all of this module's time and each keeps about one
core busy, so `kill_scenarios` plays the scenarios concurrently in the
background, at most PROCESSES processes at a time, recording what each saw at
the moment of its kill; the tests then check those records.
"""

import dataclasses
import hashlib
import json
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import tensorflow as tf
from faultlib import TINY_FLAGS, assert_same_weights, cli, kill_when, latest_checkpoint_step, run, start
from tiny_runs import teacher_config

from efficientnet.data import records
from efficientnet.model import export
from pseudolabel import outputs

pytestmark = pytest.mark.slow


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A run's length, its checkpoint (and log) interval, and the checkpoint after which it is killed."""

    steps: int
    every: int
    kill_after: int


# The student: checkpoints every 5 steps and the kill after the second, so 20 of the 30 steps
# are still ahead, several seconds of work, while kill_when polls every 0.05 s.
STUDENT = Schedule(steps=30, every=5, kill_after=10)
# The teacher repeats the session teacher's run (tiny_runs.teacher_config), killed after its
# first checkpoint with half of the steps ahead.
_TEACHER_CONFIG = teacher_config("unused")
TEACHER = Schedule(_TEACHER_CONFIG.train_steps, _TEACHER_CONFIG.checkpoint_every_steps, 50)
TRAIN_FLAGS = [
    *TINY_FLAGS,
    "--dataset=digits",
    "--batch_size=16",
    f"--train_steps={STUDENT.steps}",
    "--warmup_epochs=1",
    "--random_flip=false",
    "--randaugment_layers=2",
    f"--checkpoint_every_steps={STUDENT.every}",
    f"--log_every_steps={STUDENT.every}",
    "--deterministic",
]
LABELING_FLAGS = [
    "--input=digits",
    "--split=unlabeled",
    "--confidence_threshold=0",
    "--images_per_class=0",
    "--num_shards=1",
]
# Three TensorFlow processes keep two cores busy through each other's imports
# and waits, in ~3 GB of memory.
PROCESSES = threading.BoundedSemaphore(3)


def teacher_command(config_file):
    def command(model_dir) -> list[str]:
        return cli("teacher.train", f"--config={config_file}", f"--model_dir={model_dir}")

    return command


def student_command(teacher, pseudo_labels):
    def command(model_dir) -> list[str]:
        return cli(
            "student.train",
            f"--model_dir={model_dir}",
            f"--teacher={teacher}",
            f"--unlabeled_dataset=tfrecord:{outputs.record_pattern(str(pseudo_labels))}",
            "--unlabel_ratio=1",
            *TRAIN_FLAGS,
        )

    return command


def labeling_command(teacher, output_dir) -> list[str]:
    return cli("pseudolabel.run", *LABELING_FLAGS, f"--teacher={teacher}", f"--output_dir={output_dir}")


def run_counted(command):
    with PROCESSES:
        return run(command)


def kill_counted(command, condition) -> None:
    with PROCESSES:
        kill_when(start(command), condition)


def training_killed_and_rerun(root, command_for, schedule: Schedule, straight=True) -> dict:
    """Kill after checkpoint `schedule.kill_after` and rerun, beside an uninterrupted run if `straight`; what it saw."""
    killed = root / "killed"
    with ThreadPoolExecutor(max_workers=1) as pool:
        uninterrupted = pool.submit(run_counted, command_for(root / "straight")) if straight else None
        kill_counted(command_for(killed), lambda: latest_checkpoint_step(killed) >= schedule.kill_after)
        seen = {"export after the kill": (killed / "export").exists(), "last": latest_checkpoint_step(killed)}
        seen["resumed"] = run_counted(command_for(killed))
        if uninterrupted:
            seen |= {"straight": uninterrupted.result(), "straight dir": root / "straight"}
    return seen | {"killed": killed, "schedule": schedule}


def _snapshot(directory) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in directory.iterdir()}


def labeling_killed_and_rerun(root, teacher, pseudo_labels) -> dict:
    """Kill a labeling job that would replace a complete output, then rerun it; what it saw."""
    output_dir = root / "pseudo"
    shutil.copytree(pseudo_labels, output_dir)  # a previous complete output the killed run would replace
    seen = {"output dir": output_dir, "before": _snapshot(output_dir)}
    command = labeling_command(teacher, output_dir)
    # The job writes into a sibling `pseudo.tmp-*` and creates its spill folder
    # just before the Beam pipeline starts: kill it there.
    kill_counted(command, lambda: any(root.glob("pseudo.tmp-*/spill")))
    seen["after"] = _snapshot(output_dir)
    seen["leftovers after the kill"] = [path.name for path in root.glob("pseudo.tmp-*")]
    seen["shards after the kill"] = tf.io.gfile.glob(outputs.record_pattern(str(output_dir)))
    seen["rerun"] = run_counted(command)
    seen["leftovers after the rerun"] = [path.name for path in root.glob("pseudo.tmp-*")]
    return seen


TEACHER_TEST = "test_teacher_killed_mid_run_resumes_like_an_uninterrupted_run"
STUDENT_TEST = "test_student_killed_mid_run_resumes_like_an_uninterrupted_run"
LABELING_TEST = "test_labeling_killed_mid_run_keeps_the_previous_output_then_reruns_to_the_same_records"


def kill_scenarios(root, teacher) -> dict:
    """The three scenarios, played concurrently: {test name: what it saw}, and the pseudo-labels.

    The teacher scenario needs neither the session teacher nor the uninterrupted
    labeling run (every unlabeled digit, unbalanced, one shard) that the others
    start from, so it starts first and runs while they are made. The scenarios
    only drive processes, so they run in the background from the start of the
    session (tests/conftest.py).
    """
    config_file = root / "teacher.json"
    config_file.write_text(json.dumps(_TEACHER_CONFIG.to_dict()))
    with ThreadPoolExecutor(max_workers=3) as pool:
        teacher_for = teacher_command(config_file)
        teacher_scenario = pool.submit(training_killed_and_rerun, root / "teacher", teacher_for, TEACHER, False)
        teacher_export = teacher()
        pseudo_labels = root / "labels" / "pseudo"
        labeled = run_counted(labeling_command(teacher_export, pseudo_labels))
        assert labeled.returncode == 0, labeled.stderr[-4000:]
        student_for = student_command(teacher_export, pseudo_labels)
        student = pool.submit(training_killed_and_rerun, root / "student", student_for, STUDENT)
        (root / "labeling").mkdir()
        labeling = pool.submit(labeling_killed_and_rerun, root / "labeling", teacher_export, pseudo_labels)
        return {
            # The session teacher is the killed teacher's uninterrupted run.
            TEACHER_TEST: teacher_scenario.result() | {"straight dir": Path(teacher_export).parent},
            STUDENT_TEST: student.result(),
            LABELING_TEST: labeling.result(),
            "pseudo labels": pseudo_labels,
        }


BACKGROUND_SCENARIO = kill_scenarios


def assert_resumed_like_an_uninterrupted_run(seen: dict) -> None:
    killed, schedule = seen["killed"], seen["schedule"]
    steps, every = schedule.steps, schedule.every
    assert not seen["export after the kill"]
    last = seen["last"]
    assert schedule.kill_after <= last < steps

    resumed = seen["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resumed from {killed}/checkpoints/ckpt-{last} at step {last}" in resumed.stderr
    assert f"step {last + every}/{steps}" in resumed.stderr and f"step {every}/{steps}" not in resumed.stderr

    if "straight" in seen:
        result = seen["straight"]
        assert result.returncode == 0, result.stderr[-4000:]
    resumed_model, resumed_meta = export.load_export(str(killed))
    straight_model, straight_meta = export.load_export(str(seen["straight dir"]))
    assert resumed_meta["steps"] == straight_meta["steps"] == steps
    assert resumed_meta["metrics"]["top1"] == pytest.approx(straight_meta["metrics"]["top1"], abs=0.01)
    assert_same_weights(resumed_model, straight_model)


def test_teacher_killed_mid_run_resumes_like_an_uninterrupted_run(background_outcome):
    assert_resumed_like_an_uninterrupted_run(background_outcome[TEACHER_TEST])


def test_student_killed_mid_run_resumes_like_an_uninterrupted_run(background_outcome):
    assert_resumed_like_an_uninterrupted_run(background_outcome[STUDENT_TEST])


def _fingerprints(output_dir) -> list[tuple[str, tuple[float, ...]]]:
    found = []
    for path in sorted(tf.io.gfile.glob(outputs.record_pattern(str(output_dir)))):
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            record = records.decode_pseudo_label(serialized)
            digest = hashlib.sha256(record["image/encoded"]).hexdigest()
            found.append((digest, tuple(round(float(p), 4) for p in record["probabilities"])))
    return sorted(found)


def test_labeling_killed_mid_run_keeps_the_previous_output_then_reruns_to_the_same_records(background_outcome):
    seen, pseudo_labels = background_outcome[LABELING_TEST], background_outcome["pseudo labels"]
    output_dir = seen["output dir"]
    assert seen["after"] == seen["before"]
    assert seen["leftovers after the kill"], "the kill came after the commit"
    # What a student would read is the previous complete shard only.
    assert seen["shards after the kill"] == [str(output_dir / "pseudo-00000-of-00001.tfrecord")]

    result = seen["rerun"]
    assert result.returncode == 0, result.stderr[-4000:]
    assert "removed the leftovers of an interrupted run" in result.stderr
    assert not seen["leftovers after the rerun"]
    assert _fingerprints(output_dir) == _fingerprints(pseudo_labels)
    stats = json.loads((output_dir / "stats.json").read_text())
    assert stats["num_records"] == stats["num_images"] == 947
