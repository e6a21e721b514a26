"""The label-efficiency curve (pipelines/label_curve.py): configs derived per N,
the table and plot of finished runs, and the whole command on tiny runs.

The end-to-end run is a background scenario (tests/conftest.py): a real
`scripts/label_curve.sh` at 2 labels per class, one seed, round 1, with a
teacher and students of a few steps. The same curve again (in this process)
must find it finished and start nothing, and another config into the same
work directory must be refused.
"""

import json
import subprocess
from pathlib import Path

import pytest

from efficientnet.data.digits import DigitsVariant, parse_digits_argument
from pipelines import label_curve
from pipelines.iteration import load_config, train_settings
from pipelines.manifest import ORACLE, STUDENT, TEACHER, Manifest, Step
from pipelines.report import REPORT_FILE

ROOT = Path(__file__).resolve().parents[1]

STEPS = [Step(0, TEACHER), Step(1, STUDENT), Step(2, STUDENT), Step(1, ORACLE)]


def test_the_curve_at_4_per_class_is_the_40_label_protocol():
    """configs/digits_4_per_class.json is digits.json scaled to 40 labels, plus the two label settings
    chosen on validation; the curve derives the same lengths."""
    derived = label_curve.derive_config(load_config(str(ROOT / "configs" / "digits.json")), 4)
    derived["student"] |= {"label_type": "hard"}
    derived["pseudolabel"] |= {"label_type": "hard", "confidence_threshold": 0.7}
    scarce = load_config(str(ROOT / "configs" / "digits_4_per_class.json"))
    for step in STEPS:
        assert train_settings(derived, step, "/m") == train_settings(scarce, step, "/m"), step
    for key in ("labeled", "unlabeled", "validation", "test", "oracle", "pseudolabel"):
        assert derived[key] == scarce[key], key
    assert "ablation_round" not in derived and derived["robustness"] is None
    assert label_curve.derive_config(scarce, 4)["pseudolabel"] == scarce["pseudolabel"]


def test_lengths_scale_with_the_labels_so_every_n_trains_as_many_steps():
    base = load_config(str(ROOT / "configs" / "digits.json"))
    for n in (1, 2, 8, 15):
        derived = label_curve.derive_config(base, n)
        assert derived["labeled"]["dataset"] == ("digits" if n == 15 else f"digits:per_class={n}")
        for step in STEPS:
            ours, standard = train_settings(derived, step, "/m"), train_settings(base, step, "/m")
            for key in label_curve.EPOCH_SETTINGS:  # lengths the config leaves at their defaults too
                assert ours[key] * n == pytest.approx(standard.get(key, _default(key)) * 15), (n, step, key)


def _default(key):
    from efficientnet.train.config import TrainConfig

    return TrainConfig.__dataclass_fields__[key].default


def test_a_shifted_pool_is_kept_and_other_data_is_refused():
    shifted = load_config(str(ROOT / "configs" / "digits_shifted.json"))
    derived = label_curve.derive_config(shifted, 2)
    assert parse_digits_argument(derived["labeled"]["dataset"].partition(":")[2]).labeled_per_class == 2
    assert derived["unlabeled"] == shifted["unlabeled"]
    own = load_config(str(ROOT / "configs" / "own_data_quick.json"), data={"labeled": "folder:/x", "unlabeled": "x"})
    with pytest.raises(ValueError, match="varies digits:per_class=N, but the config's labeled data is 'folder:/x'"):
        label_curve.derive_config(own, 2)
    with pytest.raises(ValueError, match="--per_class: each must be 1..15, got 16"):
        label_curve.derive_config(shifted, 16)


@pytest.mark.parametrize(
    "variant", [DigitsVariant(), DigitsVariant(4), DigitsVariant(15, "corrupted"), DigitsVariant(1, "corrupted")]
)
def test_a_digits_variant_spec_reads_back_as_itself(variant):
    assert parse_digits_argument(variant.spec.partition(":")[2]) == variant


def _finished_run(directory, teacher, students, oracle):
    """A run directory as pipelines.iterate leaves it: rounds.json with the models done, and report.json."""
    manifest = Manifest(str(directory))
    models = [(Step(0, TEACHER), teacher), *((Step(k, STUDENT), a) for k, a in enumerate(students, 1))]
    models.append((Step(1, ORACLE), oracle))
    for step, _ in models:
        manifest.record(step, {"status": "done"})
    rows = [{"round": s.round, "role": s.role, "validation": a - 0.01, "test": a} for s, a in models]
    (directory / REPORT_FILE).write_text(json.dumps({"models": rows}))


def test_the_table_has_a_row_per_n_with_finished_runs_and_the_gap_each_round_closes(tmp_path):
    for seed, shift in enumerate((0.0, 0.02)):
        _finished_run(tmp_path / "per_class_1" / f"seed{seed}", 0.5 + shift, [0.6 + shift, 0.7 + shift], 0.9 + shift)
    _finished_run(tmp_path / "per_class_4" / "seed0", 0.8, [0.85, 0.84], 0.9)
    (tmp_path / "per_class_4" / "seed1").mkdir()  # still running: no report yet
    curve = label_curve.summarize(str(tmp_path), [1, 4, 8], [0, 1], last_round=2)
    assert [(point["per_class"], point["runs"]) for point in curve] == [(1, 2), (4, 1)]
    table = label_curve.to_markdown(curve, "test").splitlines()
    assert table[0] == (
        "| labels per class | runs | teacher | round 1 student | round 2 student | oracle "
        "| gap closed, round 1 | gap closed, round 2 |"
    )
    models = "0.5100 ± 0.0100 | 0.6100 ± 0.0100 | 0.7100 ± 0.0100 | 0.9100 ± 0.0100"
    assert table[2] == f"| 1 | 2 | {models} | 0.25 ± 0.00 | 0.50 ± 0.00 |"
    models = "0.8000 ± 0.0000 | 0.8500 ± 0.0000 | 0.8400 ± 0.0000 | 0.9000 ± 0.0000"
    assert table[3] == f"| 4 | 1 | {models} | 0.50 ± 0.00 | 0.40 ± 0.00 |"
    assert "gap closed" not in label_curve.to_markdown(curve, "validation")
    markdown = label_curve.write_curve(str(tmp_path), curve, "python -m pipelines.label_curve")
    assert (tmp_path / "label_curve.md").read_text() == markdown + "\n"
    assert json.loads((tmp_path / "label_curve.json").read_text())["curve"][0]["per_class"] == 1
    assert (tmp_path / "label_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def tiny_config(path, steps=6):
    """configs/digits.json with runs of a few steps; a threshold of 0 keeps the near-chance teacher's labels.

    Without RandAugment, whose graph is a good part of what each short training
    process spends: the curve's own work is the orchestration around the runs.
    """
    config = json.loads((ROOT / "configs" / "digits.json").read_text())
    config["train"] |= {"log_every_steps": steps, "checkpoint_every_steps": steps}
    config["teacher"] |= {"train_steps": steps, "randaugment_layers": 0}
    config["student"] |= {"train_steps": steps, "randaugment_layers": 0}
    config["pseudolabel"] |= {"confidence_threshold": 0.0}
    path.write_text(json.dumps(config))
    return path


CURVE = {"per_class": [2], "seeds": [0], "last_round": 1}


def curve_scenario(work_dir) -> dict:
    """`scripts/label_curve.sh` as a user types it: the wrapper's set-up, the CLI, its iteration."""
    config = tiny_config(work_dir / "tiny.json")
    command = ["scripts/label_curve.sh", f"--config={config}", f"--work_dir={work_dir / 'curve'}"]
    command += ["--per_class=2", "--seeds=0", "--round=1"]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    return {"first": first, "config": config, "work_dir": work_dir / "curve"}


BACKGROUND_SCENARIO = curve_scenario


@pytest.mark.slow
def test_the_curve_command_runs_each_n_and_seed_and_writes_the_table(background_outcome):
    seen = background_outcome
    assert seen["first"].returncode == 0, seen["first"].stderr[-3000:]
    assert "[curve] 0 of 1 runs finished already; 1 to run" in seen["first"].stderr
    assert "[curve] 2 per class, seed 0: finished in" in seen["first"].stderr
    run = seen["work_dir"] / "per_class_2" / "seed0"
    report = json.loads((run / REPORT_FILE).read_text())
    assert [(row["round"], row["role"]) for row in report["models"]] == [(0, TEACHER), (1, STUDENT), (1, ORACLE)]
    assert "[round1/student] finished" in (run.parent / "seed0.log").read_text()  # the run's console
    config = json.loads((seen["work_dir"] / "configs" / "per_class_2.json").read_text())
    assert config["labeled"]["dataset"] == "digits:per_class=2"
    files = sorted(path.name for path in seen["work_dir"].iterdir())
    assert files == ["configs", "label_curve.json", "label_curve.md", "label_curve.png", "per_class_2"]
    table = seen["first"].stdout
    assert "| labels per class | runs | teacher | round 1 student | oracle |" in table
    assert table.count("\n| 2 | 1 | ") == 2  # test and validation


@pytest.mark.slow
def test_the_same_curve_again_runs_nothing_and_another_config_is_refused(background_outcome, capsys):
    seen = background_outcome
    work_dir, config = str(seen["work_dir"]), str(seen["config"])
    before = (seen["work_dir"] / "per_class_2" / "seed0" / "rounds.json").read_text()
    again = label_curve.run_curve(work_dir, config, **CURVE)
    # The same tables; only the command line above them is this process's.
    assert again.split("\n\n")[2:] == seen["first"].stdout.strip().split("\n\n")[2:]
    assert "[curve] 1 of 1 runs finished already; 0 to run" in capsys.readouterr().err
    assert (seen["work_dir"] / "per_class_2" / "seed0" / "rounds.json").read_text() == before
    other = tiny_config(seen["work_dir"].parent / "other.json", steps=4)
    with pytest.raises(ValueError, match=f"--work_dir {work_dir} holds runs of another config"):
        label_curve.run_curve(work_dir, str(other), **CURVE)


def test_bad_settings_are_refused_before_anything_is_written(tmp_path):
    work_dir, config = str(tmp_path / "curve"), str(ROOT / "configs" / "digits.json")
    for arguments, message in [
        (([0], [0]), "--per_class: each must be 1..15, got 0"),
        (([2], [0], 2, 0), "--jobs must be >= 1, got 0"),
        (([2], [0], 0), "--round must be >= 1 (the oracle bounds round 1), got 0"),
        (([2], [0], 3), "--round=3 but .*digits.json defines only 2 student rounds"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            label_curve.run_curve(work_dir, config, *arguments)
    assert not (tmp_path / "curve").exists()


def test_lists_of_integers_are_read_and_anything_else_names_its_flag():
    from absl import flags

    values = flags.FlagValues()
    holder = flags.DEFINE_list("seeds", ["0", "1"], "", flag_values=values)
    values(["prog", "--seeds=3,4"])
    assert label_curve.integers(holder) == [3, 4]
    values(["prog", "--seeds=0,x"])
    with pytest.raises(ValueError, match="^--seeds takes comma-separated integers, got 0,x$"):
        label_curve.integers(holder)
