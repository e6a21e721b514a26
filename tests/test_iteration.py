"""Iteration configs, the rounds manifest and run_iteration.sh arguments (the killed-and-resumed
miniature of the whole loop is in tests/faults/test_faults_iteration.py)."""

import json
import subprocess
from pathlib import Path

import pytest

from pipelines.iterate import load_config, resolved_settings, run_iteration, train_settings
from pipelines.manifest import PSEUDOLABEL, STUDENT, STUDENT_NO_NOISE, TEACHER, Manifest, Step

ROOT = Path(__file__).resolve().parents[1]


def test_corrupt_manifest_is_named(tmp_path):
    (tmp_path / "rounds.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"rounds.json is not valid JSON"):
        Manifest(str(tmp_path))
    (tmp_path / "rounds.json").write_text("[]")
    with pytest.raises(ValueError, match="is not a rounds manifest"):
        Manifest(str(tmp_path))


def test_config_errors_name_the_file_and_key(tmp_path):
    config = json.loads((ROOT / "configs" / "digits.json").read_text())
    config["student"]["unlabel_raito"] = 2
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"bad.json: student has unknown training setting\(s\) \['unlabel_raito'\]"):
        load_config(str(path))
    del config["rounds"]
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"bad.json lacks the key\(s\) \['rounds'\]"):
        load_config(str(path))
    with pytest.raises(ValueError, match="defines only 2 student rounds"):
        run_iteration(str(tmp_path / "run"), 3, str(ROOT / "configs" / "digits.json"))


def test_run_iteration_script_rejects_unknown_arguments():
    result = subprocess.run(
        ["bash", str(ROOT / "run_iteration.sh"), "--rounds", "2"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 2
    assert "error: unknown argument '--rounds'" in result.stderr


@pytest.mark.parametrize("name", ["digits.json", "imagenet_tpu.json"])
def test_shipped_configs_resolve_to_valid_training_settings(name):
    config = load_config(str(ROOT / "configs" / name))
    steps = [Step(0, TEACHER)] + [Step(k, STUDENT) for k in range(1, len(config["rounds"]) + 1)]
    resolved = []
    for step in steps:
        settings = train_settings(config, step, "/tmp/x")
        if step.role == STUDENT:
            settings |= {"unlabeled_dataset": "tfrecord:/tmp/x/pseudo-*"}
        resolved.append(resolved_settings(settings, step))
    for values in resolved:
        values.validate()
    assert resolved[-1].unlabel_ratio > 0


def test_student_settings_leave_unset_noise_to_the_student_defaults():
    """A round config without randaugment_* gives the student its CLI's defaults, not TrainConfig's N=0."""
    config = load_config(str(ROOT / "configs" / "digits.json"))
    for section in ("train", "student"):
        config[section] = {k: v for k, v in config[section].items() if not k.startswith("randaugment")}
    settings = train_settings(config, Step(1, STUDENT), "/tmp/x")
    assert not any(key.startswith("randaugment") for key in settings)
    student = resolved_settings(settings | {"unlabeled_dataset": "tfrecord:/tmp/x/pseudo-*"}, Step(1, STUDENT))
    assert (student.randaugment_layers, student.randaugment_magnitude) == (2, 5.0)
    ablation = resolved_settings(
        settings | {"unlabeled_dataset": "tfrecord:/tmp/x/pseudo-*"}, Step(1, STUDENT_NO_NOISE)
    )
    assert (ablation.randaugment_layers, ablation.dropout_rate, ablation.drop_connect_rate) == (0, 0.0, 0.0)


def test_steps_are_data():
    step = Step(2, STUDENT_NO_NOISE)
    assert step.name == "round2/student_no_noise"
    assert step.directory("runs/x") == "runs/x/round2-student-no-noise"
    assert Step(1, PSEUDOLABEL).directory("w") == "w/round1-pseudo"
    with pytest.raises(ValueError, match="unknown step role 'studnet'"):
        Step(1, "studnet")


def test_a_step_is_done_only_with_its_settings_and_a_complete_output(tmp_path):
    """An export cut off before its model.json (written last) is incomplete: its step runs again
    (training then resumes from its final checkpoint, tests/faults/test_faults_kill.py)."""
    manifest = Manifest(str(tmp_path))
    marker = tmp_path / "model.json"
    marker.write_text("{}")
    manifest.record(Step(1, STUDENT), {"status": "done", "settings": {"epochs": 1}})
    assert manifest.done(Step(1, STUDENT), {"epochs": 1}, str(marker))
    assert not manifest.done(Step(2, STUDENT), {"epochs": 1}, str(marker))  # never ran
    marker.unlink()
    assert not manifest.done(Step(1, STUDENT), {"epochs": 1}, str(marker))
    marker.write_text("{}")
    with pytest.raises(ValueError, match="step round1/student was done with other settings; use a new --work_dir"):
        manifest.done(Step(1, STUDENT), {"epochs": 2}, str(marker))


def test_manifest_records_round_and_role_as_fields(tmp_path):
    manifest = Manifest(str(tmp_path))
    manifest.record(Step(1, STUDENT), {"status": "done", "settings": {}})
    manifest.record(Step(0, TEACHER), {"status": "done", "settings": {}})
    manifest.record(Step(1, PSEUDOLABEL), {"status": "running", "settings": {}})
    stored = json.loads((tmp_path / "rounds.json").read_text())["steps"]
    assert stored["round1/student"] == {"round": 1, "role": "student", "status": "done", "settings": {}}
    reread = Manifest(str(tmp_path))
    assert [step for step, _ in reread.finished(2, (TEACHER, STUDENT))] == [Step(0, TEACHER), Step(1, STUDENT)]
    assert reread.finished(2, (PSEUDOLABEL,)) == []  # still running


def test_compare_runs_means_over_seeds(tmp_path):
    from pipelines.compare_runs import summarize, to_markdown

    for seed, (teacher, student) in enumerate([(0.96, 0.98), (0.97, 0.97), (0.95, 0.99)]):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        models = [
            {"round": 0, "role": "teacher", "validation": teacher, "test": teacher},
            {"round": 1, "role": "student", "validation": student, "test": student - 0.01},
        ]
        (run / "report.json").write_text(json.dumps({"models": models}))
    rows = summarize([str(tmp_path / f"seed{seed}") for seed in range(3)])
    assert [(row["round"], row["role"], row["runs"]) for row in rows] == [(0, "teacher", 3), (1, "student", 3)]
    assert rows[0]["test"]["mean"] == pytest.approx(0.96)
    assert rows[1]["test"]["mean"] == pytest.approx(0.97)
    assert rows[1]["validation"]["std"] == pytest.approx((2 / 3) ** 0.5 * 0.01)
    assert "| 1 | student | 3 | 0.9800 ± 0.0082 | 0.9700 ± 0.0082 |" in to_markdown(rows)
