"""The shared training loop, run for real on tiny models (teacher configuration)."""

import dataclasses
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tiny_runs import TINY, teacher_config, tiny_config

from efficientnet import build_model
from efficientnet.data.datasets import open_source
from efficientnet.model import export, scaling
from efficientnet.model.evaluation import evaluate
from efficientnet.model.inference import Predictor
from efficientnet.model.init_from import initialize_from
from efficientnet.train.config import TrainConfig, check_resumable
from efficientnet.train.ema import EMA
from efficientnet.train.loop import restore_newest_readable, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def teacher_dir(teacher_run):
    """The session teacher's run directory: `tiny_runs.teacher_config`, trained once for the suite."""
    return teacher_run


def test_teacher_run_writes_config_checkpoints_summaries_and_export(teacher_dir):
    assert json.loads((teacher_dir / "config.json").read_text())["randaugment_layers"] == 1
    assert (teacher_dir / "checkpoints" / "ckpt-100.index").exists()
    assert list((teacher_dir / "train").glob("events.out.tfevents.*"))
    metadata = json.loads((teacher_dir / "export" / "model.json").read_text())
    assert metadata["num_classes"] == 10 and metadata["class_names"] == [str(d) for d in range(10)]
    assert metadata["input"]["resolution"] == 32 and metadata["model"]["width"] == 0.25
    assert metadata["steps"] == 100 and metadata["role"] == "teacher"
    assert metadata["metrics"]["num_examples"] == 500
    # 100 steps (21 epochs of the 150 labeled images) measured 0.70; chance is 0.10.
    assert metadata["metrics"]["top1"] > 0.5


def test_export_reloads_in_safe_mode_and_reproduces_its_metrics(teacher_dir):
    model, metadata = export.load_export(str(teacher_dir))
    metrics = evaluate(Predictor(model, metadata["input"]["resolution"]), open_source("digits"), "test", 128)
    assert metrics == metadata["metrics"]


@pytest.fixture(scope="module")
def cli_runs(teacher_dir, tmp_path_factory):
    """The CLI processes of this module, started together: each is mostly Python and TensorFlow importing."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    commands = {
        "evaluate": ["teacher.evaluate", f"--model={teacher_dir}/export", "--dataset=digits", "--split=test"],
        "bad flag": ["teacher.train", f"--model_dir={run_dir}", "--batch_size=-4"],
    }

    def run(command):
        return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300)

    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        results = dict(zip(commands, pool.map(run, commands.values()), strict=True))
    return results, run_dir


@pytest.mark.slow  # a real CLI process
def test_evaluate_cli(teacher_dir, cli_runs):
    result = cli_runs[0]["evaluate"]
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics == json.loads((teacher_dir / "export" / "model.json").read_text())["metrics"]


@pytest.mark.slow  # a whole train() call on the finished run: restores, then exports again
def test_finished_run_is_not_trained_again(teacher_dir, capfd):
    before = (teacher_dir / "checkpoints" / "ckpt-100.index").stat().st_mtime
    train(teacher_config(teacher_dir))
    assert (teacher_dir / "checkpoints" / "ckpt-100.index").stat().st_mtime == before
    assert "step " not in capfd.readouterr().err


def test_resume_refuses_a_model_dir_with_other_settings(teacher_dir):
    with pytest.raises(
        ValueError,
        match=r"different settings \(--batch_size, --deterministic, --randaugment_layers, --randaugment_magnitude\)",
    ):
        check_resumable(str(teacher_dir), tiny_config(teacher_dir, batch_size=16))
    # Logging and checkpoint intervals may change on resume.
    check_resumable(str(teacher_dir), dataclasses.replace(teacher_config(teacher_dir), log_every_steps=5))


def test_init_from_an_export_copies_weights_and_skips_a_different_classifier(teacher_dir):
    source, _ = export.load_export(str(teacher_dir))
    same = build_model("efficientnet-b0", num_classes=10, **TINY)
    initialize_from(same, str(teacher_dir), scaling.model_config("efficientnet-b0", 10, **TINY))
    for ours, theirs in zip(same.weights, source.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    other = build_model("efficientnet-b0", num_classes=3, **TINY)
    classifier = other.get_layer("logits").kernel.numpy().copy()
    initialize_from(other, str(teacher_dir), scaling.model_config("efficientnet-b0", 3, **TINY))
    np.testing.assert_array_equal(other.get_layer("logits").kernel.numpy(), classifier)
    np.testing.assert_array_equal(other.get_layer("head_conv").kernel.numpy(), source.get_layer("head_conv").kernel)


@pytest.mark.slow  # end to end: a student run of its own
def test_the_oracle_is_a_student_whose_targets_are_the_true_labels(tmp_path):
    """pipelines.iterate --oracle: the student's run, reading the unlabeled pool with its labels, hard targets."""
    config = tiny_config(
        tmp_path / "oracle",
        train_steps=2,
        batch_size=8,
        unlabeled_dataset="digits",
        unlabeled_split="unlabeled_with_labels",
        unlabel_ratio=1.0,
        label_type="hard",
        eval_split="validation",
    )
    metrics = train(config)
    metadata = export.load_metadata(str(tmp_path / "oracle"))
    assert metadata["role"] == "student" and metadata["metrics"] == metrics and metrics["num_examples"] == 200


def test_ema_follows_the_reference_update():
    variable = tf.Variable([1.0, 2.0])
    ema = EMA([variable], decay=0.5)
    variable.assign([3.0, 6.0])
    ema.update(tf.constant(100, tf.int64))  # decay min(0.5, 101/110) = 0.5
    np.testing.assert_allclose(ema.averages[0].numpy(), [2.0, 4.0])
    ema.swap()
    np.testing.assert_allclose(variable.numpy(), [2.0, 4.0])
    np.testing.assert_allclose(ema.averages[0].numpy(), [3.0, 6.0])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(batch_size=0), "--batch_size must be positive"),
        (dict(optimizer="lamb"), r"--optimizer must be one of \['rmsprop', 'sgd', 'adam'\]"),
        (dict(tpu="my-tpu", strategy="cpu"), "--tpu contradicts --strategy=cpu"),
        (dict(precision="fp8"), "--precision must be one of"),
        (dict(unlabel_ratio=3.0), "--unlabeled_dataset and a positive --unlabel_ratio go together"),
        (dict(width=-1.0), "invalid width=-1.0"),
        (dict(model="efficientnet-b9"), "unknown model 'efficientnet-b9'; valid names"),
    ],
)
def test_invalid_settings_are_named(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_config(tmp_path / "run", **overrides))
    assert not (tmp_path / "run").exists()  # failed before any work


@pytest.mark.slow  # a real CLI process
def test_cli_bad_flag_is_one_line_and_writes_nothing(cli_runs):
    results, run_dir = cli_runs
    result = results["bad flag"]
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: --batch_size must be positive, got -4"
    assert not run_dir.exists()


@pytest.mark.slow  # end to end: a 1000-class model trained, exported and reloaded
def test_mock_tfds_imagenet_trains_a_few_steps_and_exports(tmp_path):
    with tfds.testing.mock_data(num_examples=16):
        metrics = train(
            TrainConfig(
                model_dir=str(tmp_path),
                dataset="tfds:imagenet2012",
                eval_split="validation",
                batch_size=4,
                train_steps=3,
                width=0.1,
                depth=0.1,
                resolution=72,
                checkpoint_every_steps=2,
                log_every_steps=1,
                randaugment_layers=2,
                randaugment_magnitude=9,
            )
        )
    assert metrics["num_examples"] == 16
    metadata = json.loads((tmp_path / "export" / "model.json").read_text())
    assert metadata["num_classes"] == 1000 and len(metadata["class_names"]) == 1000
    assert metadata["dataset"] == "tfds:imagenet2012" and metadata["steps"] == 3
    model = keras.saving.load_model(tmp_path / "export" / "model.keras", safe_mode=True)
    assert model.output_shape == (None, 1000)


@pytest.mark.slow  # end to end: a second training run
def test_labeled_finetune_at_a_larger_resolution_starts_from_the_export(teacher_dir):
    config = tiny_config(teacher_dir, randaugment_layers=1, randaugment_magnitude=5).finetune(5, 40)
    assert (config.model_dir, config.init_from) == (f"{teacher_dir}/finetune", f"{teacher_dir}/export")
    assert (config.randaugment_layers, config.unlabeled_dataset, config.resolution) == (0, None, 40)
    metrics = train(config)
    metadata = json.loads((teacher_dir / "finetune" / "export" / "model.json").read_text())
    assert metadata["input"]["resolution"] == 40 and metadata["steps"] == 5
    # Started from the trained export: measured 0.41 after five steps at the new resolution,
    # where a freshly initialised model is at chance (~0.1).
    assert metrics["top1"] > 0.25


def test_a_run_whose_every_checkpoint_is_unreadable_is_refused_naming_them(tmp_path):
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    (directory / "checkpoint").write_text('model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-2"\n')
    (directory / "ckpt-2.index").write_bytes(b"not an index")
    checkpoint = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64))
    with pytest.raises(ValueError, match=f"no checkpoint in {directory} can be read: {directory}/ckpt-2 \\("):
        restore_newest_readable(checkpoint, str(directory))
