"""Iteration configs, the rounds manifest, run_iteration.sh arguments and the report's effects,
console summary and plot (the killed-and-resumed miniature of the whole loop is in
tests/faults/test_faults_iteration.py)."""

import functools
import json
import operator
import subprocess
from pathlib import Path

import pytest

from pipelines.iteration import check_steps, load_config, resolved_settings, run_iteration, train_settings
from pipelines.manifest import ORACLE, PSEUDOLABEL, STUDENT, STUDENT_NO_NOISE, TEACHER, Manifest, Step
from pipelines.report import comparisons, console_summary, draw, gap_closed

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
    with pytest.raises(
        ValueError, match=r"bad.json: student.unlabel_raito: unknown setting; did you mean unlabel_ratio\?"
    ):
        load_config(str(path))
    del config["rounds"]
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"bad.json lacks the key\(s\) \['rounds'\]"):
        load_config(str(path))
    with pytest.raises(ValueError, match="defines only 2 student rounds"):
        run_iteration(str(tmp_path / "run"), 3, str(ROOT / "configs" / "digits.json"))


def write_config(tmp_path, change) -> str:
    """configs/digits.json with `change(config)` applied, written into tmp_path."""
    config = json.loads((ROOT / "configs" / "digits.json").read_text())
    change(config)
    path = tmp_path / "x.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize(
    "where, key, message",
    [
        ((), "labled", "labled: unknown setting; did you mean labeled?"),
        (("unlabeled",), "splt", "unlabeled.splt: unknown setting; did you mean split?"),
        (("train",), "epochz", "train.epochz: unknown setting; did you mean epochs?"),
        (("teacher",), "random_flips", "teacher.random_flips: unknown setting; did you mean random_flip?"),
        (("student",), "unlabel_raito", "student.unlabel_raito: unknown setting; did you mean unlabel_ratio?"),
        (
            ("rounds", 1),
            "randaugment_magnitud",
            "rounds[1].randaugment_magnitud: unknown setting; did you mean randaugment_magnitude?",
        ),
        (
            ("pseudolabel",),
            "confidence_treshold",
            "pseudolabel.confidence_treshold: unknown setting; did you mean confidence_threshold?",
        ),
        # Beam's pipeline options are valid keys there, as they are flags of pseudolabel.run.
        (("pseudolabel",), "runer", "pseudolabel.runer: unknown setting; did you mean runner?"),
    ],
)
def test_an_unknown_key_anywhere_is_named_by_its_path(tmp_path, where, key, message):
    path = write_config(tmp_path, lambda config: functools.reduce(operator.getitem, where, config).update({key: 1}))
    with pytest.raises(ValueError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("train", "epochs", "ten", "train.epochs: expected a number, got 'ten'"),
        ("train", "small_images", "yes", "train.small_images: expected a boolean (true or false) or null, got 'yes'"),
        ("student", "batch_size", 32.0, "student.batch_size: expected an integer, got 32.0"),
        (
            "pseudolabel",
            "images_per_class",
            True,
            "pseudolabel.images_per_class: expected an integer or a string, got True",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_named_by_its_path(tmp_path, section, key, value, message):
    path = write_config(tmp_path, lambda config: config[section].update({key: value}))
    with pytest.raises(ValueError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: {message}"


def test_every_step_is_checked_before_round_0(tmp_path):
    """A bad value for round 2's student, or for the labeling, fails in a second, naming round, step and setting,
    before anything is written; steps past --round are not checked."""
    path = write_config(tmp_path, lambda config: config["rounds"].__setitem__(1, {"randaugment_magnitude": -1}))
    with pytest.raises(ValueError) as error:
        run_iteration(str(tmp_path / "run"), 2, path)
    assert str(error.value) == f"{path}, round 2 student: --randaugment_magnitude must be >= 0, got -1"
    assert not (tmp_path / "run").exists()  # no teacher directory, no manifest
    check_steps(load_config(path), 1, False, path)  # round 2 is not run: not checked

    path = write_config(tmp_path, lambda config: config["pseudolabel"].update(confidence_threshold=1.5))
    with pytest.raises(ValueError) as error:
        run_iteration(str(tmp_path / "run"), 2, path)
    assert str(error.value) == f"{path}, round 1 pseudolabel: --confidence_threshold must be in [0, 1], got 1.5"
    assert not (tmp_path / "run").exists()

    path = write_config(tmp_path, lambda config: config["student"].update(optimizer="lamb"))
    with pytest.raises(ValueError, match=r"x.json, round 1 student: --optimizer must be one of \['rmsprop',"):
        check_steps(load_config(path), 2, False, path)
    # Without validation data (held out later, pipelines/holdout.py) the steps are checked all the same.
    path = write_config(tmp_path, lambda config: config.update(validation=None, test=None))
    check_steps(load_config(path), 2, True, path)


def test_run_iteration_script_rejects_unknown_arguments():
    result = subprocess.run(
        ["bash", str(ROOT / "run_iteration.sh"), "--rounds", "2"], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 2
    assert "error: unknown argument '--rounds'" in result.stderr


DIGITS_VARIANTS = [
    "digits_4_per_class.json",
    "digits_larger_students.json",
    "digits_hard_labels.json",
    "digits_shifted.json",
    "digits_shifted_hard_labels.json",
]


@pytest.mark.parametrize("name", ["digits.json", "imagenet_tpu.json", *DIGITS_VARIANTS])
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
    (training then resumes from its final checkpoint, tests/faults/test_faults_iteration.py)."""
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


def test_digits_variants_change_only_what_they_are_about():
    """Each variant is configs/digits.json with one change, so its table compares with the standard one."""
    base = load_config(str(ROOT / "configs" / "digits.json"))
    steps = [Step(0, TEACHER), Step(1, STUDENT), Step(2, STUDENT)]

    def resolved(config):
        return [resolved_settings(train_settings(config, step, "/tmp/x"), step) for step in steps]

    def total_steps(settings, labeled):
        return -(-settings.epochs * labeled // settings.batch_size)

    scarce = load_config(str(ROOT / "configs" / "digits_4_per_class.json"))
    assert scarce["labeled"] == {"dataset": "digits:per_class=4", "split": "train"}
    assert {role: scarce[role] for role in ("unlabeled", "validation", "test", "oracle")} == {
        role: base[role] for role in ("unlabeled", "validation", "test", "oracle")
    }
    for ours, standard in zip(resolved(scarce), resolved(base), strict=True):
        # Lengths in epochs of 40 images, scaled so that every step count is the standard protocol's.
        assert total_steps(ours, 40) == total_steps(standard, 150) == 469
        assert ours.warmup_epochs * 40 == standard.warmup_epochs * 150
        assert ours.lr_decay_epochs * 40 == standard.lr_decay_epochs * 150

    larger = resolved(load_config(str(ROOT / "configs" / "digits_larger_students.json")))
    sizes = [(settings.width, settings.depth) for settings in larger]
    assert sizes[0] == (0.25, 0.25) and sizes[0] < sizes[1] < sizes[2]
    assert all(a <= b for a, b in zip(sizes[1], sizes[2], strict=True))

    hard = load_config(str(ROOT / "configs" / "digits_hard_labels.json"))
    assert hard["pseudolabel"]["label_type"] == resolved(hard)[1].label_type == "hard"
    assert base["pseudolabel"]["label_type"] == resolved(base)[1].label_type == "soft"


def test_shifted_pool_configs_change_only_the_pool_and_the_label_type():
    """digits_shifted*.json: the standard protocol with the corrupted pool (for the student and the oracle)."""

    def raw(name):
        return json.loads((ROOT / "configs" / name).read_text())

    def rest(config):
        config = {key: value for key, value in config.items() if key not in ("description", "ablation_round")}
        for role in ("student", "pseudolabel"):
            config[role] = {key: value for key, value in config[role].items() if key != "label_type"}
        return config | {role: config[role] | {"dataset": "digits"} for role in ("unlabeled", "oracle")}

    base, soft, hard = raw("digits.json"), raw("digits_shifted.json"), raw("digits_shifted_hard_labels.json")
    assert rest(soft) == rest(hard) == rest(base)
    for config, label_type in ((soft, "soft"), (hard, "hard")):
        assert config["unlabeled"]["dataset"] == config["oracle"]["dataset"] == "digits:unlabeled_shift=corrupted"
        assert config["pseudolabel"]["label_type"] == label_type
        assert config["student"].get("label_type", "soft") == label_type
    assert "ablation_round" not in soft and "ablation_round" not in hard


def test_gap_closed_is_the_students_share_of_the_teacher_to_oracle_distance():
    assert gap_closed(student=0.98, teacher=0.96, oracle=1.0) == pytest.approx(0.5)
    assert gap_closed(student=0.95, teacher=0.96, oracle=0.98) == pytest.approx(-0.5)
    assert gap_closed(student=0.99, teacher=0.96, oracle=0.96) is None  # no gap: nothing to close
    models = [
        {"round": 0, "role": TEACHER, "test": 0.90},
        {"round": 1, "role": STUDENT, "test": 0.94},
        {"round": 2, "role": STUDENT, "test": 0.97},
        {"round": 1, "role": ORACLE, "test": 1.00},
    ]
    lines = comparisons(models)
    assert "- student round 1: closes 40 % of the teacher→oracle gap (teacher 0.900, oracle 1.000, test)" in lines
    assert "- student round 2: closes 70 % of the teacher→oracle gap (teacher 0.900, oracle 1.000, test)" in lines
    models[3]["test"] = 0.89  # an oracle below its teacher leaves nothing to close
    assert "- student round 1: no teacher→oracle gap to close (teacher 0.900, oracle 0.890, test)" in comparisons(
        models
    )


def digits_round_2(test=True):
    """report.json's models of a digits `--round 2 --oracle` run, with and without test data."""
    rows = [
        (0, TEACHER, 0.955, 0.972),
        (1, STUDENT, 0.980, 0.978),
        (1, STUDENT_NO_NOISE, 0.965, 0.974),
        (2, STUDENT, 0.980, 0.982),
        (1, ORACLE, 0.990, 0.994),
    ]
    return [
        {"round": k, "role": role, "validation": validation} | ({"test": test_accuracy} if test else {})
        for k, role, validation, test_accuracy in rows
    ]


def test_the_console_summary_gives_accuracy_effects_mce_and_the_report_path():
    models = digits_round_2()
    mce = {"round 0 teacher": 1.0, "round 1 student": 0.669, "round 1 student_no_noise": 2.092}
    # NaN: the teacher made no error under some corruption, which leaves that CE undefined.
    mce |= {"round 2 student": float("nan"), "round 1 oracle": 0.5}
    summary = {
        "models": models,
        "reported": "test",
        "data": {"test": {"dataset": "digits", "split": "test"}},
        "robustness": {"models": {name: {"mce": value} for name, value in mce.items()}},
        "report_md": "runs/digits/report.md",
        "report_png": "runs/digits/report.png",
    }
    # The oracle's row is there; its gap-closed lines stay in report.md.
    assert console_summary(summary).splitlines() == [
        "Top-1 accuracy per model (mCE: mean corruption error on test, teacher = 100, lower is better):",
        "  round 0 teacher           validation 0.955  test 0.972  mCE 100.0",
        "  round 1 student           validation 0.980  test 0.978  mCE 66.9",
        "  round 1 student_no_noise  validation 0.965  test 0.974  mCE 209.2",
        "  round 2 student           validation 0.980  test 0.982  mCE n/a",
        "  round 1 oracle            validation 0.990  test 0.994  mCE 50.0",
        "What the method predicts, measured:",
        "  - student round 1 vs teacher: above by 0.6 points of test accuracy",
        "  - student round 2 vs round 1: above by 0.4 points of test accuracy",
        "  - noised vs un-noised student, round 1: above by 0.4 points of test accuracy",
        "Report: runs/digits/report.md (plot: runs/digits/report.png)",
    ]


def test_the_console_summary_without_test_data_or_robustness():
    summary = {
        "models": digits_round_2(test=False)[:2],
        "reported": "validation",
        "data": {"test": None},
        "report_md": "r/report.md",
        "report_png": "r/report.png",
    }
    assert console_summary(summary).splitlines() == [
        "Top-1 accuracy per model:",
        "  round 0 teacher  validation 0.955",
        "  round 1 student  validation 0.980",
        "What the method predicts, measured:",
        "  - student round 1 vs teacher: above by 2.5 points of validation accuracy",
        "Report: r/report.md (plot: r/report.png)",
    ]


def test_the_accuracy_plot_has_a_tick_per_round_and_is_written_as_a_png(tmp_path):
    import matplotlib.pyplot as plt

    from efficientnet.util import figures

    labeling = {"round": 1, "counts_after_filtering": [3, 5], "class_names": None}
    measured = {"models": digits_round_2(), "reported": "test", "labeling": [labeling]}
    figure = draw(measured)
    assert list(figure.axes[0].get_xticks()) == [0, 1, 2]  # whole rounds, not 0.25, 0.5, …
    figures.write_png(str(tmp_path / "report.png"), figure)
    assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert not plt.get_fignums()  # written and closed


def test_compare_runs_gives_the_gap_closed_per_round_over_seeds(tmp_path):
    from pipelines.compare_runs import gaps_to_markdown, summarize_gaps

    for seed, (teacher, student, oracle) in enumerate([(0.90, 0.95, 1.0), (0.80, 0.85, 0.90), (0.96, 0.97, 0.96)]):
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        models = [
            {"round": 0, "role": TEACHER, "test": teacher},
            {"round": 1, "role": STUDENT, "test": student},
            {"round": 1, "role": ORACLE, "test": oracle},
        ]
        (run / "report.json").write_text(json.dumps({"models": models}))
    (rows,) = summarize_gaps([str(tmp_path / f"seed{seed}") for seed in range(3)])
    # Seed 2's oracle is not above its teacher: no gap, left out rather than counted as 0 or infinity.
    assert (rows["round"], rows["runs"], rows["values"]) == (1, 2, pytest.approx([0.5, 0.5]))
    assert "| 1 | 2 | 0.50 ± 0.00 |" in gaps_to_markdown([rows])


def test_oracle_needs_the_true_labels_named_in_the_config(tmp_path):
    config = json.loads((ROOT / "configs" / "digits.json").read_text())
    del config["oracle"]
    path = tmp_path / "no_oracle.json"
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"--oracle needs --round >= 1 and an `oracle` entry in .*no_oracle.json"):
        run_iteration(str(tmp_path / "run"), 2, str(path), oracle=True)
    config["oracle"] = {"dataset": "digits", "split": "unlabeled"}  # the pool without its labels
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"the oracle data 'digits' split 'unlabeled' has no labels"):
        run_iteration(str(tmp_path / "run"), 2, str(path), oracle=True)
    assert not (tmp_path / "run" / "rounds.json").exists()  # refused before any step
    # Another dataset for every role drops the digits truth: its labels would belong to other images.
    assert load_config(str(ROOT / "configs" / "digits.json"), dataset="tfds:mnist")["oracle"] is None
