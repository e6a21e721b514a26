"""The label-efficiency curve: the iteration at several numbers of labels per class, over seeds.

  scripts/label_curve.sh                                     # 1, 2, 4, 8, 15 labels per class × seeds 0, 1, 2
  nohup scripts/label_curve.sh > runs/label-curve.log 2>&1 &    # the same in the background; rerun to resume
  scripts/label_curve.sh --per_class=1,4 --seeds=0 --work_dir=runs/curve-small

How much the unlabeled data is worth depends on how few labels there are: the
paper's gains are largest where labels are scarce. For each N of
`--per_class`, the config (`--config`, default the standard digits protocol at
15 labels per class) is derived for `digits:per_class=N` with every length in
epochs (training, warm-up, decay interval) scaled by M/N, M being the config's
own labels per class, so every model trains the same number of steps whatever
N; the no-noise ablation and the robustness report are left out, because the
curve measures accuracy. With `--config=configs/digits_4_per_class.json`, N = 4
is exactly that protocol. Each (N, seed) is one `pipelines.iterate --oracle`
run in `WORK_DIR/per_class_N/seedS` (its console in `seedS.log` beside it),
which trains the teacher, the students of rounds 1 … R and the oracle; a
finished run is skipped and an interrupted one resumes from its steps and
checkpoints, so rerunning the same command continues the curve. After every
run, `label_curve.md`, `label_curve.json` and `label_curve.png` in WORK_DIR are
rewritten from the runs finished so far: per N, mean ± std over seeds of each
model's accuracy and of the share of the teacher→oracle gap each round's
student closes (docs/results.md#label-efficiency-curve).

`--jobs=K` runs K iterations side by side, each with one TensorFlow thread, so
that K runs share K cores without oversubscribing them. One thread also fixes
the float summation order: the numbers then equal those of other one-thread
runs of the same steps, and differ slightly from runs with the default threads.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import tensorflow as tf
from absl import flags

from efficientnet.data.datasets import parse_spec
from efficientnet.data.digits import DIGITS_LABELED_PER_CLASS, parse_digits_argument
from efficientnet.train.config import TrainConfig
from efficientnet.util import cli, figures, fileio, runlock, stopping
from pipelines import compare_runs, iteration
from pipelines.manifest import ORACLE, STUDENT, TEACHER, Manifest, Step
from pipelines.report import REPORT_FILE

# The settings that are lengths in epochs of the labeled data: scaled by 15/N so each model trains as many steps.
EPOCH_SETTINGS = ("epochs", "warmup_epochs", "lr_decay_epochs")
CONFIG_DIR = "configs"  # the derived config of each N, inside the work directory
CURVE_FILE = "label_curve"  # .md, .json and .png in the work directory

_WORK_DIR = flags.DEFINE_string(
    "work_dir", "runs/label-curve", "Directory (local or gs://) of every run and the curve."
)
_CONFIG = flags.DEFINE_string(
    "config", iteration.DIGITS_CONFIG, "Iteration config whose labeled data is a digits spec; derived for each N."
)
_PER_CLASS = flags.DEFINE_list("per_class", ["1", "2", "4", "8", "15"], "Labeled images per class, 1-15.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds; each N runs once per seed.")
_ROUND = flags.DEFINE_integer("round", 2, "Last round of each iteration (>= 1: the oracle is round 1's bound).")
_JOBS = flags.DEFINE_integer("jobs", 1, "Iterations run side by side, each with one TensorFlow thread when > 1.")


def scale_lengths(section: dict[str, Any], factor: float) -> dict[str, Any]:
    """`section` with each length in epochs multiplied by `factor`."""
    return {key: round(value * factor, 6) if key in EPOCH_SETTINGS else value for key, value in section.items()}


def derive_config(config: dict[str, Any], per_class: int) -> dict[str, Any]:
    """The iteration config `config` for `per_class` labeled images per class.

    The labeled data must be a digits spec; its other arguments (an unlabeled
    shift) are kept. Lengths the config leaves at their defaults are written
    out scaled, so a length is scaled whether or not the config names it.
    """
    labeled = config["labeled"]
    scheme, argument = parse_spec(labeled["dataset"])
    if scheme != "digits":
        raise ValueError(
            f"the label curve varies digits:per_class=N, but the config's labeled data is {labeled['dataset']!r}"
        )
    variant = parse_digits_argument(argument)
    if not 1 <= per_class <= DIGITS_LABELED_PER_CLASS:
        raise ValueError(f"--per_class: each must be 1..{DIGITS_LABELED_PER_CLASS}, got {per_class}")
    factor = variant.labeled_per_class / per_class
    defaults = {key: TrainConfig.__dataclass_fields__[key].default for key in EPOCH_SETTINGS}
    derived = dict(config)
    derived["labeled"] = labeled | {"dataset": dataclasses.replace(variant, labeled_per_class=per_class).spec}
    derived["train"] = scale_lengths(defaults | config["train"], factor)
    for section in ("teacher", "student"):
        derived[section] = scale_lengths(config[section], factor)
    derived["rounds"] = [scale_lengths(settings, factor) for settings in config["rounds"]]
    derived.pop("ablation_round", None)
    derived["robustness"] = None
    derived["description"] = (
        f"{per_class} labeled images per class, derived by pipelines.label_curve from: {config.get('description', '')}"
    )
    return derived


def run_dir(work_dir: str, per_class: int, seed: int) -> str:
    return os.path.join(work_dir, f"per_class_{per_class}", f"seed{seed}")


def finished(directory: str, last_round: int) -> bool:
    """Whether the run in `directory` has its report and every model up to `last_round` and the oracle."""
    if not tf.io.gfile.exists(os.path.join(directory, REPORT_FILE)):
        return False
    done = {step for step, _ in Manifest(directory).finished(last_round, (TEACHER, STUDENT, ORACLE))}
    return {Step(0, TEACHER), Step(1, ORACLE), *(Step(k, STUDENT) for k in range(1, last_round + 1))} <= done


def derive_configs(base_path: str, per_class: list[int], last_round: int) -> dict[int, dict[str, Any]]:
    """The config of each N, each validated as the iteration will validate it (nothing is read or written)."""
    base = iteration.load_config(base_path)
    if not base.get("oracle"):
        raise ValueError(f"--config {base_path} names no `oracle` data; the curve measures students against it")
    if len(base["rounds"]) < last_round:
        raise ValueError(f"--round={last_round} but {base_path} defines only {len(base['rounds'])} student rounds")
    derived = {n: derive_config(base, n) for n in per_class}
    for n, config in derived.items():
        iteration.check_steps(config, last_round, True, f"{base_path} at {n} labels per class")
    return derived


def write_configs(work_dir: str, base_path: str, derived: dict[int, dict[str, Any]]) -> dict[int, str]:
    """Writes the config of each N into the work directory; returns their paths.

    A work directory whose configs were derived with other settings is
    refused, because its finished runs would be mixed with new ones.
    """
    paths = {n: os.path.join(work_dir, CONFIG_DIR, f"per_class_{n}.json") for n in derived}
    for n, path in paths.items():
        if tf.io.gfile.exists(path) and fileio.read_json(path) != derived[n]:
            raise ValueError(
                f"--work_dir {work_dir} holds runs of another config ({path} differs from {base_path} derived "
                f"for {n} per class); use a new --work_dir"
            )
    for n, path in paths.items():
        fileio.write_json(path, derived[n])
    return paths


def summarize(work_dir: str, per_class: list[int], seeds: list[int], last_round: int) -> list[dict[str, Any]]:
    """Per N with a finished run: its labeled count, runs, and mean/std/values of each model and gap share."""
    curve = []
    for n in per_class:
        dirs = [run_dir(work_dir, n, s) for s in seeds if finished(run_dir(work_dir, n, s), last_round)]
        if dirs:
            models = sorted(compare_runs.summarize(dirs), key=lambda row: (row["role"] == ORACLE, row["round"]))
            gaps = compare_runs.summarize_gaps(dirs)
            curve.append({"per_class": n, "labeled": 10 * n, "runs": len(dirs), "models": models, "gaps": gaps})
    return curve


def model_label(row: dict[str, Any]) -> str:
    return {TEACHER: "teacher", ORACLE: "oracle"}.get(row["role"], f"round {row['round']} student")


def to_markdown(curve: list[dict[str, Any]], split: str) -> str:
    """One row per N: each model's mean ± std on `split`, and (on test) the share of the gap each round closes."""
    if not curve:
        return "(no run has finished yet)"
    labels = [model_label(row) for row in curve[-1]["models"]]
    gap_rounds = [row["round"] for row in curve[-1]["gaps"]] if split == "test" else []
    header = ["labels per class", "runs", *labels, *(f"gap closed, round {k}" for k in gap_rounds)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in curve:
        models = {model_label(row): row[split] for row in point["models"]}
        gaps = {row["round"]: row for row in point["gaps"]}
        cells = [str(point["per_class"]), str(point["runs"])]
        cells += [
            f"{models[label]['mean']:.4f} ± {models[label]['std']:.4f}" if label in models else "" for label in labels
        ]
        cells += [f"{gaps[k]['mean']:.2f} ± {gaps[k]['std']:.2f}" if k in gaps else "" for k in gap_rounds]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw(curve: list[dict[str, Any]]):
    """Test accuracy against labeled images per class (log scale), mean ± std over seeds per model."""
    figure, axes = figures.subplots(figsize=(6.4, 4.2))
    labels = {model_label(row): None for point in curve for row in point["models"]}
    for label in labels:
        points = [
            (point["per_class"], row["test"]) for point in curve for row in point["models"] if model_label(row) == label
        ]
        xs = [n for n, _ in points]
        axes.errorbar(
            xs, [s["mean"] for _, s in points], yerr=[s["std"] for _, s in points], marker="o", capsize=3, label=label
        )
    axes.set_xscale("log")
    ticks = [point["per_class"] for point in curve]
    axes.set_xticks(ticks, [str(n) for n in ticks])
    axes.minorticks_off()
    axes.set_xlabel("labeled images per class")
    axes.set_ylabel("test top-1 accuracy (mean ± std over seeds)")
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return figure


def write_curve(work_dir: str, curve: list[dict[str, Any]], command: str) -> str:
    """Writes label_curve.json, .md and .png; returns the markdown."""
    markdown = "\n\n".join(
        [
            f"# Label-efficiency curve\n\n`{command}`",
            "Test top-1, mean ± std over seeds; share of the teacher→oracle gap closed, run by run:",
            to_markdown(curve, "test"),
            "Validation top-1 (the split settings are chosen on):",
            to_markdown(curve, "validation"),
        ]
    )
    base = os.path.join(work_dir, CURVE_FILE)
    fileio.write_json(base + ".json", {"command": command, "curve": curve})
    fileio.write_bytes(base + ".md", (markdown + "\n").encode())
    if curve:
        figures.write_png(base + ".png", draw(curve))
    return markdown


def iteration_command(config_path: str, directory: str, seed: int, last_round: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipelines.iterate",
        f"--round={last_round}",
        "--oracle",
        f"--seed={seed}",
        f"--config={config_path}",
        f"--work_dir={directory}",
    ]


def run_curve(
    work_dir: str, config_path: str, per_class: list[int], seeds: list[int], last_round: int = 2, jobs: int = 1
) -> str:
    """Runs every (N, seed) not finished yet, rewriting the curve after each; returns the curve's markdown."""
    if last_round < 1:
        raise ValueError(f"--round must be >= 1 (the oracle bounds round 1), got {last_round}")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    derived = derive_configs(config_path, per_class, last_round)
    fileio.check_writable_dir(work_dir, "--work_dir")
    curve_command = " ".join(["python -m pipelines.label_curve", *sys.argv[1:]])
    with runlock.hold(work_dir, "--work_dir"):
        paths = write_configs(work_dir, config_path, derived)
        todo = [(n, s) for n in per_class for s in seeds if not finished(run_dir(work_dir, n, s), last_round)]
        total = len(per_class) * len(seeds)
        print(f"[curve] {total - len(todo)} of {total} runs finished already; {len(todo)} to run", file=sys.stderr)
        started: dict[int, float] = {}
        failed: list[str] = []
        minutes_done: list[float] = []

        def start(index: int):
            n, seed = todo[index]
            directory = run_dir(work_dir, n, seed)
            command = iteration_command(paths[n], directory, seed, last_round)
            env = os.environ | ({"TF_NUM_INTRAOP_THREADS": "1"} if jobs > 1 else {})
            started[index] = time.time()
            if fileio.is_remote(directory):  # a log can only be appended to locally: the console shows the run's
                print(f"[curve] {n} labels per class, seed {seed}: running", file=sys.stderr, flush=True)
                return subprocess.Popen(command, env=env)
            log = directory + ".log"
            os.makedirs(os.path.dirname(log), exist_ok=True)
            print(f"[curve] {n} labels per class, seed {seed}: running (console in {log})", file=sys.stderr, flush=True)
            with open(log, "a") as stream:
                return subprocess.Popen(command, stdout=stream, stderr=subprocess.STDOUT, env=env)

        def on_exit(index: int, returncode: int) -> None:
            n, seed = todo[index]
            minutes = (time.time() - started[index]) / 60
            if returncode != 0:
                failed.append(f"{run_dir(work_dir, n, seed)}.log")
                print(  # stopped by a signal, or failed: its log ends with the step's own line saying which
                    f"[curve] {n} per class, seed {seed}: ended with exit {returncode} after {minutes:.1f} min; "
                    f"see {run_dir(work_dir, n, seed)}.log",
                    file=sys.stderr,
                )
                return
            write_curve(work_dir, summarize(work_dir, per_class, seeds, last_round), curve_command)
            minutes_done.append(minutes)
            left = len(todo) - len(minutes_done) - len(failed)
            eta = statistics.fmean(minutes_done) * left / min(jobs, max(left, 1))
            print(
                f"[curve] {n} per class, seed {seed}: finished in {minutes:.1f} min "
                f"({total - len(todo) + len(minutes_done)} of {total} runs done, about {eta:.0f} min left); "
                f"curve updated in {os.path.join(work_dir, CURVE_FILE)}.md",
                file=sys.stderr,
                flush=True,
            )

        stop = stopping.run_children([lambda i=i: start(i) for i in range(len(todo))], jobs, on_exit)
        if stop.requested:
            raise cli.Stopped(f"stopped by {stop.name}; rerun the same command to resume the curve")
        if failed:
            raise cli.Stopped(f"{len(failed)} run(s) failed, see {', '.join(failed)}; rerun the same command to resume")
        return write_curve(work_dir, summarize(work_dir, per_class, seeds, last_round), curve_command)


def integers(flag: flags.FlagHolder) -> list[int]:
    try:
        return [int(value) for value in flag.value]
    except ValueError:
        raise ValueError(f"--{flag.name} takes comma-separated integers, got {','.join(flag.value)}") from None


def main(argv):
    del argv
    markdown = run_curve(
        _WORK_DIR.value, _CONFIG.value, integers(_PER_CLASS), integers(_SEEDS), _ROUND.value, _JOBS.value
    )
    print(markdown)


if __name__ == "__main__":
    cli.run(main)
