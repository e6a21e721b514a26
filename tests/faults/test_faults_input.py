"""Bad input, through the real CLIs: a one-line error naming the problem and
exit status 2 with nothing written, or the documented handling.

The "Bad input → behaviour" table of docs/errors.md is checked against CASES,
so the documentation stays what these processes actually do.

A process start is mostly Python and TensorFlow importing, so each CLI's cases
share one process (tests/cli_driver.py runs the module's own entry block once
per command line, each with its own exit status and stderr). Every CLI also
runs as its own `python -m` process elsewhere in the suite: teacher.train in
tests/conftest.py (the session teacher) and test_faults_workers.py,
pipelines.iterate (through run_iteration.sh), student.train and pseudolabel.run
in test_faults_iteration.py, teacher.evaluate and teacher.train's bad-flag
error in test_training.py, pseudolabel.run's bad input in test_pseudolabel.py.
"""

import collections
import contextlib
import dataclasses
import io
import json
import os
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from cli_driver import run_in_one_process
from faultlib import ENV, ROOT, TINY_FLAGS, assert_user_error, free_ports
from PIL import Image

from efficientnet.data import records
from efficientnet.model import export, scaling
from efficientnet.model.network import build_from_config
from efficientnet.util import runlock
from pseudolabel import commit

RUN = "{run}"  # each case's own output directory
TEACHER = "{teacher}"  # the session teacher's export: the cases without it start while it trains (see `results`)
(UNANSWERED_PORT,) = free_ports(1)  # nothing listens there
HOLDER = f"pid {os.getpid()} on {socket.gethostname()}"  # this process holds the busy directories' locks
TRAIN_FLAGS = [*TINY_FLAGS, "--batch_size=4", "--train_steps=3", "--warmup_epochs=0", "--log_every_steps=1"]


@dataclasses.dataclass
class Case:
    """`name` is the docs/errors.md row; `message` must be in the error line and in that row."""

    name: str
    command: list[str]  # the module, then its flags
    message: str
    also: tuple[str, ...] = ()  # run-specific parts of the error line (paths)
    writes_nothing: bool = False  # the case's own output directory, RUN, must not appear


def write_image(path, mode: str, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, "PNG" if path.suffix == ".png" else "JPEG")


def write_inputs(root: Path) -> Path:
    """Every bad input on disk, built without training."""
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
    (root / "undecodable_flat").mkdir()
    (root / "undecodable_flat" / "x.png").write_bytes(b"not a png")
    for seed in range(3):  # a camera dump: images directly in the folder, no class subfolders
        write_image(root / "flat" / f"img{seed}.jpg", "RGB", 40 + seed)
    (root / "empty.tfrecord").write_bytes(b"")
    with tf.io.TFRecordWriter(str(root / "pseudo.tfrecord")) as writer:  # one valid pseudo-label record
        writer.write(
            records.encode_pseudo_label(tf.io.encode_png(np.zeros((8, 8, 3), np.uint8)).numpy(), np.full(10, 0.1))
        )
    (root / "a_file").write_text("a file where a directory is needed")
    # The lock of a run that was killed: its process no longer exists.
    gone = subprocess.Popen(["true"])
    gone.wait()
    (root / "out" / "stale-lock").mkdir(parents=True)
    (root / "out" / "stale-lock" / runlock.LOCK_FILE).write_text(
        json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": time.time(), "heartbeat": time.time()})
    )
    digits_config = json.loads((ROOT / "configs" / "digits.json").read_text())
    digits_config["rounds"] = [{}, {"randaugment_magnitud": 7}]
    (root / "typo.json").write_text(json.dumps(digits_config))
    digits_config["rounds"] = [{}, {"randaugment_magnitude": -1}]
    (root / "round2.json").write_text(json.dumps(digits_config))
    (root / "corrupt_run").mkdir()
    (root / "corrupt_run" / "rounds.json").write_text('{"steps": {"round0/teacher": {"status": "do')

    tiny = dict(width=0.25, depth=0.25, resolution=32, small_images=True)
    two_classes = scaling.model_config("efficientnet-b0", 2, **tiny)
    model = build_from_config(two_classes)
    export.save_export(str(root / "two_classes"), model, two_classes, class_names=["a", "b"], extra={})
    # A digits export whose model.keras is then replaced by one holding a Lambda layer.
    ten_classes = scaling.model_config("efficientnet-b0", 10, **tiny)
    digits = [str(digit) for digit in range(10)]
    export.save_export(str(root / "lambda"), build_from_config(ten_classes), ten_classes, class_names=digits, extra={})
    image = keras.Input((32, 32, 3))
    hidden = keras.layers.GlobalAveragePooling2D()(keras.layers.Lambda(lambda x: x / 255.0)(image))
    keras.Model(image, keras.layers.Dense(10, name="logits")(hidden)).save(root / "lambda" / "model.keras")
    return root


def cases(root) -> list[Case]:
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
            "yields no image: looked for .jpg/.jpeg/.png/.bmp/.gif files in the class subfolders of",
            (f"'folder:{root}/no_images'", "; 0 file(s) skipped as undecodable"),
            writes_nothing=True,
        ),
        Case(
            "dataset whose every image is undecodable",
            [*train, f"--dataset=folder:{root}/undecodable"],
            "yields no image: looked for",
            (f"'folder:{root}/undecodable'", "; 1 file(s) skipped as undecodable"),
            writes_nothing=True,
        ),
        Case(
            "unlabeled pattern that matches no image (labeling)",
            [*label[:1], f"--input=images:{root}/nothing/**/*.jpg", f"--teacher={root}/lambda", f"--output_dir={RUN}"],
            "yields no image: looked for files matching",
            (f"'{root}/nothing/**/*.jpg' that end in .jpg", "; 0 file(s) skipped as undecodable"),
            writes_nothing=True,
        ),
        Case(
            "unlabeled folder whose every image is undecodable (labeling)",
            [*label[:1], f"--input=folder:{root}/undecodable_flat", f"--teacher={root}/lambda", f"--output_dir={RUN}"],
            "yields no image: looked for",
            (f"'folder:{root}/undecodable_flat'", "; 1 file(s) skipped as undecodable"),
            writes_nothing=True,
        ),
        Case(
            "split given to a source without splits",
            [*train, f"--dataset=folder:{root}/formats", "--train_split=train"],
            "has no splits (got split 'train'); point the source at the files",
            writes_nothing=True,
        ),
        Case(
            "flat folder (no class subfolders) as labeled data",
            [*train, f"--dataset=folder:{root}/flat"],
            "has no labels (images without class subfolders); labeled data needs one subfolder per class",
            writes_nothing=True,
        ),
        Case(
            "teacher with a different number of classes than the dataset",
            [*student, f"--teacher={root}/two_classes"],
            "predicts 2 classes but --dataset 'digits' has 10",
            writes_nothing=True,
        ),
        Case(
            "confidence threshold that filters out every image",
            [*label, f"--teacher={TEACHER}", f"--output_dir={root}/filtered", "--confidence_threshold=1.0"],
            "no image reached --confidence_threshold=",
            ("--confidence_threshold=1.0 (", f"{root}/filtered holds no records, only its stats.json"),
        ),
        Case(
            "student smaller than its teacher",
            [*student, f"--teacher={TEACHER}", "--width=0.1"],
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
            "multi-worker strategy without TF_CONFIG",
            [*train, "--dataset=digits", "--strategy=multiworker"],
            "--strategy=multiworker needs TF_CONFIG: set it in every worker's environment to the cluster and that "
            "worker's task",
            writes_nothing=True,
        ),
        Case(
            "misspelt flag (training)",
            [*train, "--dataset=digits", "--batch_sise=8"],
            "--batch_sise: unknown flag; did you mean --batch_size?",
            writes_nothing=True,
        ),
        Case(
            "misspelt flag (labeling)",
            [*label, f"--teacher={root}/never_loaded", f"--output_dir={RUN}/pseudo", "--confidence_treshold=0.9"],
            "--confidence_treshold: unknown flag; did you mean --confidence_threshold?",
            writes_nothing=True,
        ),
        Case(
            "misspelt Beam option (labeling)",
            [*label, f"--teacher={root}/never_loaded", f"--output_dir={RUN}/pseudo", "--runer=DirectRunner"],
            "--runer: unknown flag; did you mean --runner?",
            writes_nothing=True,
        ),
        Case(
            "tf.data service address where nothing answers",
            [*train, "--dataset=digits", f"--data_service=grpc://localhost:{UNANSWERED_PORT}"],
            "nothing answers there (Connection refused); start a dispatcher with "
            "`python -m efficientnet.data.service dispatcher --port=",
            also=(f"--data_service grpc://localhost:{UNANSWERED_PORT}: ",),
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
            [*label, f"--teacher={TEACHER}", f"--output_dir={root}/a_file/pseudo"],
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
            "flag value of the wrong type",
            [*train, "--batch_size=abc"],
            "flag --batch_size=abc: invalid literal for int() with base 10: 'abc'",
            writes_nothing=True,
        ),
        Case(
            "unknown key in a round config",
            ["pipelines.iterate", "--round=2", f"--config={root}/typo.json", f"--work_dir={RUN}"],
            "rounds[1].randaugment_magnitud: unknown setting; did you mean randaugment_magnitude?",
            (f"{root}/typo.json",),
            writes_nothing=True,
        ),
        Case(
            "bad value in a later round's config",
            ["pipelines.iterate", "--round=2", f"--config={root}/round2.json", f"--work_dir={RUN}"],
            "round 2 student: --randaugment_magnitude must be >= 0, got -1",
            (f"{root}/round2.json",),
            writes_nothing=True,
        ),
        Case(
            "second run on one model_dir",
            ["teacher.train", f"--model_dir={root}/busy/model", *TRAIN_FLAGS],
            "is in use by another run",
            (f"--model_dir {root}/busy/model", HOLDER),
        ),
        Case(
            "second run on one output_dir (labeling)",
            [*label, f"--teacher={root}/two_classes", f"--output_dir={root}/busy/pseudo"],
            "is in use by another run",
            (f"--output_dir {root}/busy/pseudo", HOLDER),
        ),
        Case(
            "second run on one work_dir (iteration)",
            ["pipelines.iterate", "--round=0", f"--work_dir={root}/busy/work"],
            "is in use by another run",
            (f"--work_dir {root}/busy/work", HOLDER),
        ),
        Case(
            "corrupt rounds.json",
            ["pipelines.iterate", "--round=0", f"--work_dir={root}/corrupt_run"],
            "rounds.json is not valid JSON",
            (f"{root}/corrupt_run/rounds.json",),
        ),
    ]


def format_runs(root) -> dict[str, list[str]]:
    """Runs that succeed on the folder of odd formats (gray, CMYK, alpha, truncated, garbage)."""
    return {
        "training": [
            "teacher.train",
            f"--model_dir={root}/out/formats-training",
            *TRAIN_FLAGS,
            f"--dataset=folder:{root}/formats",
        ],
        "labeling": [
            "pseudolabel.run",
            f"--input=folder:{root}/formats",
            f"--teacher={TEACHER}",
            f"--output_dir={root}/out/formats-labeling/pseudo",
            "--confidence_threshold=0",
            "--images_per_class=0",
        ],
        "stale lock": ["teacher.train", f"--model_dir={root}/out/stale-lock", *TRAIN_FLAGS],
        "flat labeling": [
            "pseudolabel.run",
            f"--input=folder:{root}/flat",
            f"--teacher={TEACHER}",
            f"--output_dir={root}/out/flat-labeling/pseudo",
            "--confidence_threshold=0",
            "--images_per_class=0",
        ],
    }


@dataclasses.dataclass
class Job:
    """One command line: a case of the table or a format run."""

    key: str
    command: list[str]
    run_dir: Path | None = None

    def arguments(self, teacher: str | None) -> list[str]:
        run_dir = str(self.run_dir)
        return [argument.replace(RUN, run_dir).replace(TEACHER, str(teacher)) for argument in self.command[1:]]


def run_batch(jobs: list[Job], teacher: str | None, work_dir: Path) -> dict[str, object]:
    """A CLI's jobs, in one process."""
    module = jobs[0].command[0]
    results = run_in_one_process(module, [job.arguments(teacher) for job in jobs], work_dir, cwd=ROOT, env=ENV)
    return {job.key: result for job, result in zip(jobs, results, strict=True)}


def bad_input_scenario(work_dir: Path, teacher) -> dict:
    """Every case's and format run's result (a CompletedProcess, keyed by name), and the inputs.

    Processes run two at a time, longest first; those that need no teacher
    start at once, while the session teacher trains. The scenario only drives
    processes, so it runs in the background from the start of the session
    (tests/conftest.py).
    """
    inputs = write_inputs(work_dir)
    table = cases(inputs)
    jobs = [Job(case.name, case.command, run_dir(inputs, case.name)) for case in table]
    jobs += [Job(f"formats {name}", command) for name, command in format_runs(inputs).items()]
    shared = collections.defaultdict(list)
    for job in jobs:
        shared[job.command[0]].append(job)
    batches = sorted(shared.values(), key=len, reverse=True)
    without_teacher = [batch for batch in batches if not any(TEACHER in a for job in batch for a in job.command)]
    outcome = {}
    # The "second run" cases meet these, held by this process as a run would hold them.
    busy = [("model", runlock.lock_path), ("pseudo", commit.lock_path), ("work", runlock.lock_path)]
    with contextlib.ExitStack() as locks, ThreadPoolExecutor(max_workers=2) as pool:
        for name, lock_path in busy:
            directory = str(inputs / "busy" / name)
            locks.enter_context(runlock.hold(directory, "--test", path=lock_path(directory)))
        futures = [pool.submit(run_batch, batch, None, inputs / "driver") for batch in without_teacher]
        teacher_export = teacher()
        with_teacher = [batch for batch in batches if batch not in without_teacher]
        futures += [pool.submit(run_batch, batch, teacher_export, inputs / "driver") for batch in with_teacher]
        for future in futures:
            outcome.update(future.result())
    return {"inputs": inputs, "results": outcome}


BACKGROUND_SCENARIO = bad_input_scenario
BACKGROUND_PROCESSES = 2  # batches run two at a time


@pytest.fixture
def inputs(background_outcome) -> Path:
    return background_outcome["inputs"]


@pytest.fixture
def results(background_outcome) -> dict:
    return background_outcome["results"]


CASE_NAMES = [case.name for case in cases(ROOT)]


def run_dir(root, name: str) -> Path:
    """The case's own output directory, RUN."""
    return root / "out" / f"case{CASE_NAMES.index(name)}"


@pytest.mark.slow  # real CLI processes
@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_a_one_line_error(inputs, results, name):
    case = cases(inputs)[CASE_NAMES.index(name)]
    assert_user_error(results[name], case.message, *case.also)
    if case.writes_nothing:
        assert not run_dir(inputs, name).exists()


@pytest.mark.slow  # real CLI processes
def test_threshold_filtering_everything_still_writes_its_stats(results, inputs):
    output_dir = inputs / "filtered"
    stats = json.loads((output_dir / "stats.json").read_text())
    assert stats["num_images"] == 947 and stats["num_kept"] == 0 and stats["num_records"] == 0
    assert not [
        record for path in output_dir.glob("pseudo-*.tfrecord") for record in tf.data.TFRecordDataset(str(path))
    ]


@pytest.mark.slow  # real CLI processes
def test_corrupt_manifest_is_left_as_it_was(results, inputs):
    assert (inputs / "corrupt_run" / "rounds.json").read_text() == '{"steps": {"round0/teacher": {"status": "do'
    assert sorted(path.name for path in (inputs / "corrupt_run").iterdir()) == ["rounds.json"]


@pytest.mark.slow  # real CLI processes
def test_training_skips_undecodable_images_and_reads_gray_cmyk_and_alpha(inputs, results):
    result = results["formats training"]
    assert result.returncode == 0, result.stderr[-4000:]
    skipped = sorted(set(re.findall(r'skipped undecodable image: "([^"]+)"', result.stderr)))
    assert skipped == [f"{inputs}/formats/a/truncated.jpg", f"{inputs}/formats/b/garbage.jpg"]
    metadata = json.loads((inputs / "out" / "formats-training" / "export" / "model.json").read_text())
    assert metadata["class_names"] == ["a", "b"] and metadata["metrics"]["num_examples"] == 8


@pytest.mark.slow  # real CLI processes
def test_labeling_records_undecodable_images_as_failures(inputs, results):
    result = results["formats labeling"]
    assert result.returncode == 0, result.stderr[-4000:]
    output_dir = inputs / "out" / "formats-labeling" / "pseudo"
    failures = [json.loads(line) for line in (output_dir / "failures.jsonl").read_text().splitlines()]
    assert sorted(failure["id"] for failure in failures) == [
        f"{inputs}/formats/a/truncated.jpg",
        f"{inputs}/formats/b/garbage.jpg",
    ]
    stats = json.loads((output_dir / "stats.json").read_text())
    assert (stats["num_images"], stats["num_failures"], stats["num_records"]) == (8, 2, 8)


@pytest.mark.slow  # real CLI processes
def test_labeling_reads_a_flat_folder_as_an_unlabeled_corpus(inputs, results):
    result = results["formats flat labeling"]
    assert result.returncode == 0, result.stderr[-4000:]
    stats = json.loads((inputs / "out" / "flat-labeling" / "pseudo" / "stats.json").read_text())
    assert (stats["num_images"], stats["num_failures"], stats["num_records"]) == (3, 0, 3)
    assert "labeled 3 images (0 undecodable)" in result.stdout


@pytest.mark.slow  # real CLI processes
def test_the_lock_of_a_killed_run_is_taken_over(inputs, results):
    result = results["formats stale lock"]
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"took over {inputs}/out/stale-lock/run.lock from a run that is gone" in result.stderr
    assert not (inputs / "out" / "stale-lock" / "run.lock").exists()


def errors_table() -> dict[str, str]:
    """The rows of docs/errors.md's "Bad input → behaviour" table: first cell → the others."""
    text = (ROOT / "docs" / "errors.md").read_text()
    section = text.split("## Bad input → behaviour", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and not set(cells[0]) <= {"-", " "}:
            rows[cells[0]] = " | ".join(cells[1:])
    return rows


def test_errors_table_documents_every_case():
    rows = errors_table()
    for case in cases(ROOT):
        assert case.name in rows, f"docs/errors.md 'Bad input → behaviour' lacks a row for {case.name!r}"
        assert case.message.replace("|", "\\|") in rows[case.name], (case.name, rows[case.name])
    for name in (
        "corrupt or truncated JPEG",
        "grayscale, CMYK or PNG-with-alpha image",
        "unlabeled images directly in a folder (labeling)",
        "killed run (SIGKILL)",
        "a worker of a multi-worker run dies",  # tests/faults/test_faults_workers.py
        "fewer files than workers (`--input_sharding=files`)",  # tests/test_distributed.py
        "truncated newest checkpoint (a disk filled, a copy cut short)",  # test_faults_signals.py
        "lock left by a killed run",
        "SIGTERM (preemption, `timeout`, a scheduler; Ctrl-C likewise)",  # test_faults_signals.py
        "disk full",  # test_faults_disk.py
        "label curve rerun with another config or other settings into its work directory",  # test_label_curve.py
        "label curve over data other than digits",  # test_label_curve.py
        "SIGTERM to the label curve",  # stopping.run_children: test_run_safety.py
    ):
        assert name in rows, name
