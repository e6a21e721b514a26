"""The export as a TensorFlow SavedModel: what a serving system loads must answer as the export does.

One SavedModel of the session's tiny digits teacher (32 px) is written once per
module; it is fed digits test images encoded at other sizes and formats, and
its probabilities are compared with the Keras export's through the project's
one inference path (`Predictor`).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from efficientnet.data.datasets import open_source
from efficientnet.model import serving
from efficientnet.model.export import load_metadata
from efficientnet.model.inference import Predictor
from efficientnet.util import fileio

ROOT = Path(__file__).resolve().parents[1]
# The SavedModel runs the export's variables through the same ops, while
# `Predictor` folds them into constants first (batch norm folded into the
# convolutions), so the two differ by float32 rounding only: 4.8e-7 at most
# on these 8 images (2026-11-30, CPU). 1e-5 leaves room for other machines'
# kernels and still fails on any real difference (another crop, resize or
# set of weights moves probabilities by far more).
PROBABILITY_ATOL = 1e-5


def encoded_digits() -> list[bytes]:
    """8 digits test images (8×8) as PNG and JPEG, at their own size and resized, gray, RGB and RGBA."""
    images = [example["image"] for example in open_source("digits").examples("test").take(8)]

    def resized(image, height, width):
        return tf.cast(tf.image.resize(image, [height, width], method="nearest"), tf.uint8)

    opaque = tf.fill([37, 50, 1], tf.constant(255, tf.uint8))  # an alpha channel, dropped by decode_image

    return [
        tf.io.encode_png(images[0]).numpy(),
        tf.io.encode_png(resized(images[1], 20, 20)).numpy(),
        tf.io.encode_png(resized(images[2], 50, 37)).numpy(),
        tf.io.encode_jpeg(resized(images[3], 40, 40), quality=95).numpy(),
        tf.io.encode_png(images[4][..., :1]).numpy(),  # gray: replicated to RGB
        tf.io.encode_png(tf.concat([resized(images[5], 37, 50), opaque], -1)).numpy(),
        tf.io.encode_jpeg(images[6]).numpy(),
        tf.io.encode_png(resized(images[7], 64, 64)).numpy(),
    ]


@pytest.fixture(scope="module")
def saved_model(teacher, tmp_path_factory):
    return serving.write_saved_model(teacher, str(tmp_path_factory.mktemp("serving") / "saved_model"))


@pytest.mark.slow  # writes and loads a whole SavedModel (the module's fixture)
def test_probabilities_equal_the_keras_exports(teacher, saved_model):
    encoded = encoded_digits()
    outputs = tf.saved_model.load(saved_model).signatures["serving_default"](image_bytes=tf.constant(encoded))

    predictor = Predictor.from_export(teacher)
    views, good, errors = predictor.views_of_encoded(encoded)
    assert (good, errors) == (list(range(8)), [])
    expected = tf.nn.softmax(predictor.logits(views)).numpy()

    probabilities = outputs["probabilities"].numpy()
    assert probabilities.shape == (8, 10) and probabilities.dtype == np.float32
    difference = np.abs(probabilities - expected).max()
    print(f"max |SavedModel - Keras export| = {difference:.2e}")
    assert difference <= PROBABILITY_ATOL
    names = load_metadata(teacher)["class_names"]
    assert outputs["class_names"].numpy().astype(str).tolist() == [names] * 8
    assert outputs["top_class"].numpy().astype(str).tolist() == [names[i] for i in expected.argmax(-1)]


@pytest.mark.slow  # writes and loads a whole SavedModel (the module's fixture)
def test_signature_as_docs_usage_documents_it(saved_model):
    assert serving.describe_signature(saved_model) == (
        "serving_default(image_bytes: string [None]) -> class_names: string [None, 10], "
        "probabilities: float32 [None, 10], top_class: string [None]"
    )


def test_default_output_is_inside_the_export(teacher, teacher_run):
    assert serving.default_output(str(teacher_run)) == os.path.join(teacher, "saved_model")


def test_class_names_default_to_indices():
    assert serving.class_names_of({"class_names": None}, 3) == ["0", "1", "2"]
    with pytest.raises(ValueError, match="lists 2 class names but the model has 3"):
        serving.class_names_of({"class_names": ["cat", "dog"]}, 3)


@pytest.mark.slow  # writes and loads a whole SavedModel (the module's fixture)
def test_failed_copy_leaves_no_saved_model_and_a_rerun_completes(saved_model, tmp_path, monkeypatch):
    """The old saved_model.pb goes first and the new one comes last, so a copy
    that fails part-way leaves a directory that no loader takes for a model.
    (`_publish` is the copy step of `write_saved_model`, called here on the
    written model so that the test does not trace the model a second time.)"""
    output = tmp_path / "saved_model"
    shutil.copytree(saved_model, output)  # a complete earlier SavedModel, to be replaced
    stale = output / "variables" / "variables.data-00001-of-00002"
    stale.write_bytes(b"a shard the new model does not have")
    copied, copy_file = [], fileio.copy_file

    def copy_then_fail(source, destination):
        if copied:
            raise OSError("disk full")
        copied.append(destination)
        copy_file(source, destination)

    monkeypatch.setattr(serving.fileio, "copy_file", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        serving._publish(saved_model, str(output))
    assert len(copied) == 1 and not tf.saved_model.contains_saved_model(str(output))

    monkeypatch.undo()
    serving._publish(saved_model, str(output))
    assert sorted(serving._files_under(str(output))) == sorted(serving._files_under(saved_model))
    assert not stale.exists() and tf.saved_model.contains_saved_model(str(output))


def test_bad_output_is_refused_before_loading(teacher, tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds 'notes.txt', which is not part of a SavedModel"):
        serving.write_saved_model(teacher, str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="is a file, not a directory"):
        serving.write_saved_model(teacher, str(tmp_path / "notes.txt"))


def test_missing_export_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"no exported model at '{tmp_path / 'nothing'}'")):
        serving.write_saved_model(str(tmp_path / "nothing"))


@pytest.mark.slow  # a CLI process
def test_cli_missing_export_is_a_one_line_error(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.saved_model", f"--export={tmp_path / 'nothing'}"],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"error: no exported model at '{tmp_path / 'nothing'}' (expected model.json and model.keras there)"
    ]
    assert completed.stdout == ""
