"""SIGKILL at the worst moments, then a rerun: nothing lost, nothing half-read.

Each test starts the real CLI in its own process group, kills the group with
SIGKILL (no handler runs, as with an OOM kill or a pre-empted VM) once the run
is demonstrably mid-way, then reruns the same command and checks the outcome
against an uninterrupted run.
"""

import hashlib
import json
import shutil

import pytest
import tensorflow as tf
from faultlib import TINY_FLAGS, assert_same_weights, cli, kill_when, latest_checkpoint_step, run, start

from efficientnet.data import records
from efficientnet.model import export
from pseudolabel import outputs
from pseudolabel.pipeline import LabelingConfig, run_labeling

pytestmark = pytest.mark.slow
STEPS, EVERY, KILL_AFTER = 60, 10, 20
TRAIN_FLAGS = [
    *TINY_FLAGS,
    "--dataset=digits",
    "--batch_size=16",
    f"--train_steps={STEPS}",
    "--warmup_epochs=1",
    "--random_flip=false",
    "--randaugment_layers=2",
    f"--checkpoint_every_steps={EVERY}",
    f"--log_every_steps={EVERY}",
    "--deterministic",
]
LABELING_FLAGS = [
    "--input=digits",
    "--split=unlabeled",
    "--confidence_threshold=0",
    "--images_per_class=0",
    "--num_shards=1",
]


@pytest.fixture(scope="module")
def pseudo_labels(teacher, tmp_path_factory):
    """An uninterrupted labeling run: every unlabeled digit, unbalanced, one shard."""
    output_dir = tmp_path_factory.mktemp("labels") / "pseudo"
    run_labeling(
        LabelingConfig(
            input="digits",
            split="unlabeled",
            teacher=teacher,
            output_dir=str(output_dir),
            confidence_threshold=0.0,
            images_per_class=0,
            num_shards=1,
        )
    )
    return output_dir


def kill_resume_and_compare(tmp_path, command_for) -> None:
    """Kill after checkpoint KILL_AFTER, rerun, compare with an uninterrupted run."""
    killed = tmp_path / "killed"
    kill_when(start(command_for(killed)), lambda: latest_checkpoint_step(killed) >= KILL_AFTER)
    assert not (killed / "export").exists()
    last = latest_checkpoint_step(killed)
    assert KILL_AFTER <= last < STEPS

    resumed = run(command_for(killed))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert f"resumed from {killed}/checkpoints/ckpt-{last} at step {last}" in resumed.stderr
    assert f"step {last + EVERY}/{STEPS}" in resumed.stderr and f"step {EVERY}/{STEPS}" not in resumed.stderr

    straight = tmp_path / "straight"
    result = run(command_for(straight))
    assert result.returncode == 0, result.stderr[-4000:]
    resumed_model, resumed_meta = export.load_export(str(killed))
    straight_model, straight_meta = export.load_export(str(straight))
    assert resumed_meta["steps"] == straight_meta["steps"] == STEPS
    assert resumed_meta["metrics"]["top1"] == pytest.approx(straight_meta["metrics"]["top1"], abs=0.01)
    assert_same_weights(resumed_model, straight_model)


def test_teacher_killed_mid_run_resumes_like_an_uninterrupted_run(tmp_path):
    kill_resume_and_compare(tmp_path, lambda model_dir: cli("teacher.train", f"--model_dir={model_dir}", *TRAIN_FLAGS))


def test_student_killed_mid_run_resumes_like_an_uninterrupted_run(teacher, pseudo_labels, tmp_path):
    def command(model_dir):
        return cli(
            "student.train",
            f"--model_dir={model_dir}",
            f"--teacher={teacher}",
            f"--unlabeled_dataset=tfrecord:{outputs.record_pattern(str(pseudo_labels))}",
            "--unlabel_ratio=1",
            *TRAIN_FLAGS,
        )

    kill_resume_and_compare(tmp_path, command)


def _fingerprints(output_dir) -> list[tuple[str, tuple[float, ...]]]:
    found = []
    for path in sorted(tf.io.gfile.glob(outputs.record_pattern(str(output_dir)))):
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            record = records.decode_pseudo_label(serialized)
            digest = hashlib.sha256(record["image/encoded"]).hexdigest()
            found.append((digest, tuple(round(float(p), 4) for p in record["probabilities"])))
    return sorted(found)


def test_labeling_killed_mid_run_keeps_the_previous_output_then_reruns_to_the_same_records(
    teacher, pseudo_labels, tmp_path
):
    output_dir = tmp_path / "pseudo"
    shutil.copytree(pseudo_labels, output_dir)  # a previous complete output the killed run would replace
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in output_dir.iterdir()}
    command = cli("pseudolabel.run", *LABELING_FLAGS, f"--teacher={teacher}", f"--output_dir={output_dir}")

    # The job writes into a sibling `pseudo.tmp-*` and creates its spill folder
    # just before the Beam pipeline starts: kill it there.
    kill_when(start(command), lambda: any(tmp_path.glob("pseudo.tmp-*/spill")))
    after = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in output_dir.iterdir()}
    assert after == before
    assert [path.name for path in tmp_path.glob("pseudo.tmp-*")], "the kill came after the commit"
    # What a student would read is the previous complete shard only.
    assert tf.io.gfile.glob(outputs.record_pattern(str(output_dir))) == [
        str(output_dir / "pseudo-00000-of-00001.tfrecord")
    ]

    result = run(command)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "removed the leftovers of an interrupted run" in result.stderr
    assert not list(tmp_path.glob("pseudo.tmp-*"))
    assert _fingerprints(output_dir) == _fingerprints(pseudo_labels)
    stats = json.loads((output_dir / "stats.json").read_text())
    assert stats["num_records"] == stats["num_images"] == 947
