"""Noisy Student iterations: teacher → label → student → label → student …

  python -m pipelines.iterate --round=2 --work_dir=runs/digits --config=configs/digits.json

Round 0 trains the teacher; round k labels the unlabeled data with round
k−1's model and trains student k (docs/noisy_student.md#the-procedure, step 5). Every step is the
project's own CLI run as a subprocess (exactly what a user would type; the
command is recorded), and `rounds.json` records each step's command, inputs,
outputs, settings and metrics. A step already recorded as done, with its output
present, is skipped, so an interrupted run resumes where it stopped; steps that
were cut off resume from their own checkpoints. `--round 2` on a work_dir that
holds round 1 runs only round 2. Finally `report.md`/`report.png` summarise all
rounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import tensorflow as tf
from absl import flags, logging

from efficientnet.train.config import TrainConfig
from efficientnet.util import cli, fileio
from pipelines import report

MANIFEST = "rounds.json"
ROLES = ("labeled", "unlabeled", "validation", "test")

_ROUND = flags.DEFINE_integer("round", 2, "Last round to run (0 = teacher only).")
_WORK_DIR = flags.DEFINE_string("work_dir", "runs/digits", "Directory (local or gs://) for every round's outputs.")
_CONFIG = flags.DEFINE_string("config", "configs/digits.json", "Per-round settings (JSON).")
_DATASET = flags.DEFINE_string("dataset", None, "Use this dataset spec for every role of the config.")
_SEED = flags.DEFINE_integer("seed", None, "Override the config's training seed (for repeats over seeds).")


def load_config(path: str, dataset: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """Reads and checks an iteration config, naming the file and key on error."""
    config = fileio.read_json(path)
    missing = [key for key in (*ROLES, "train", "teacher", "student", "rounds", "pseudolabel") if key not in config]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {missing}")
    if seed is not None:
        config["train"] = config["train"] | {"seed": seed}
    if dataset:
        for role in ROLES:
            config[role] = config[role] | {"dataset": dataset}
    sections = {name: config[name] for name in ("train", "teacher", "student")}
    sections |= {f"rounds[{i}]": settings for i, settings in enumerate(config["rounds"])}
    known = set(TrainConfig().to_dict())
    for section, settings in sections.items():
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"{path}: {section} has unknown training setting(s) {unknown}")
    return config


class StepFailed(RuntimeError):
    """A step's CLI exited non-zero; its own error message is above."""


class Manifest:
    """`rounds.json`: what ran, with which settings, and what came out."""

    def __init__(self, work_dir: str):
        self.path = os.path.join(work_dir, MANIFEST)
        self.steps: dict[str, Any] = {}
        if tf.io.gfile.exists(self.path):
            content = fileio.read_json(self.path)
            if not isinstance(content, dict) or not isinstance(content.get("steps"), dict):
                raise ValueError(
                    f"{self.path} is not a rounds manifest (no 'steps' object); move it away to start over"
                )
            self.steps = content["steps"]

    def done(self, name: str, settings: dict[str, Any], marker: str) -> bool:
        entry = self.steps.get(name)
        if not entry or entry.get("status") != "done" or not tf.io.gfile.exists(marker):
            return False
        if entry.get("settings") != settings:
            raise ValueError(
                f"{self.path}: step {name} was done with other settings; use a new --work_dir to change them"
            )
        return True

    def record(self, name: str, entry: dict[str, Any]) -> None:
        self.steps[name] = entry
        fileio.write_json(self.path, {"steps": self.steps})


def run_step(manifest: Manifest, name: str, command: list[str], settings: dict, marker: str, outputs: dict) -> None:
    """Runs one step's CLI unless the manifest says it is done."""
    if manifest.done(name, settings, marker):
        print(f"[{name}] done already, skipping", file=sys.stderr, flush=True)
        return
    print(f"[{name}] running: {' '.join(command)}", file=sys.stderr, flush=True)
    start = time.time()
    manifest.record(name, {"status": "running", "command": command, "settings": settings, "outputs": outputs})
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise StepFailed(f"step {name} failed with exit code {result.returncode}: {' '.join(command)}")
    seconds = round(time.time() - start, 1)
    manifest.record(
        name,
        {"status": "done", "command": command, "settings": settings, "outputs": outputs, "seconds": seconds},
    )
    print(f"[{name}] finished in {seconds:.0f}s", file=sys.stderr, flush=True)


def train_settings(config: dict[str, Any], role: str, round_index: int, model_dir: str) -> dict[str, Any]:
    """Resolved TrainConfig values for the teacher (round 0) or student k."""
    settings = dict(config["train"]) | config[role]
    if role == "student":
        settings |= config["rounds"][round_index - 1]
    settings |= {
        "model_dir": model_dir,
        "dataset": config["labeled"]["dataset"],
        "train_split": config["labeled"].get("split"),
        "eval_dataset": config["validation"]["dataset"],
        "eval_split": config["validation"].get("split"),
    }
    return TrainConfig.from_dict(settings).to_dict()


def run_iteration(
    work_dir: str, last_round: int, config_path: str, dataset: str | None = None, seed: int | None = None
) -> dict[str, Any]:
    config = load_config(config_path, dataset, seed)
    if last_round < 0:
        raise ValueError(f"--round must be >= 0, got {last_round}")
    if last_round > len(config["rounds"]):
        raise ValueError(f"--round={last_round} but {config_path} defines only {len(config['rounds'])} student rounds")
    fileio.check_writable_dir(work_dir, "--work_dir")
    manifest = Manifest(work_dir)
    python = sys.executable
    models = {0: os.path.join(work_dir, "round0-teacher")}
    teacher_settings = train_settings(config, "teacher", 0, models[0])
    _run_training(manifest, "round0/teacher", "teacher.train", teacher_settings, work_dir, [])
    for k in range(1, last_round + 1):
        pseudo_dir = os.path.join(work_dir, f"round{k}-pseudo")
        label = config["pseudolabel"]
        label_settings = {
            "input": config["unlabeled"]["dataset"],
            "split": config["unlabeled"].get("split"),
            "teacher": os.path.join(models[k - 1], "export"),
        } | label
        command = [python, "-m", "pseudolabel.run", f"--output_dir={pseudo_dir}"] + [
            f"--{key}={value}" for key, value in label_settings.items() if value is not None
        ]
        marker = os.path.join(pseudo_dir, "stats.json")
        run_step(manifest, f"round{k}/pseudolabel", command, label_settings, marker, {"output_dir": pseudo_dir})
        students = {"student": False}
        if config.get("ablation_round") == k:
            students["student_no_noise"] = True
        for name, no_noise in students.items():
            model_dir = os.path.join(work_dir, f"round{k}-{name.replace('_', '-')}")
            settings = train_settings(config, "student", k, model_dir)
            settings |= {"unlabeled_dataset": f"tfrecord:{pseudo_dir}/pseudo-*"}
            if no_noise:
                settings = TrainConfig.from_dict(settings).without_noise().to_dict()
            else:
                models[k] = model_dir
            teacher_flag = [f"--teacher={os.path.join(models[k - 1], 'export')}"]
            _run_training(manifest, f"round{k}/{name}", "student.train", settings, work_dir, teacher_flag)
    return report.write_report(work_dir, manifest.steps, config, last_round)


def _run_training(manifest, name, module, settings, work_dir, extra_flags) -> None:
    config_path = os.path.join(work_dir, "configs", name.replace("/", "-") + ".json")
    fileio.write_json(config_path, settings)
    command = [sys.executable, "-m", module, f"--config={config_path}", *extra_flags]
    export_dir = os.path.join(settings["model_dir"], "export")
    marker = os.path.join(export_dir, "model.json")
    run_step(manifest, name, command, settings, marker, {"model_dir": settings["model_dir"], "export": export_dir})


def main(argv):
    del argv
    try:
        summary = run_iteration(_WORK_DIR.value, _ROUND.value, _CONFIG.value, _DATASET.value, _SEED.value)
    except StepFailed as error:
        print(f"error: {error}; rerun the same command to resume", file=sys.stderr)
        sys.exit(1)
    with tf.io.gfile.GFile(summary["report_md"]) as f:
        print(f.read())
    logging.info("report written to %s", summary["report_md"])


if __name__ == "__main__":
    cli.run(main)
