"""The whole loop killed between rounds, then resumed: finished steps are
skipped, nothing half-written is read, and `--round 2` runs only round 2."""

import json

import pytest
from faultlib import ROOT, cli, kill_when, run, start

pytestmark = pytest.mark.slow


def miniature_config(path):
    config = json.loads((ROOT / "configs" / "digits.json").read_text())
    config["train"] |= {"log_every_steps": 5, "checkpoint_every_steps": 5}
    config["teacher"] |= {"train_steps": 15}
    config["student"] |= {"train_steps": 6, "unlabel_ratio": 1}
    # No randaugment_* for the students: their noise must come from student.train's own defaults.
    config["student"] = {k: v for k, v in config["student"].items() if not k.startswith("randaugment")}
    # A 15-step teacher is barely above chance (confidences 0.1–0.2), so keep every prediction.
    config["pseudolabel"] |= {"num_shards": 1, "confidence_threshold": 0.0}
    config["robustness"] = {"max_examples": 20, "severities": [3]}
    path.write_text(json.dumps(config))
    return path


def _manifest(work_dir) -> dict:
    try:
        return json.loads((work_dir / "rounds.json").read_text())["steps"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def iteration_scenario(tmp_path):
    """Kills `--round=1` between rounds, then reruns with `--round=2`; returns what the test checks.

    Runs in the background from the start of the session (tests/conftest.py):
    it only drives CLI processes, one after another.
    """
    config = miniature_config(tmp_path / "config.json")
    work_dir = tmp_path / "run"

    def command(last_round):
        return cli("pipelines.iterate", f"--round={last_round}", f"--work_dir={work_dir}", f"--config={config}")

    def teacher_done_and_labeling_started():
        steps = _manifest(work_dir)
        return steps.get("round0/teacher", {}).get("status") == "done" and "round1/pseudolabel" in steps

    kill_when(start(command(1)), teacher_done_and_labeling_started)
    teacher_model = work_dir / "round0-teacher" / "export" / "model.keras"
    pseudo_dir = work_dir / "round1-pseudo"
    after_kill = {
        "steps": _manifest(work_dir),  # complete JSON: the manifest is replaced atomically
        "teacher_stamp": teacher_model.stat().st_mtime_ns,
        "pseudo_dir_is_absent_or_complete": not pseudo_dir.exists() or (pseudo_dir / "stats.json").exists(),
    }
    # `--round 2` on a work_dir holding part of round 1 runs only what is missing: the rest of
    # round 1, then round 2 (a second rerun would skip every step: tests/test_iteration.py).
    resumed = run(command(2), timeout=900)
    return {"work_dir": work_dir, "after_kill": after_kill, "resumed": resumed}


BACKGROUND_SCENARIO = iteration_scenario


def test_iteration_killed_between_rounds_resumes_and_skips_finished_steps(background_outcome):
    work_dir, after_kill, resumed = (background_outcome[key] for key in ("work_dir", "after_kill", "resumed"))
    assert after_kill["steps"]["round0/teacher"]["status"] == "done"
    assert after_kill["pseudo_dir_is_absent_or_complete"]  # never a partial output

    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "[round0/teacher] done already, skipping" in resumed.stderr
    assert resumed.stderr.count("running:") == 5  # labeling and student of both rounds, and the ablation
    assert (work_dir / "round0-teacher" / "export" / "model.keras").stat().st_mtime_ns == after_kill["teacher_stamp"]
    steps = _manifest(work_dir)
    assert sorted(steps) == [
        "round0/teacher",
        "round1/pseudolabel",
        "round1/student",
        "round1/student_no_noise",
        "round2/pseudolabel",
        "round2/student",
    ]
    assert all(entry["status"] == "done" for entry in steps.values())
    trained = ("round0-teacher", 15), ("round1-student", 6), ("round1-student-no-noise", 6), ("round2-student", 6)
    for name, expected_steps in trained:
        assert json.loads((work_dir / name / "export" / "model.json").read_text())["steps"] == expected_steps
    # Round 2 learns from round 1's student, not from the teacher.
    assert steps["round2/pseudolabel"]["settings"]["teacher"] == str(work_dir / "round1-student" / "export")
    assert f"--teacher={work_dir / 'round1-student' / 'export'}" in steps["round2/student"]["command"]
    # The ablation is the same student with all noise off; the noised one has student.train's defaults.
    no_noise = json.loads((work_dir / "round1-student-no-noise" / "config.json").read_text())
    noised = json.loads((work_dir / "round1-student" / "config.json").read_text())
    assert (no_noise["randaugment_layers"], no_noise["dropout_rate"], no_noise["drop_connect_rate"]) == (0, 0.0, 0.0)
    assert (noised["randaugment_layers"], noised["randaugment_magnitude"], noised["unlabel_ratio"]) == (2, 5.0, 1)
    assert noised["dropout_rate"] is None and noised["drop_connect_rate"] is None  # the model's own rates

    measured = json.loads((work_dir / "report.json").read_text())
    assert [(row["round"], row["role"]) for row in measured["models"]] == [
        (0, "teacher"),
        (1, "student"),
        (1, "student_no_noise"),
        (2, "student"),
    ]
    report = (work_dir / "report.md").read_text()
    assert "| 2 | student |" in report and "student round 1 vs teacher" in report
    assert (work_dir / "report.png").stat().st_size > 10_000
    assert "gaussian_noise" in report and (work_dir / "robustness.json").exists()
    assert [row["round"] for row in measured["labeling"]] == [1, 2]
    for row in measured["labeling"]:
        assert 0 <= row["pseudo_label_accuracy"]["before_filtering"] <= 1
        assert sum(row["counts_after_filtering"]) == row["num_kept"]
