"""A user's own image folders through the real `./run_iteration.sh`: a labeled
folder with word-named class subfolders, a flat folder of unlabeled images and
a test folder, with the quick preset; validation is held out of the labeled
folder because none is given."""

import json
import subprocess

import numpy as np
import pytest
from faultlib import ENV, ROOT
from PIL import Image

from efficientnet.data.datasets import open_source

pytestmark = pytest.mark.slow

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NUM_UNLABELED = 60


def write_pngs(directory, examples, *, by_class: bool) -> int:
    """Digits images, 4x enlarged, as PNG files named by their digits index."""
    count = 0
    for example in examples:
        name = example["id"].decode().split("/")[-1] + ".png"
        folder = directory / CLASS_NAMES[example["label"]] if by_class else directory
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.kron(example["image"], np.ones((4, 4, 1), np.uint8))).save(folder / name)
        count += 1
    return count


def own_data_scenario(tmp_path):
    """Builds the folders and runs round 1 on them; returns what the tests check."""
    digits = open_source("digits")
    data = tmp_path / "data"
    write_pngs(data / "labeled", digits.examples("train").as_numpy_iterator(), by_class=True)
    write_pngs(data / "unlabeled", digits.examples("unlabeled").take(NUM_UNLABELED).as_numpy_iterator(), by_class=False)
    write_pngs(data / "test", digits.examples("test").take(50).as_numpy_iterator(), by_class=True)
    command = [
        str(ROOT / "run_iteration.sh"),
        "--round",
        "1",
        "--labeled",
        "folder:data/labeled",  # relative to where the script is called from
        "--unlabeled",
        "folder:data/unlabeled",
        "--test",
        "folder:data/test",
        "--config",
        str(ROOT / "configs" / "own_data_quick.json"),
        "--work_dir",
        "run",
    ]
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=900)
    return {"work_dir": tmp_path / "run", "result": result}


BACKGROUND_SCENARIO = own_data_scenario


@pytest.fixture
def outcome(background_outcome):
    result = background_outcome["result"]
    assert result.returncode == 0, result.stderr[-6000:]
    return background_outcome


def test_report_names_classes_by_folder_and_labels_the_flat_folder(outcome):
    work_dir = outcome["work_dir"]
    report = (work_dir / "report.md").read_text()
    # Class balance by folder name; classes are the sorted folder names, as everywhere.
    assert "| round | " + " | ".join(sorted(CLASS_NAMES)) + " |" in report
    measured = json.loads((work_dir / "report.json").read_text())
    (labeling,) = measured["labeling"]
    assert labeling["num_images"] == NUM_UNLABELED and labeling["class_names"] == sorted(CLASS_NAMES)
    assert f"{labeling['num_kept']} / {NUM_UNLABELED}" in report
    assert sum(labeling["counts_after_filtering"]) == labeling["num_kept"] > 0
    assert [row["role"] for row in measured["models"]] == ["teacher", "student"]
    assert all(0 <= row["test"] <= 1 and 0 <= row["validation"] <= 1 for row in measured["models"])
    model = json.loads((work_dir / "round1-student" / "export" / "model.json").read_text())
    assert model["class_names"] == sorted(CLASS_NAMES)


def test_validation_is_held_out_of_the_labeled_folder_and_recorded(outcome):
    work_dir = outcome["work_dir"]
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
    assert "[data] held out 20 of 150 labeled images as validation" in outcome["result"].stderr
