"""The whole loop on a user's own image folders, killed between rounds and
resumed; then its round-1 student and labeling job, each killed mid-run and
rerun, against that loop's own outputs.

The folders are what the README asks users for: a labeled folder with
word-named class subfolders, a flat folder of unlabeled images and a test
folder, with no validation folder, so validation is held out of the labeled
one. They go through the real `./run_iteration.sh` with a shortened
configs/own_data_quick.json (`loop_config`), killed with SIGKILL once the
teacher is done and the labeling has started, then rerun with `--round 2`:
finished steps are skipped, nothing half-written is read, and only what is
missing runs: both rounds, round 2's no-noise ablation, the report and its
robustness section.

Each process pays a fixed TensorFlow start-up cost, so the student and labeling
kills make no uninterrupted runs of their own to compare with: they repeat
the commands the loop recorded for round 1 in `rounds.json` (into another
directory) and must end where the loop's round 1 ended. So they run after the
loop, in the same scenario (a scenario cannot wait for another: they share
one slot, tests/conftest.py), and their tests live here. A teacher.train worker
is killed the same way in test_faults_workers.py; the two kills cover the shared
training loop with and without noise, on one process and on two workers.
"""

import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tensorflow as tf
from faultlib import ROOT, Schedule, assert_resumed_like, kill_when, run, start, training_killed_and_rerun
from PIL import Image

from efficientnet.data import records
from efficientnet.data.datasets import open_source
from pseudolabel import outputs

pytestmark = pytest.mark.slow

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUM_UNLABELED = 60
TEACHER_STEPS = 15
# Round 1's student is the run killed mid-way: checkpoints (and progress lines) every 5 steps and
# the kill after the second, so 10 of its 20 steps are still ahead, several seconds of work,
# while kill_when polls every 0.05 s. Round 2's student and the ablation only need to exist.
STUDENT = Schedule(steps=20, every=5, kill_after=10)
LATER_STUDENT_STEPS = 6


def loop_config(path):
    """configs/own_data_quick.json made short and deterministic, with an ablation and robustness.

    Deterministic, so that round 1's student, killed and rerun into another
    directory, reaches the loop's own weights.
    """
    config = json.loads((ROOT / "configs" / "own_data_quick.json").read_text())
    config["train"] |= {
        "log_every_steps": STUDENT.every,
        "checkpoint_every_steps": STUDENT.every,
        "deterministic": True,
    }
    config["teacher"] |= {"train_steps": TEACHER_STEPS}
    config["student"] |= {"train_steps": LATER_STUDENT_STEPS}
    config["rounds"][0] |= {"train_steps": STUDENT.steps}
    config["ablation_round"] = 2  # the short round: the ablation only needs to run and be reported
    config["robustness"] = {"max_examples": 20, "severities": [3]}
    path.write_text(json.dumps(config))
    return path


def write_pngs(directory, examples, *, by_class: bool) -> None:
    """Digits images, 4x enlarged, as PNG files named by their digits index."""
    for example in examples:
        name = example["id"].decode().split("/")[-1] + ".png"
        folder = directory / CLASS_NAMES[example["label"]] if by_class else directory
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.kron(example["image"], np.ones((4, 4, 1), np.uint8))).save(folder / name)


def _manifest(work_dir) -> dict:
    try:
        return json.loads((work_dir / "rounds.json").read_text())["steps"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def _snapshot(directory) -> dict[str, tuple[bytes, int]]:
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in directory.iterdir()}


def _shards(output_dir) -> list[str]:
    return sorted(tf.io.gfile.glob(outputs.record_pattern(str(output_dir))))


def labeling_killed_and_rerun(root, command, previous_output) -> dict:
    """The loop's labeling `command`, killed while it would replace a copy of its output, then rerun; what it saw."""
    output_dir = root / "pseudo"
    shutil.copytree(previous_output, output_dir)  # a previous complete output the killed run would replace
    command = [flag for flag in command if not flag.startswith("--output_dir=")] + [f"--output_dir={output_dir}"]
    seen = {"output dir": output_dir, "before": _snapshot(output_dir), "shards before": _shards(output_dir)}
    # The job writes into a sibling `pseudo.tmp-*` and creates its spill folder
    # just before the Beam pipeline starts: kill it there.
    kill_when(start(command), lambda: any(root.glob("pseudo.tmp-*/spill")))
    seen["after"] = _snapshot(output_dir)
    seen["leftovers after the kill"] = [path.name for path in root.glob("pseudo.tmp-*")]
    seen["shards after the kill"] = _shards(output_dir)
    seen["rerun"] = run(command)
    seen["leftovers after the rerun"] = [path.name for path in root.glob("pseudo.tmp-*")]
    return seen


def iteration_scenario(tmp_path):
    """Builds the folders, kills `--round 1` between rounds, reruns with `--round 2`, then kills
    round 1's student and labeling again; returns what the tests check.

    Runs in the background from the start of the session (tests/conftest.py):
    it only drives CLI processes.
    """
    digits = open_source("digits")
    data = tmp_path / "data"
    write_pngs(data / "labeled", digits.examples("train").as_numpy_iterator(), by_class=True)
    write_pngs(data / "unlabeled", digits.examples("unlabeled").take(NUM_UNLABELED).as_numpy_iterator(), by_class=False)
    write_pngs(data / "test", digits.examples("test").take(50).as_numpy_iterator(), by_class=True)
    config = loop_config(tmp_path / "config.json")
    work_dir = tmp_path / "run"

    def command(last_round):
        # Data and work_dir relative to where the script is called from, as a user types them.
        return [
            str(ROOT / "run_iteration.sh"),
            "--round",
            str(last_round),
            "--labeled",
            "folder:data/labeled",
            "--unlabeled",
            "folder:data/unlabeled",
            "--test",
            "folder:data/test",
            "--config",
            str(config),
            "--work_dir",
            "run",
        ]

    def teacher_done_and_labeling_started():
        steps = _manifest(work_dir)
        return steps.get("round0/teacher", {}).get("status") == "done" and "round1/pseudolabel" in steps

    kill_when(start(command(1), cwd=tmp_path), teacher_done_and_labeling_started)
    teacher_model = work_dir / "round0-teacher" / "export" / "model.keras"
    pseudo_dir = work_dir / "round1-pseudo"
    after_kill = {
        "steps": _manifest(work_dir),  # complete JSON: the manifest is replaced atomically
        "teacher_stamp": teacher_model.stat().st_mtime_ns,
        "pseudo_dir_is_absent_or_complete": not pseudo_dir.exists() or (pseudo_dir / "stats.json").exists(),
    }
    # `--round 2` on a work_dir holding part of round 1 runs only what is missing: the rest of
    # round 1, then round 2 (a second rerun would skip every step: tests/test_iteration.py).
    resumed = run(command(2), timeout=900, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-6000:]

    steps = _manifest(work_dir)
    student_command = [*steps["round1/student"]["command"], f"--model_dir={tmp_path / 'student'}"]
    (tmp_path / "labeling").mkdir()
    # The two kills side by side; each test reads its own (`.result()` re-raises a kill's failure
    # there, not in the loop's tests).
    with ThreadPoolExecutor(max_workers=2) as pool:
        student = pool.submit(training_killed_and_rerun, tmp_path / "student", student_command, STUDENT)
        labeling = pool.submit(
            labeling_killed_and_rerun, tmp_path / "labeling", steps["round1/pseudolabel"]["command"], pseudo_dir
        )
    return {
        "work_dir": work_dir,
        "after_kill": after_kill,
        "resumed": resumed,
        "student kill": student,
        "labeling kill": labeling,
    }


BACKGROUND_SCENARIO = iteration_scenario


def test_iteration_killed_between_rounds_resumes_and_skips_finished_steps(background_outcome):
    work_dir, after_kill, resumed = (background_outcome[key] for key in ("work_dir", "after_kill", "resumed"))
    assert after_kill["steps"]["round0/teacher"]["status"] == "done"
    assert after_kill["pseudo_dir_is_absent_or_complete"]  # never a partial output

    assert "[round0/teacher] done already, skipping" in resumed.stderr
    assert resumed.stderr.count("running:") == 5  # labeling and student of both rounds, and the ablation
    assert (work_dir / "round0-teacher" / "export" / "model.keras").stat().st_mtime_ns == after_kill["teacher_stamp"]
    steps = _manifest(work_dir)
    assert sorted(steps) == [
        "round0/teacher",
        "round1/pseudolabel",
        "round1/student",
        "round2/pseudolabel",
        "round2/student",
        "round2/student_no_noise",
    ]
    assert all(entry["status"] == "done" for entry in steps.values())
    trained = (
        ("round0-teacher", TEACHER_STEPS),
        ("round1-student", STUDENT.steps),
        ("round2-student", LATER_STUDENT_STEPS),
        ("round2-student-no-noise", LATER_STUDENT_STEPS),
    )
    for name, expected_steps in trained:
        assert json.loads((work_dir / name / "export" / "model.json").read_text())["steps"] == expected_steps
    # Round 2 learns from round 1's student, not from the teacher.
    assert steps["round2/pseudolabel"]["settings"]["teacher"] == str(work_dir / "round1-student" / "export")
    assert f"--teacher={work_dir / 'round1-student' / 'export'}" in steps["round2/student"]["command"]
    # The ablation is the same student with all noise off; the noised one has student.train's defaults
    # (the quick preset sets no randaugment_*, dropout or stochastic depth).
    no_noise = json.loads((work_dir / "round2-student-no-noise" / "config.json").read_text())
    noised = json.loads((work_dir / "round2-student" / "config.json").read_text())
    assert (no_noise["randaugment_layers"], no_noise["dropout_rate"], no_noise["drop_connect_rate"]) == (0, 0.0, 0.0)
    assert (noised["randaugment_layers"], noised["randaugment_magnitude"], noised["unlabel_ratio"]) == (2, 5.0, 1)
    assert noised["dropout_rate"] is None and noised["drop_connect_rate"] is None  # the model's own rates

    measured = json.loads((work_dir / "report.json").read_text())
    assert [(row["round"], row["role"]) for row in measured["models"]] == [
        (0, "teacher"),
        (1, "student"),
        (2, "student"),
        (2, "student_no_noise"),
    ]
    assert all(0 <= row["test"] <= 1 and 0 <= row["validation"] <= 1 for row in measured["models"])
    report = (work_dir / "report.md").read_text()
    assert "| 2 | student |" in report and "student round 1 vs teacher" in report
    assert "noised vs un-noised student, round 2" in report
    assert (work_dir / "report.png").stat().st_size > 10_000
    assert "gaussian_noise" in report and (work_dir / "robustness.json").exists()
    # The console ends with the report's headline (4 models, 3 effects), not the whole report.
    summary = resumed.stdout[resumed.stdout.rindex("Top-1 accuracy per model (mCE:") :].splitlines()
    assert len(summary) == 10 and "# Noisy Student report" not in resumed.stdout
    assert summary[-1] == f"Report: {work_dir / 'report.md'} (plot: {work_dir / 'report.png'})"


def test_report_names_classes_by_folder_and_labels_the_flat_folder(background_outcome):
    work_dir = background_outcome["work_dir"]
    report = (work_dir / "report.md").read_text()
    # Class balance by folder name; classes are the sorted folder names, as everywhere.
    assert "| round | " + " | ".join(sorted(CLASS_NAMES)) + " |" in report
    measured = json.loads((work_dir / "report.json").read_text())
    assert [row["round"] for row in measured["labeling"]] == [1, 2]
    for row in measured["labeling"]:
        assert row["num_images"] == NUM_UNLABELED and row["class_names"] == sorted(CLASS_NAMES)
        assert f"| {row['round']} | n/a | n/a | {row['num_kept']} / {NUM_UNLABELED} |" in report
        assert sum(row["counts_after_filtering"]) == row["num_kept"] > 0
        # A flat folder has no labels to measure the pseudo-labels against.
        assert row["pseudo_label_accuracy"] is None
    model = json.loads((work_dir / "round1-student" / "export" / "model.json").read_text())
    assert model["class_names"] == sorted(CLASS_NAMES)


def test_validation_is_held_out_of_the_labeled_folder_and_recorded(background_outcome):
    work_dir = background_outcome["work_dir"]
    holdout = json.loads((work_dir / "rounds.json").read_text())["validation_holdout"]
    # 15 labeled images per class: round(1.5) = 2 held out of each.
    assert holdout["num_validation"] == 20 and holdout["num_train"] == 130
    assert holdout["validation_per_class"] == [2] * 10
    held = set((work_dir / "labeled-holdout" / "validation_ids.txt").read_text().split())
    assert len(held) == 20 and all("/data/labeled/" in path for path in held)
    teacher_config = json.loads((work_dir / "configs" / "round0-teacher.json").read_text())
    assert teacher_config["dataset"].startswith(f"tfrecord:{work_dir}/labeled-holdout/train/")
    report = (work_dir / "report.md").read_text()
    assert f"- labeled: `folder:{work_dir.parent}/data/labeled`" in report
    assert "- validation: 20 images held out of the labeled data (10% of each class, seed 0;" in report
    assert "the models trained on the other 130" in report
    # The rerun reuses the split the killed run made (pipelines/holdout.py) and says so again.
    assert "[data] held out 20 of 150 labeled images as validation" in background_outcome["resumed"].stderr


def test_student_killed_mid_run_resumes_like_the_loops_own_run(background_outcome):
    assert_resumed_like(background_outcome["student kill"].result(), background_outcome["work_dir"] / "round1-student")


def _fingerprints(output_dir) -> list[tuple[str, tuple[float, ...]]]:
    found = []
    for path in _shards(output_dir):
        for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
            record = records.decode_pseudo_label(serialized)
            digest = hashlib.sha256(record["image/encoded"]).hexdigest()
            found.append((digest, tuple(round(float(p), 4) for p in record["probabilities"])))
    return sorted(found)


def test_labeling_killed_mid_run_keeps_the_previous_output_then_reruns_to_the_loops_records(background_outcome):
    seen, loop_output = background_outcome["labeling kill"].result(), background_outcome["work_dir"] / "round1-pseudo"
    output_dir = seen["output dir"]
    assert seen["after"] == seen["before"]
    assert seen["leftovers after the kill"], "the kill came after the commit"
    # What a student would read is the previous complete shards only.
    assert seen["shards after the kill"] == seen["shards before"] != []

    result = seen["rerun"]
    assert result.returncode == 0, result.stderr[-4000:]
    assert "removed the leftovers of an interrupted run" in result.stderr
    assert not seen["leftovers after the rerun"]
    assert _fingerprints(output_dir) == _fingerprints(loop_output)
    stats, loop_stats = (json.loads((d / "stats.json").read_text()) for d in (output_dir, loop_output))
    assert stats == loop_stats and stats["num_images"] == NUM_UNLABELED
