"""Bad input, through the real CLIs: a one-line error naming the problem and
exit status 2 with nothing written, or the documented handling.

The README's "Bad input → behaviour" table is checked against CASES, so the
documentation stays what these processes actually do.
"""

import dataclasses
import io
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from faultlib import ROOT, TINY_FLAGS, assert_user_error, cli, run
from PIL import Image

from efficientnet.data import records
from efficientnet.model import export, scaling
from efficientnet.model.network import build_from_config

RUN = "{run}"  # each case's own output directory: the cases run concurrently
TRAIN_FLAGS = [*TINY_FLAGS, "--batch_size=4", "--train_steps=3", "--warmup_epochs=0", "--log_every_steps=1"]


@dataclasses.dataclass
class Case:
    """`name` is the README row; `message` must be in the error line and in that row."""

    name: str
    command: list[str]
    message: str
    also: tuple[str, ...] = ()  # run-specific parts of the error line (paths)
    writes_nothing: bool = False  # the case's own output directory, RUN, must not appear

    def resolved(self, run_dir) -> list[str]:
        return cli(*(argument.replace(RUN, str(run_dir)) for argument in self.command))


def write_image(path, mode: str, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, "PNG" if path.suffix == ".png" else "JPEG")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, teacher):
    """Every bad input on disk, built in-process without training."""
    root = tmp_path_factory.mktemp("inputs")
    formats = root / "formats"
    for seed, name in enumerate(("a", "b")):
        write_image(formats / name / "rgb.jpg", "RGB", seed)
        write_image(formats / name / "gray.jpg", "L", seed + 10)
        write_image(formats / name / "cmyk.jpg", "CMYK", seed + 20)
        write_image(formats / name / "alpha.png", "RGBA", seed + 30)
    buffer = io.BytesIO()
    Image.fromarray(np.full((30, 40, 3), 128, np.uint8)).save(buffer, "JPEG")
    (formats / "a" / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (formats / "b" / "garbage.jpg").write_bytes(b"not an image")
    (root / "undecodable" / "a").mkdir(parents=True)
    (root / "undecodable" / "a" / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (root / "no_images" / "a").mkdir(parents=True)
    (root / "empty.tfrecord").write_bytes(b"")
    with tf.io.TFRecordWriter(str(root / "pseudo.tfrecord")) as writer:  # one valid pseudo-label record
        writer.write(
            records.encode_pseudo_label(tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy(), np.full(10, 0.1))
        )
    (root / "a_file").write_text("a file where a directory is needed")
    (root / "corrupt_run").mkdir()
    (root / "corrupt_run" / "rounds.json").write_text('{"steps": {"round0/teacher": {"status": "do')

    two_classes = scaling.model_config("efficientnet-b0", 2, width=0.25, depth=0.25, resolution=32, small_images=True)
    model = build_from_config(two_classes)
    export.save_export(str(root / "two_classes"), model, two_classes, class_names=["a", "b"], extra={})
    (root / "lambda").mkdir()
    (root / "lambda" / "model.json").write_text((Path(teacher) / "model.json").read_text())
    image = keras.Input((32, 32, 3))
    hidden = keras.layers.GlobalAveragePooling2D()(keras.layers.Lambda(lambda x: x / 255.0)(image))
    keras.Model(image, keras.layers.Dense(10, name="logits")(hidden)).save(root / "lambda" / "model.keras")
    return root


def cases(root, teacher) -> list[Case]:
    train = ["teacher.train", f"--model_dir={RUN}", *TRAIN_FLAGS]
    student = [
        "student.train",
        f"--model_dir={RUN}",
        *TRAIN_FLAGS,
        "--dataset=digits",
        "--unlabel_ratio=1",
        f"--unlabeled_dataset=tfrecord:{root}/pseudo.tfrecord",
    ]
    label = ["pseudolabel.run", "--input=digits", "--split=unlabeled"]
    return [
        Case(
            "missing dataset (folder)",
            [*train, f"--dataset=folder:{root}/nowhere"],
            "does not exist",
            (f"image folder '{root}/nowhere'",),
            writes_nothing=True,
        ),
        Case(
            "missing dataset (tfrecord pattern matching no file)",
            [*train, f"--dataset=tfrecord:{root}/none-*"],
            "no files match tfrecord pattern",
            (f"'{root}/none-*'",),
            writes_nothing=True,
        ),
        Case(
            "unknown TFDS dataset",
            [*train, "--dataset=tfds:no_such_dataset"],
            "unknown TFDS dataset",
            ("'no_such_dataset'",),
            writes_nothing=True,
        ),
        Case(
            "empty dataset (tfrecord files without records)",
            [*train, f"--dataset=tfrecord:{root}/empty.tfrecord"],
            "hold no records",
            writes_nothing=True,
        ),
        Case(
            "empty dataset (class folders without images)",
            [*train, f"--dataset=folder:{root}/no_images"],
            "holds no .jpg/.jpeg/.png",
            writes_nothing=True,
        ),
        Case(
            "dataset whose every image is undecodable",
            [*train, f"--dataset=folder:{root}/undecodable", "--train_split=", "--eval_split="],
            "the training data yields no images",
            ("(1 undecodable images skipped)",),
        ),
        Case(
            "teacher with a different number of classes than the dataset",
            [*student, f"--teacher={root}/two_classes"],
            "predicts 2 classes but --dataset 'digits' has 10",
            writes_nothing=True,
        ),
        Case(
            "confidence threshold that filters out every image",
            [*label, f"--teacher={teacher}", f"--output_dir={root}/filtered", "--confidence_threshold=1.0"],
            "no image reached --confidence_threshold=",
            ("--confidence_threshold=1.0 (", f"{root}/filtered holds no records, only its stats.json"),
        ),
        Case(
            "student smaller than its teacher",
            [*student, f"--teacher={teacher}", "--width=0.1"],
            "the student is smaller than its teacher",
            ("(width 0.1 < 0.25); pass --allow_smaller_student",),
            writes_nothing=True,
        ),
        Case(
            "unknown model name",
            [*train, "--dataset=digits", "--model=efficientnet-b9"],
            "unknown model 'efficientnet-b9'; valid names: efficientnet-b0, efficientnet-b1",
            writes_nothing=True,
        ),
        Case(
            "output directory that cannot be written (training)",
            ["teacher.train", f"--model_dir={root}/a_file/run", *TRAIN_FLAGS, "--dataset=digits"],
            "cannot be written",
            (f"--model_dir '{root}/a_file/run'",),
        ),
        Case(
            "output directory that cannot be written (labeling)",
            [*label, f"--teacher={teacher}", f"--output_dir={root}/a_file/pseudo"],
            "cannot be written",
            (f"the parent of --output_dir '{root}/a_file'",),
        ),
        Case(
            "output directory that cannot be written (iteration)",
            ["pipelines.iterate", "--round=0", f"--work_dir={root}/a_file/work"],
            "cannot be written",
            (f"--work_dir '{root}/a_file/work'",),
        ),
        Case(
            "model file holding a Lambda layer (evaluation)",
            ["teacher.evaluate", f"--model={root}/lambda", "--dataset=digits"],
            "cannot be loaded in safe mode: Requested the deserialization of a `Lambda` layer",
        ),
        Case(
            "model file holding a Lambda layer (labeling)",
            [*label, f"--teacher={root}/lambda", f"--output_dir={RUN}"],
            "cannot be loaded in safe mode: Requested the deserialization of a `Lambda` layer",
            writes_nothing=True,
        ),
        Case(
            "corrupt rounds.json",
            ["pipelines.iterate", "--round=0", f"--work_dir={root}/corrupt_run"],
            "rounds.json is not valid JSON",
            (f"{root}/corrupt_run/rounds.json",),
        ),
    ]


@pytest.fixture(scope="module")
def results(inputs, teacher):
    """Runs every case's process, two at a time (each is mostly TensorFlow's import)."""
    table = cases(inputs, teacher)
    run_dirs = [inputs / "out" / f"case{index}" for index in range(len(table))]
    with ThreadPoolExecutor(max_workers=2) as pool:
        finished = list(pool.map(lambda case, run_dir: run(case.resolved(run_dir)), table, run_dirs))
    return {case.name: (case, result, run_dir) for case, result, run_dir in zip(table, finished, run_dirs, strict=True)}


CASE_NAMES = [case.name for case in cases(ROOT, "teacher")]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_a_one_line_error(results, name):
    case, result, run_dir = results[name]
    assert_user_error(result, case.message, *case.also)
    if case.writes_nothing:
        assert not run_dir.exists()


def test_threshold_filtering_everything_still_writes_its_stats(results, inputs):
    output_dir = inputs / "filtered"
    stats = json.loads((output_dir / "stats.json").read_text())
    assert stats["num_images"] == 947 and stats["num_kept"] == 0 and stats["num_records"] == 0
    assert not [
        record for path in output_dir.glob("pseudo-*.tfrecord") for record in tf.data.TFRecordDataset(str(path))
    ]


def test_corrupt_manifest_is_left_as_it_was(results, inputs):
    assert (inputs / "corrupt_run" / "rounds.json").read_text() == '{"steps": {"round0/teacher": {"status": "do'
    assert sorted(path.name for path in (inputs / "corrupt_run").iterdir()) == ["rounds.json"]


def test_training_skips_undecodable_images_and_reads_gray_cmyk_and_alpha(inputs, tmp_path):
    folder = [f"--dataset=folder:{inputs}/formats", "--train_split=", "--eval_split="]
    result = run(cli("teacher.train", f"--model_dir={tmp_path}", *TRAIN_FLAGS, *folder))
    assert result.returncode == 0, result.stderr[-4000:]
    skipped = sorted(set(re.findall(r'skipped undecodable image: "([^"]+)"', result.stderr)))
    assert skipped == [f"{inputs}/formats/a/truncated.jpg", f"{inputs}/formats/b/garbage.jpg"]
    metadata = json.loads((tmp_path / "export" / "model.json").read_text())
    assert metadata["class_names"] == ["a", "b"] and metadata["metrics"]["num_examples"] == 8


def test_labeling_records_undecodable_images_as_failures(inputs, teacher, tmp_path):
    command = ["pseudolabel.run", f"--input=folder:{inputs}/formats", f"--teacher={teacher}"]
    result = run(cli(*command, f"--output_dir={tmp_path}/pseudo", "--confidence_threshold=0", "--images_per_class=0"))
    assert result.returncode == 0, result.stderr[-4000:]
    failures = [json.loads(line) for line in (tmp_path / "pseudo" / "failures.jsonl").read_text().splitlines()]
    assert sorted(failure["id"] for failure in failures) == [
        f"{inputs}/formats/a/truncated.jpg",
        f"{inputs}/formats/b/garbage.jpg",
    ]
    stats = json.loads((tmp_path / "pseudo" / "stats.json").read_text())
    assert (stats["num_images"], stats["num_failures"], stats["num_records"]) == (8, 2, 8)


def readme_table() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Bad input → behaviour", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and not set(cells[0]) <= {"-", " "}:
            rows[cells[0]] = " | ".join(cells[1:])
    return rows


def test_readme_table_documents_every_case():
    rows = readme_table()
    for case in cases(ROOT, "teacher"):
        assert case.name in rows, f"README 'Bad input → behaviour' lacks a row for {case.name!r}"
        assert case.message.replace("|", "\\|") in rows[case.name], (case.name, rows[case.name])
    for name in ("corrupt or truncated JPEG", "grayscale, CMYK or PNG-with-alpha image", "killed run (SIGKILL)"):
        assert name in rows, name
