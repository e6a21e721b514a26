"""Robustness benchmarks end to end on tiny untrained models (digits, mock TFDS, .npy sequences)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from efficientnet import build_model, model_config
from efficientnet.model import export
from efficientnet.util import fileio
from robustness import imagenet_c, metrics, report
from robustness.corruption_report import corruption_report, corruption_section
from robustness.imagenet_a import imagenet_a_report
from robustness.imagenet_c import imagenet_c_report
from robustness.imagenet_p import imagenet_p_report

ROOT = Path(__file__).resolve().parents[1]


def save_tiny(directory: Path, num_classes: int, seed: int, *, size: float = 0.25, resolution: int = 32) -> str:
    keras.utils.set_random_seed(seed)
    settings = {"width": size, "depth": size, "resolution": resolution, "small_images": True}
    model = build_model("efficientnet-b0", num_classes=num_classes, **settings)
    export.save_export(
        str(directory), model, model_config("efficientnet-b0", num_classes, **settings), class_names=None, extra={}
    )
    return str(directory)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, imagenet_export):
    root = tmp_path_factory.mktemp("exports")
    return {"a": save_tiny(root / "a", 10, 0), "b": save_tiny(root / "b", 10, 1), "imagenet": imagenet_export}


@pytest.mark.slow
def test_digits_corruption_report_two_models_against_a_baseline(exports, tmp_path):
    models = {"a": exports["a"], "b": exports["b"]}
    section = corruption_section(
        models, "digits", "test", str(tmp_path / "out"), baseline=exports["a"], max_examples=24, cache_dir=str(tmp_path)
    )
    result = section["result"]
    assert set(result["models"]) == {"a", "b"}
    for row in result["models"].values():
        assert row["num_examples"] == 24 and row["resolution"] == 32
        assert list(row["errors"]) == list(metrics.BENCHMARK_CORRUPTIONS)
        assert all(len(values) == 5 and all(0 <= e <= 1 for e in values) for values in row["errors"].values())
        assert {"clean_error", "ce", "mce", "relative_ce", "relative_mce", "mce_corruptions"} <= set(row)
    # Model a is the baseline, so it sees the same corrupted images: CE = 1 everywhere.
    assert result["baseline"]["errors"] == result["models"]["a"]["errors"]
    assert result["models"]["a"]["mce"] == pytest.approx(1.0)
    assert result["timing"]["corrupted_images"] == 24 * 75 and result["timing"]["cache_hits"] == 0

    paths = section["paths"]
    assert section["markdown"] == Path(paths["md"]).read_text()
    saved = json.loads(Path(paths["json"]).read_text())
    assert saved["models"]["b"]["errors"] == result["models"]["b"]["errors"]
    markdown = Path(paths["md"]).read_text()
    first_table = markdown.split("###")[0]
    rows = [
        line
        for line in first_table.splitlines()
        if line.startswith("| ") and line.split(" | ")[0][2:] in metrics.BENCHMARK_CORRUPTIONS
    ]
    assert [row.split(" | ")[0][2:] for row in rows] == list(metrics.BENCHMARK_CORRUPTIONS)
    assert "| **mCE** | 100.0 |" in markdown and "![corruptions](robustness.png)" in markdown
    assert Path(paths["png"]).stat().st_size > 10_000

    # A second report reuses every corrupted chunk from the cache and gives the same errors.
    again = corruption_report({"b": exports["b"]}, "digits", "test", max_examples=24, cache_dir=str(tmp_path))
    assert again["timing"]["cache_hits"] == 75
    assert again["models"]["b"]["errors"] == result["models"]["b"]["errors"]
    assert again["baseline"] is None and again["models"]["b"]["relative_mce"] is None
    # Without a baseline CE is the mean error over severities.
    gaussian = again["models"]["b"]["errors"]["gaussian_noise"]
    assert again["models"]["b"]["ce"]["gaussian_noise"] == pytest.approx(np.mean(gaussian))


@pytest.mark.slow
def test_mock_imagenet_c_end_to_end(exports, tmp_path):
    with tfds.testing.mock_data(num_examples=4):
        result = imagenet_c_report({"tiny": exports["imagenet"]}, corruptions=["gaussian_noise", "fog"], batch_size=8)
        with pytest.raises(ValueError, match="1000 classes"):
            imagenet_c_report({"digits": exports["a"]}, corruptions=["fog"])
    row = result["models"]["tiny"]
    assert result["num_examples"] == {
        f"tfds:imagenet2012_corrupted/{c}_{s}": 4 for c in ("gaussian_noise", "fog") for s in range(1, 6)
    }
    assert [len(row["errors"][c]) for c in ("gaussian_noise", "fog")] == [5, 5]
    # Clean error measured on mock imagenet2012 validation (4 images).
    assert row["clean_error"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    expected = sum(row["errors"]["fog"]) / (5 * metrics.ALEXNET_MEAN_ERRORS["fog"])
    assert row["ce"]["fog"] == pytest.approx(expected)
    assert row["mce"] == pytest.approx((row["ce"]["fog"] + row["ce"]["gaussian_noise"]) / 2)
    assert row["relative_mce"] is not None and not row["complete"]
    markdown = report.markdown(result)
    assert "this mCE is not the benchmark's" in markdown and "| fog |" in markdown
    # TFDS regenerates the corruptions: never comparable with published mCE, and said so.
    assert not result["comparable"] and result["data_source"] == imagenet_c.TFDS_SOURCE
    assert markdown.startswith(f"## ImageNet-C\n\nData: {imagenet_c.TFDS_SOURCE}. **Not comparable")


@pytest.mark.slow
def test_mock_imagenet_a_end_to_end(exports):
    with tfds.testing.mock_data(num_examples=6):
        result = imagenet_a_report({"tiny": exports["imagenet"]}, batch_size=4)
    row = result["models"]["tiny"]
    assert row["num_examples"] == 6 and 0 <= row["top1"] <= 1 and row["top1"] + row["top1_error"] == 1
    assert 0 <= row["rms_calibration_error"] <= 1 and 0 <= row["expected_calibration_error"] <= 1
    # Mock labels are random over 1000 classes; real ImageNet-A labels are all in the 200.
    assert 0 <= row["labels_outside_200_classes"] <= 6
    assert "| tiny | 6 |" in report.markdown(result)


@pytest.mark.slow  # end to end
def test_imagenet_p_from_npy_sequences(exports, tmp_path):
    rng = np.random.default_rng(0)
    for perturbation in ("gaussian_noise", "translate"):
        for index in range(2):
            folder = tmp_path / "p" / perturbation / f"class{index}"
            folder.mkdir(parents=True)
            frame = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
            np.save(folder / "sequence.npy", np.repeat(frame[None], 3, axis=0))  # a still sequence
    baseline = tmp_path / "alexnet_p.json"
    baseline.write_text(
        json.dumps(
            {
                "flip_probability": {"gaussian_noise": 0.2, "translate": 0.1},
                "top5_distance": {"gaussian_noise": 1.0, "translate": 0.5},
            }
        )
    )
    result = imagenet_p_report({"a": exports["a"]}, str(tmp_path / "p"), baseline=str(baseline))
    row = result["models"]["a"]
    assert result["perturbations"] == ["gaussian_noise", "translate"] and result["num_sequences"]["translate"] == 2
    # Identical frames never flip and keep their top-5: FP = T5D = FR = 0.
    assert row["flip_probability"] == {"gaussian_noise": 0.0, "translate": 0.0}
    assert row["top5_distance"] == {"gaussian_noise": 0.0, "translate": 0.0}
    assert row["mfr"] == 0.0 and row["mt5d"] == 0.0 and not result["complete"]
    assert "mFR 0.0" in report.markdown(result)
    unnormalised = imagenet_p_report({"a": exports["a"]}, str(tmp_path / "p"), perturbations=["translate"])
    assert "mfr" not in unnormalised["models"]["a"] and unnormalised["baseline"] is None


def test_json_reports_have_no_nan(tmp_path):
    """Both reports write through fileio.write_json, which turns an undefined ratio into null."""
    path = str(tmp_path / "report.json")
    fileio.write_json(path, {"value": math.nan, "list": [1.0, math.nan], "nested": {"mce": math.nan}})
    assert json.loads((tmp_path / "report.json").read_text()) == {
        "value": None,
        "list": [1.0, None],
        "nested": {"mce": None},
    }
    result = {"benchmark": "imagenet_a", "dataset": "x", "split": "test", "calibration": "", "models": {}}
    assert report.markdown(result).startswith("## ImageNet-A")


@pytest.mark.slow  # a CLI process
def test_cli_bad_flag_value_is_one_line_error(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines.robustness",
            "--export=a=/nonexistent",
            f"--output_dir={tmp_path}",
            "--corruptions=gaussian_nois",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: unknown corruption 'gaussian_nois'; valid names:") and "gaussian_noise" in last
    assert "Traceback" not in completed.stderr
