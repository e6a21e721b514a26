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
from faultlib import ROOT, TINY_FLAGS, assert_same_weights, cli, kill_when, latest_checkpoint_step, run, start

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


def miniature_config(path):
    config = json.loads((ROOT / "configs" / "digits.json").read_text())
    config["train"] |= {"log_every_steps": 5, "checkpoint_every_steps": 5}
    config["teacher"] |= {"train_steps": 15}
    config["student"] |= {"train_steps": 6, "unlabel_ratio": 1}
    # A 15-step teacher is barely above chance (confidences 0.1–0.2), so keep every prediction.
    config["pseudolabel"] |= {"num_shards": 1, "confidence_threshold": 0.0}
    config["robustness"] = {"max_examples": 40, "severities": [1, 5]}
    path.write_text(json.dumps(config))
    return path


def _manifest(work_dir) -> dict:
    try:
        return json.loads((work_dir / "rounds.json").read_text())["steps"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def test_iteration_killed_between_rounds_resumes_and_skips_finished_steps(tmp_path):
    from pipelines.iterate import run_iteration

    config = miniature_config(tmp_path / "config.json")
    work_dir = tmp_path / "run"
    command = cli("pipelines.iterate", "--round=1", f"--work_dir={work_dir}", f"--config={config}")

    def teacher_done_and_labeling_started():
        steps = _manifest(work_dir)
        return steps.get("round0/teacher", {}).get("status") == "done" and "round1/pseudolabel" in steps

    kill_when(start(command), teacher_done_and_labeling_started)
    steps = _manifest(work_dir)  # complete JSON: the manifest is replaced atomically
    assert steps["round0/teacher"]["status"] == "done"
    teacher_model = work_dir / "round0-teacher" / "export" / "model.keras"
    teacher_stamp = teacher_model.stat().st_mtime_ns
    pseudo_dir = work_dir / "round1-pseudo"
    assert not pseudo_dir.exists() or (pseudo_dir / "stats.json").exists()  # never a partial output

    resumed = run(command, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "[round0/teacher] done already, skipping" in resumed.stderr
    assert teacher_model.stat().st_mtime_ns == teacher_stamp
    steps = _manifest(work_dir)
    assert sorted(steps) == ["round0/teacher", "round1/pseudolabel", "round1/student", "round1/student_no_noise"]
    assert all(entry["status"] == "done" for entry in steps.values())
    for name, expected_steps in (("round0-teacher", 15), ("round1-student", 6), ("round1-student-no-noise", 6)):
        assert json.loads((work_dir / name / "export" / "model.json").read_text())["steps"] == expected_steps
    # The ablation is the same student with all noise off.
    no_noise = json.loads((work_dir / "round1-student-no-noise" / "config.json").read_text())
    noised = json.loads((work_dir / "round1-student" / "config.json").read_text())
    assert (no_noise["randaugment_layers"], no_noise["dropout_rate"], no_noise["drop_connect_rate"]) == (0, 0.0, 0.0)
    assert noised["randaugment_layers"] == 2 and noised["unlabel_ratio"] == 1
    round1 = {name: entry["seconds"] for name, entry in steps.items()}

    # An export cut off before its model.json (written last) is incomplete: the
    # step runs again, resuming from its final checkpoint, and nothing reads it.
    (work_dir / "round1-student-no-noise" / "export" / "model.json").unlink()
    with pytest.raises(FileNotFoundError, match="no exported model"):
        export.load_export(str(work_dir / "round1-student-no-noise"))

    # --round 2 on a work_dir holding round 1 runs only round 2 (and the repaired step).
    summary = run_iteration(str(work_dir), 2, str(config))
    steps = _manifest(work_dir)
    unchanged = {name for name in round1 if steps[name]["seconds"] == round1[name]}
    assert unchanged == {"round0/teacher", "round1/pseudolabel", "round1/student"}
    assert "round2/student" in steps and "round2/student_no_noise" not in steps
    assert [(row["round"], row["role"]) for row in summary["models"]] == [
        (0, "teacher"),
        (1, "student"),
        (1, "student_no_noise"),
        (2, "student"),
    ]
    report = (work_dir / "report.md").read_text()
    assert "| 2 | student |" in report and "student round 1 vs teacher" in report
    assert (work_dir / "report.png").stat().st_size > 10_000
    assert "gaussian_noise" in report and (work_dir / "robustness.json").exists()
    measured = json.loads((work_dir / "report.json").read_text())
    assert [row["round"] for row in measured["labeling"]] == [1, 2]
    for row in measured["labeling"]:
        assert 0 <= row["pseudo_label_accuracy"]["before_filtering"] <= 1
        assert sum(row["counts_after_filtering"]) == row["num_kept"]
