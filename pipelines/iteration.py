"""Noisy Student iterations: teacher → label → student → label → student …

The library behind `python -m pipelines.iterate` (its CLI, pipelines/iterate.py)
and `pipelines.label_curve`, which runs it over labels per class and seeds.

The data comes from the config's `labeled`, `unlabeled`, `validation` and
`test` entries, or from the flags of the same names (which win). Without a
validation set, a seeded, stratified 10% of the labeled data is held out as
one (pipelines/holdout.py) and the split is recorded in `rounds.json`; without
a test set, the report gives validation accuracy only and says so. Every
dataset is opened and read up to its first image before any model trains, so
a wrong path fails in seconds, not after the teacher; likewise every step's
settings are validated as its CLI will validate them (`check_steps`), so a bad
value in round 2's section is refused before round 0 starts.

Round 0 trains the teacher; round k labels the unlabeled data with round
k−1's model and trains student k (docs/noisy_student.md#the-procedure, step 5). Every step is the
project's own CLI run as a subprocess (exactly what a user would type; the
command is recorded), and `rounds.json` (pipelines/manifest.py) records each step's command, inputs,
outputs, settings and metrics. A step already recorded as done, with its output
present, is skipped, so an interrupted run resumes where it stopped; steps that
were cut off resume from their own checkpoints. `--round 2` on a work_dir that
holds round 1 runs only round 2. Finally `report.md`/`report.png` summarise all
rounds, and the console ends with their headline (`report.console_summary`):
accuracy per model, the three effects, mCE and the report's path.

With `--oracle` and a config that names the unlabeled data with its true labels
(`"oracle": {"dataset": ..., "split": ...}`, as configs/digits.json does), one
more run trains the round-1 student on those labels instead of pseudo-labels;
the report shows it as the bound and states the share of the teacher→oracle
gap each student closed.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from typing import Any

from absl import flags

from efficientnet.data.datasets import open_source
from efficientnet.data.source import EVAL, TRAIN
from efficientnet.model import export
from efficientnet.train.config import TrainConfig, student_config
from efficientnet.util import cli, fileio, runlock, stopping
from efficientnet.util.settings import check_values, unknown_setting
from pipelines import holdout, report
from pipelines.manifest import DATA_ROLES, ORACLE, PSEUDOLABEL, STUDENT, STUDENT_NO_NOISE, TEACHER, Manifest, Step
from pseudolabel import launch, outputs
from pseudolabel.pipeline import LabelingConfig

STEP_CONFIG_DIR = "configs"  # each training step's --config file, inside the work directory
HOLDOUT_DIR = "labeled-holdout"  # the labeled data split into train/validation, when no validation is given
HOLDOUT_SEED = 0  # the same held-out images whatever the training seed, so repeats compare on one set

REQUIRED_ROLES = ("labeled", "unlabeled")
# Every key an iteration config may hold (configs/*.json); any other is refused, naming its nearest.
CONFIG_KEYS = (
    "description",
    *DATA_ROLES,
    "oracle",
    "train",
    "teacher",
    "student",
    "rounds",
    "pseudolabel",
    "ablation_round",
    "robustness",
)
DATA_KEYS = ("dataset", "split")  # of each data role's entry and of `oracle`
TRAINING_SECTIONS = ("train", "teacher", "student")  # and each of `rounds`
LABELING_SETTINGS = tuple(field.name for field in dataclasses.fields(LabelingConfig))
# Paths a step's settings name that only an earlier step creates: what `check_steps` validates with.
NOT_YET_WRITTEN = "(written by an earlier step)"
DIGITS_CONFIG = "configs/digits.json"
OWN_DATA_CONFIG = "configs/own_data_cpu.json"


def load_config(
    path: str, dataset: str | None = None, seed: int | None = None, data: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """Reads and checks an iteration config, naming the file and key on error.

    `dataset` replaces the dataset of every role (keeping its split); `data`
    maps roles to dataset specs read whole (no split), replacing the config's.
    """
    config = fileio.read_json(path)
    unknown = [key for key in config if key not in CONFIG_KEYS]
    if unknown:
        raise ValueError(f"{path}: {unknown_setting(unknown[0], CONFIG_KEYS)}")
    missing = [key for key in ("train", "teacher", "student", "rounds", "pseudolabel") if key not in config]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {missing}")
    try:
        check_sections(config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if seed is not None:
        config["train"] = config["train"] | {"seed": seed}
    for role in DATA_ROLES:
        config[role] = config.get(role) or None
        if dataset and config[role]:
            config[role] = config[role] | {"dataset": dataset}
        if (data or {}).get(role):
            config[role] = {"dataset": data[role]}
    if dataset or any((data or {}).values()):
        config["oracle"] = None  # the true labels it names belong to the config's own data
    for role in REQUIRED_ROLES:
        if not config[role]:
            raise ValueError(f"no {role} data: {path} names none; pass --{role}=SPEC")
    return config


def check_sections(config: dict[str, Any]) -> None:
    """Raises ValueError naming the path of the first key in a section that is no setting
    (`rounds[1].randaugment_magnitud: unknown setting; did you mean randaugment_magnitude?`)
    or whose value has the wrong type.

    The `pseudolabel` section holds `LabelingConfig` settings and Beam's
    pipeline options (runner, project…), as `pseudolabel.run`'s flags do; a
    key that is neither is refused here instead of failing that round's
    labeling step, after hours of training.
    """
    entries = {role: config.get(role) for role in (*DATA_ROLES, "oracle")}
    for role, entry in entries.items():
        for key in _section(role, entry or {}):
            if key not in DATA_KEYS:
                raise ValueError(unknown_setting(f"{role}.{key}", DATA_KEYS))
    if not isinstance(config["rounds"], list):
        raise ValueError(f"rounds: expected a list of sections, got {config['rounds']!r}")
    sections = {name: config[name] for name in TRAINING_SECTIONS}
    sections |= {f"rounds[{i}]": settings for i, settings in enumerate(config["rounds"])}
    for where, settings in sections.items():
        check_values(TrainConfig, _section(where, settings), where)
    labeling, beam = split_labeling_settings(_section("pseudolabel", config["pseudolabel"]))
    check_values(LabelingConfig, labeling, "pseudolabel")
    beam_options = launch.beam_option_names()
    unknown = [key for key in beam if key not in beam_options]
    if unknown:
        raise ValueError(unknown_setting(f"pseudolabel.{unknown[0]}", [*LABELING_SETTINGS, *beam_options]))
    launch.unknown_to_beam(as_flags(beam))  # raises on a value Beam refuses


def _section(where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object of settings, got {value!r}")
    return value


def split_labeling_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(`LabelingConfig` settings, the rest: Beam's pipeline options)."""
    labeling = {key: value for key, value in settings.items() if key in LABELING_SETTINGS}
    return labeling, {key: value for key, value in settings.items() if key not in labeling}


def as_flags(settings: dict[str, Any]) -> list[str]:
    """`--key=value` for each setting that is set, as a step's CLI is given them."""
    return [f"--{key}={value}" for key, value in settings.items() if value is not None]


class StepFailed(cli.Stopped):
    """A step's CLI exited non-zero; its own error message is above. One line, exit 1, as any stop."""


def run_step(manifest: Manifest, step: Step, command: list[str], settings: dict, marker: str, outputs: dict) -> None:
    """Runs one step's CLI unless the manifest says it is done."""
    if manifest.done(step, settings, marker):
        print(f"[{step.name}] done already, skipping", file=sys.stderr, flush=True)
        return
    print(f"[{step.name}] running: {' '.join(command)}", file=sys.stderr, flush=True)
    start = time.time()
    manifest.record(step, {"status": "running", "command": command, "settings": settings, "outputs": outputs})
    returncode, stop = run_child(command)
    if stop.requested:
        raise cli.Stopped(f"stopped by {stop.name} during step {step.name}; rerun the same command to resume")
    if returncode != 0:
        raise StepFailed(
            f"step {step.name} failed with exit code {returncode}: {' '.join(command)}; "
            "rerun the same command to resume"
        )
    seconds = round(time.time() - start, 1)
    manifest.record(
        step, {"status": "done", "command": command, "settings": settings, "outputs": outputs, "seconds": seconds}
    )
    print(f"[{step.name}] finished in {seconds:.0f}s", file=sys.stderr, flush=True)


def run_child(command: list[str]) -> tuple[int, stopping.StopRequest]:
    """Runs `command` to its end, passing SIGTERM on to it; returns its exit code and the stop request."""
    returncodes: list[int] = []
    stop = stopping.run_children([lambda: subprocess.Popen(command)], on_exit=lambda _, code: returncodes.append(code))
    return returncodes[0], stop


def train_settings(config: dict[str, Any], step: Step, model_dir: str) -> dict[str, Any]:
    """The settings the iteration config gives the teacher (round 0) or student k.

    Only what the config sets, plus the step's data and directory: every
    setting it leaves out is the CLI's own default (the student's noise
    defaults included), exactly as when the CLI is run by hand.
    """
    section = TEACHER if step.role == TEACHER else STUDENT
    settings = dict(config["train"]) | config[section]
    if section == STUDENT:
        settings |= config["rounds"][step.round - 1]
    return settings | {
        "model_dir": model_dir,
        "dataset": config["labeled"]["dataset"],
        "train_split": config["labeled"].get("split"),
        "eval_dataset": config["validation"]["dataset"],
        "eval_split": config["validation"].get("split"),
    }


def check_data(config: dict[str, Any]) -> None:
    """Opens every role's dataset and reads it up to its first image.

    Labeled roles must have labels. Raises the reading error naming the spec
    before any step runs.
    """
    purposes = {"labeled": TRAIN, "validation": EVAL, "test": EVAL}
    for role in DATA_ROLES:
        if not config[role]:
            continue
        source = open_source(config[role]["dataset"], data_dir=config["train"].get("data_dir"))
        split = config[role].get("split")
        split = source.resolve_split(split, purposes[role]) if role in purposes else split
        if role in purposes and not source.labeled:
            raise ValueError(
                f"the {role} data {source.spec!r} has no labels (no class subfolders); "
                "only the unlabeled data may be a flat folder or an images: pattern"
            )
        source.require_images(split)


def check_oracle_data(config: dict[str, Any]) -> None:
    """The oracle's data must carry labels: it is the unlabeled data with its true ones."""
    truth = config["oracle"]
    source = open_source(truth["dataset"], data_dir=config["train"].get("data_dir"))
    split = truth.get("split")
    first = next(iter(source.examples(split).take(1)), None)
    if first is None:
        raise source.empty_error(split)
    if int(first["label"]) < 0:
        raise ValueError(
            f"the oracle data {source.spec!r} split {split!r} has no labels; "
            "it must be the unlabeled data with its true labels"
        )


def hold_out_validation(config: dict[str, Any], manifest: Manifest, work_dir: str) -> dict[str, Any]:
    """Without validation data, the config with a held-out part of the labeled data as validation."""
    if config["validation"]:
        return config
    labeled = config["labeled"]
    summary = holdout.hold_out(
        labeled["dataset"],
        labeled.get("split"),
        os.path.join(work_dir, HOLDOUT_DIR),
        fraction=holdout.HOLDOUT_FRACTION,
        seed=HOLDOUT_SEED,
        data_dir=config["train"].get("data_dir"),
    )
    manifest.record_holdout(summary)
    print(
        f"[data] held out {summary['num_validation']} of {summary['num_validation'] + summary['num_train']} "
        f"labeled images as validation ({summary['fraction']:.0%} of each class, seed {summary['seed']}); "
        f"ids in {summary['validation_ids']}",
        file=sys.stderr,
        flush=True,
    )
    return config | {"labeled": {"dataset": summary["train"]}, "validation": {"dataset": summary["validation"]}}


def resolved_settings(settings: dict[str, Any], step: Step) -> TrainConfig:
    """What the step's CLI makes of `settings` (for checking a config before a run)."""
    if step.role == TEACHER:
        return TrainConfig.from_dict(settings)
    config = student_config(settings)
    return config.without_noise() if step.role == STUDENT_NO_NOISE else config


def label_settings(config: dict[str, Any], teacher: str) -> dict[str, Any]:
    """A labeling step's settings: the unlabeled data, the teacher's export and the config's `pseudolabel` section."""
    unlabeled = config["unlabeled"]
    return {"input": unlabeled["dataset"], "split": unlabeled.get("split"), "teacher": teacher} | config["pseudolabel"]


def students_of_round(config: dict[str, Any], k: int) -> list[Step]:
    """Student k, and its no-noise ablation in the config's `ablation_round`."""
    return [Step(k, STUDENT)] + ([Step(k, STUDENT_NO_NOISE)] if config.get("ablation_round") == k else [])


def oracle_settings(config: dict[str, Any]) -> dict[str, Any]:
    """What the oracle's run sets over the round-1 student's: the unlabeled data with its true labels."""
    truth = config["oracle"]
    return {"unlabeled_dataset": truth["dataset"], "unlabeled_split": truth.get("split"), "label_type": "hard"}


def check_steps(config: dict[str, Any], last_round: int, oracle: bool, config_path: str) -> None:
    """Validates the settings of every step up to `last_round` as its CLI will, before round 0 trains.

    Raises ValueError naming the file, round, step and setting, e.g.
    `configs/x.json, round 2 student: --randaugment_magnitude must be >= 0, got -1`,
    instead of the step failing after the rounds before it have trained.
    Paths that only earlier steps write (model directories, pseudo-labels,
    exports) are placeholders, and nothing is read or written: data is
    `check_data`'s.
    """
    if not config["validation"]:  # held out of the labeled data later; no check reads a dataset's name
        config = config | {"validation": config["labeled"]}
    planned = [(Step(0, TEACHER), {})]
    for k in range(1, last_round + 1):
        planned.append((Step(k, PSEUDOLABEL), {}))
        planned += [(student, {"unlabeled_dataset": NOT_YET_WRITTEN}) for student in students_of_round(config, k)]
    if oracle:
        planned.append((Step(1, ORACLE), oracle_settings(config)))
    for step, extra in planned:
        try:
            if step.role == PSEUDOLABEL:
                labeling, _ = split_labeling_settings(label_settings(config, NOT_YET_WRITTEN))
                LabelingConfig(**({"output_dir": NOT_YET_WRITTEN} | labeling)).validate()
            else:
                resolved_settings(train_settings(config, step, NOT_YET_WRITTEN) | extra, step).validate()
        except ValueError as error:
            raise ValueError(f"{config_path}, round {step.round} {step.role}: {error}") from None


def run_iteration(
    work_dir: str,
    last_round: int,
    config_path: str,
    dataset: str | None = None,
    seed: int | None = None,
    data: dict[str, str | None] | None = None,
    oracle: bool = False,
) -> dict[str, Any]:
    config = load_config(config_path, dataset, seed, data)
    if oracle and not (config.get("oracle") and last_round >= 1):
        raise ValueError(
            f"--oracle needs --round >= 1 and an `oracle` entry in {config_path}: the unlabeled data with its "
            'true labels, e.g. {"dataset": "digits", "split": "unlabeled_with_labels"}'
        )
    if last_round < 0:
        raise ValueError(f"--round must be >= 0, got {last_round}")
    if last_round > len(config["rounds"]):
        raise ValueError(f"--round={last_round} but {config_path} defines only {len(config['rounds'])} student rounds")
    check_steps(config, last_round, oracle, config_path)
    fileio.check_writable_dir(work_dir, "--work_dir")
    check_data(config)
    if oracle:
        check_oracle_data(config)
    with runlock.hold(work_dir, "--work_dir"):  # each step locks its own directory too
        return _run_rounds(work_dir, last_round, config, oracle)


def _run_rounds(work_dir: str, last_round: int, config: dict[str, Any], oracle: bool) -> dict[str, Any]:
    """The steps of a checked config, each skipped when `rounds.json` records it as done; then the report."""
    manifest = Manifest(work_dir)
    config = hold_out_validation(config, manifest, work_dir)
    teacher = Step(0, TEACHER)
    _run_training(manifest, teacher, config, work_dir, [])
    model_of_round = {0: teacher.directory(work_dir)}
    for k in range(1, last_round + 1):
        previous_export = export.export_dir(model_of_round[k - 1])
        labeling = Step(k, PSEUDOLABEL)
        pseudo_dir = labeling.directory(work_dir)
        settings = label_settings(config, previous_export)
        command = [sys.executable, "-m", "pseudolabel.run", f"--output_dir={pseudo_dir}", *_console_flags()]
        marker = outputs.stats_path(pseudo_dir)
        run_step(manifest, labeling, command + as_flags(settings), settings, marker, {"output_dir": pseudo_dir})
        for student in students_of_round(config, k):
            extra = {"unlabeled_dataset": outputs.dataset_spec(pseudo_dir)}
            student_flags = [f"--teacher={previous_export}"] + (
                ["--no_noise"] if student.role == STUDENT_NO_NOISE else []
            )
            _run_training(manifest, student, config, work_dir, student_flags, extra)
        model_of_round[k] = Step(k, STUDENT).directory(work_dir)
    if oracle:
        _run_training(manifest, Step(1, ORACLE), config, work_dir, [], oracle_settings(config))
    return report.write_report(work_dir, manifest, config, last_round)


def _run_training(manifest, step: Step, config, work_dir, extra_flags, extra_settings=None) -> None:
    model_dir = step.directory(work_dir)
    settings = train_settings(config, step, model_dir) | (extra_settings or {})
    config_path = os.path.join(work_dir, STEP_CONFIG_DIR, step.name.replace("/", "-") + ".json")
    fileio.write_json(config_path, settings)
    module = "teacher.train" if step.role == TEACHER else "student.train"
    command = [sys.executable, "-m", module, f"--config={config_path}", *extra_flags, *_console_flags()]
    export_dir = export.export_dir(model_dir)
    marker = os.path.join(export_dir, export.METADATA_FILE)
    run_step(manifest, step, command, settings, marker, {"model_dir": model_dir, "export": export_dir})


def _console_flags() -> list[str]:
    """`--verbosity` for the steps when the iteration was given one, so their logs come back too."""
    level = flags.FLAGS["verbosity"].value if "verbosity" in flags.FLAGS else 0
    return [f"--verbosity={level}"] if level else []
