"""Predicting with an export: a folder of real digit PNGs and one corrupt file, through the
library function behind `python -m pipelines.predict`, checked against `Predictor.logits`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from efficientnet.data.datasets import open_source
from efficientnet.model.inference import Predictor
from efficientnet.model.prediction import predict_to_jsonl
from efficientnet.util import fileio

ROOT = Path(__file__).resolve().parents[1]
NUM_IMAGES = 12
CORRUPT = b"\x89PNG\r\n\x1a\n but no image after the signature"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """`PATH/<digit>/<n>.png` for the first 12 digits test images, plus `PATH/3/broken.png`."""
    root = tmp_path_factory.mktemp("photos")
    examples = open_source("digits").examples("test", decode=False).take(NUM_IMAGES)
    for index, example in enumerate(examples.as_numpy_iterator()):
        folder = root / str(example["label"])
        folder.mkdir(exist_ok=True)
        (folder / f"{index:02d}.png").write_bytes(example["encoded"])
    (root / "3").mkdir(exist_ok=True)
    (root / "3" / "broken.png").write_bytes(CORRUPT)
    return root


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_one_line_per_image_in_input_order_matching_the_logits(teacher, photos, tmp_path, capfd):
    output = tmp_path / "out" / "predictions.jsonl"
    summary = predict_to_jsonl(teacher, f"folder:{photos}", str(output), top_k_classes=3, batch_size=5)
    assert (summary.num_classified, summary.num_undecodable, summary.output) == (NUM_IMAGES, 1, str(output))
    assert os.listdir(output.parent) == ["predictions.jsonl"]  # renamed into place, no temporary left
    lines = read_lines(output)
    # The folder source's order: class folders, then files, sorted; ids are the paths.
    assert [line["id"] for line in lines] == sorted(str(path) for path in photos.glob("*/*.png"))

    broken = str(photos / "3" / "broken.png")
    errors = [line for line in lines if "error" in line]
    assert [line["id"] for line in errors] == [broken]
    assert errors[0] == {"id": broken, "error": "Invalid PNG. Failed to initialize decoder."}  # TensorFlow's reason

    good = [line for line in lines if "top_k" in line]
    predictor = Predictor.from_export(teacher)
    views, decoded, failures = predictor.views_of_encoded([Path(line["id"]).read_bytes() for line in good])
    assert failures == [] and decoded == list(range(NUM_IMAGES))
    expected_top1 = np.argmax(predictor.logits(views), axis=-1)
    for line, top1 in zip(good, expected_top1, strict=True):
        ranked = line["top_k"]
        assert len(ranked) == 3
        assert ranked[0]["index"] == top1
        assert [entry["class"] for entry in ranked] == [str(entry["index"]) for entry in ranked]  # names "0".."9"
        probabilities = [entry["probability"] for entry in ranked]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[-1] <= probabilities[0] <= 1
    # The last progress line counts every image, the undecodable one too.
    assert f"predict folder:{photos}: 13/13 images in " in capfd.readouterr().err


def test_top_k_beyond_the_classes_is_clipped(teacher, tmp_path):
    output = tmp_path / "digits.jsonl"
    summary = predict_to_jsonl(teacher, "digits", str(output), split="test", top_k_classes=50)
    lines = read_lines(output)
    assert (summary.num_classified, summary.num_undecodable, len(lines)) == (500, 0, 500)
    ids = [example["id"].decode() for example in open_source("digits").examples("test").as_numpy_iterator()]
    assert [line["id"] for line in lines] == ids
    for line in lines[:5]:
        assert sorted(entry["index"] for entry in line["top_k"]) == list(range(10))
        assert sum(entry["probability"] for entry in line["top_k"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"top_k_classes": 0}, ValueError, "--top_k must be >= 1, got 0"),
        ({"batch_size": 0}, ValueError, "--batch_size must be >= 1, got 0"),
        ({"export_dir": "/nonexistent/export"}, FileNotFoundError, "no exported model at '/nonexistent/export'"),
        ({"input_spec": "nosuch:data"}, ValueError, "nosuch"),
        ({"input_spec": "folder:/nonexistent/photos"}, FileNotFoundError, "'/nonexistent/photos' does not exist"),
        ({"split": "test"}, ValueError, "has no splits"),
        ({"input_spec": "images:/nonexistent/**/*.jpg"}, ValueError, "yields no image: looked for files matching"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(teacher, photos, tmp_path, change, error, message):
    arguments = {"export_dir": teacher, "input_spec": f"folder:{photos}", "output": str(tmp_path / "p.jsonl"), **change}
    with pytest.raises(error, match=message.replace("(", r"\(")):
        predict_to_jsonl(**arguments)
    assert os.listdir(tmp_path) == []


def test_output_that_cannot_be_written_names_the_flag(teacher, photos, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="the directory of --output '.*a-file' cannot be written"):
        predict_to_jsonl(teacher, f"folder:{photos}", str(blocker / "p.jsonl"))
    with pytest.raises(ValueError, match="--output '.*' is a directory"):
        predict_to_jsonl(teacher, f"folder:{photos}", str(tmp_path))


def test_an_interrupted_write_leaves_no_file(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_writer(str(tmp_path / "p.jsonl"), "w") as f:
            f.write('{"id": "half')
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


@pytest.mark.slow  # a CLI process
def test_cli(teacher, photos, tmp_path):
    def predict(*flags):
        command = [sys.executable, "-m", "pipelines.predict", *flags]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    output = tmp_path / "predictions.jsonl"
    done = predict(f"--export={teacher}", f"--input=folder:{photos}", f"--output={output}", "--top_k=2")
    assert done.returncode == 0, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"classified {NUM_IMAGES} images (1 undecodable) into {output}"
    assert len(read_lines(output)) == NUM_IMAGES + 1

    refused = predict(f"--export={teacher}", f"--input=folder:{photos}", f"--output={output}", "--top_k=0")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1] == "error: --top_k must be >= 1, got 0"
