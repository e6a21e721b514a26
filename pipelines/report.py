"""The per-run report: accuracy per round, pseudo-label quality, class balance.

Every number is measured here from the exports and the labeling stats of the
run (nothing is copied from elsewhere): each model is evaluated on the
validation split (used to choose settings) and on the test split (reported,
never tuned on). A run without test data reports validation accuracy only,
and says that it is an optimistic estimate.
"""

from __future__ import annotations

import os
from typing import Any

from efficientnet.data.datasets import open_source
from efficientnet.data.source import EVAL
from efficientnet.model.evaluation import evaluate
from efficientnet.model.inference import Predictor
from efficientnet.util import figures, fileio
from pipelines.manifest import (
    DATA_ROLES,
    MODEL_ROLES,
    ORACLE,
    PSEUDOLABEL,
    STUDENT,
    STUDENT_NO_NOISE,
    TEACHER,
    Manifest,
)
from pseudolabel import outputs
from robustness.report import percent

EVAL_BATCH_SIZE = 256
REPORT_FILE = "report.json"  # the measured numbers; report.md and report.png are drawn from them


def evaluation_roles(config: dict[str, Any]) -> tuple[str, ...]:
    """The roles models are evaluated on: validation, and test when there is one."""
    return ("validation", "test") if config.get("test") else ("validation",)


def reported_role(config: dict[str, Any]) -> str:
    """The role the report's comparisons use: test, else validation."""
    return evaluation_roles(config)[-1]


def measure(manifest: Manifest, config: dict[str, Any], last_round: int) -> dict[str, Any]:
    """Evaluates every finished model and collects the labeling stats."""
    models = []
    data_dir = config["train"].get("data_dir")
    sources = {role: open_source(config[role]["dataset"], data_dir=data_dir) for role in evaluation_roles(config)}
    splits = {role: source.resolve_split(config[role].get("split"), EVAL) for role, source in sources.items()}
    for step, entry in manifest.finished(last_round, MODEL_ROLES):
        row = {"round": step.round, "role": step.role, "export": entry["outputs"]["export"]}
        predictor = Predictor.from_export(row["export"])
        for role, source in sources.items():
            row[role] = evaluate(predictor, source, splits[role], EVAL_BATCH_SIZE)["top1"]
        models.append(row)
    models.sort(key=lambda row: row["role"] == ORACLE)  # the bound last, below the rounds it bounds
    labeling = []
    for step, entry in manifest.finished(last_round, (PSEUDOLABEL,)):
        stats = fileio.read_json(outputs.stats_path(entry["outputs"]["output_dir"]))
        labeling.append(
            {
                "round": step.round,
                "pseudo_label_accuracy": stats.get("pseudo_label_accuracy"),
                "counts_after_filtering": stats["counts_per_class"]["after_filtering"],
                "counts_after_balancing": stats["counts_per_class"]["after_balancing"],
                "images_per_class": stats["images_per_class"],
                "num_kept": stats["num_kept"],
                "num_images": stats["num_images"],
                "class_names": stats.get("class_names"),
            }
        )
    data = {role: config[role] for role in DATA_ROLES} | {"validation_holdout": manifest.holdout}
    if manifest.holdout:  # name the user's labeled data, not the copy the models trained on
        data["labeled"] = {"dataset": manifest.holdout["source"], "split": manifest.holdout["split"]}
    return {"models": models, "labeling": labeling, "data": data, "reported": reported_role(config)}


def gap_closed(student: float, teacher: float, oracle: float) -> float | None:
    """(student − teacher) / (oracle − teacher): how much of the teacher's distance to
    full supervision the student made up (1 = all of it, 0 = none, < 0 = worse than
    the teacher). None when the oracle is not above the teacher: there is no gap."""
    return (student - teacher) / (oracle - teacher) if oracle > teacher else None


def gaps_closed(models: list[dict[str, Any]], role: str = "test") -> dict[int, float | None]:
    """`gap_closed` of each round's student on `role` data, against this run's teacher and
    oracle; empty when the run has no teacher or no oracle."""
    by_key = {(row["round"], row["role"]): row[role] for row in models}
    teacher, oracle = by_key.get((0, TEACHER)), by_key.get((1, ORACLE))
    if teacher is None or oracle is None:
        return {}
    return {
        k: gap_closed(accuracy, teacher, oracle) for (k, kind), accuracy in sorted(by_key.items()) if kind == STUDENT
    }


def effects(models: list[dict[str, Any]], role: str = "test") -> list[str]:
    """The three effects the method predicts, each a plain statement with its measured gap on
    `role` data: the student beats its teacher, iterating helps (round k's student vs round
    k − 1's), and noise helps (the noised vs the un-noised student of the ablation round).
    A comparison whose two models the run lacks gives no line."""
    by_key = {(row["round"], row["role"]): row for row in models}
    lines = []

    def compare(label, a, b):
        if a in by_key and b in by_key:
            gap = 100 * (by_key[a][role] - by_key[b][role])
            if gap == 0:
                lines.append(f"- {label}: equal {role} accuracy")
            else:
                verdict = "above" if gap > 0 else "below"
                lines.append(f"- {label}: {verdict} by {abs(gap):.1f} points of {role} accuracy")

    compare("student round 1 vs teacher", (1, STUDENT), (0, TEACHER))
    rounds = sorted({row["round"] for row in models})
    for k in rounds[2:]:
        compare(f"student round {k} vs round {k - 1}", (k, STUDENT), (k - 1, STUDENT))
    for k in rounds:
        compare(f"noised vs un-noised student, round {k}", (k, STUDENT), (k, STUDENT_NO_NOISE))
    return lines


def comparisons(models: list[dict[str, Any]], role: str = "test") -> list[str]:
    """The report's section on what the method predicts: the `effects`, then each student's share
    of the teacher→oracle gap when the run trained the oracle."""
    by_key = {(row["round"], row["role"]): row for row in models}
    lines = effects(models, role)
    for k, closed in gaps_closed(models, role).items():
        share = (
            "no teacher→oracle gap to close"
            if closed is None
            else f"closes {100 * closed:.0f} % of the teacher→oracle gap"
        )
        lines.append(
            f"- student round {k}: {share} "
            f"(teacher {by_key[(0, TEACHER)][role]:.3f}, oracle {by_key[(1, ORACLE)][role]:.3f}, {role})"
        )
    return lines


def model_name(row: dict[str, Any]) -> str:
    """`round 1 student`: how the report names a model (its robustness results are keyed so)."""
    return f"round {row['round']} {row['role']}"


def robustness_section(measured: dict[str, Any], config: dict[str, Any], work_dir: str) -> dict[str, Any] | None:
    """ImageNet-C-style corruption errors of every round's model on the reported (test) data.

    Relative to the teacher (CE = 100 for the teacher); `config["robustness"]`
    sets options such as `max_examples`, and null switches it off (ImageNet
    runs use `python -m pipelines.robustness` on the real ImageNet-C instead).
    """
    options = config.get("robustness")
    if options is None or not measured["models"]:
        return None
    from robustness.corruption_report import corruption_section

    teacher = next((row["export"] for row in measured["models"] if row["role"] == TEACHER), None)
    return corruption_section(
        {model_name(row): row["export"] for row in measured["models"]},
        config[measured["reported"]]["dataset"],
        config[measured["reported"]].get("split"),
        work_dir,
        baseline=teacher,
        cache_dir=os.path.join(work_dir, "robustness-cache"),
        **options,
    )


def write_report(work_dir: str, manifest: Manifest, config: dict[str, Any], last_round: int) -> dict[str, Any]:
    """Writes report.json, report.md and report.png (and robustness.*) into `work_dir`."""
    measured = measure(manifest, config, last_round)
    measured["comparisons"] = comparisons(measured["models"], measured["reported"])
    section = robustness_section(measured, config, work_dir)
    if section is not None:
        measured["robustness"] = section["result"]
    fileio.write_json(os.path.join(work_dir, REPORT_FILE), measured)
    png = os.path.join(work_dir, "report.png")
    figures.write_png(png, draw(measured))
    markdown = _markdown(measured, config, section["markdown"] if section else None)
    md_path = os.path.join(work_dir, "report.md")
    fileio.write_bytes(md_path, markdown.encode())
    return measured | {"report_md": md_path, "report_png": png}


def console_summary(summary: dict[str, Any]) -> str:
    """What `pipelines.iterate` prints when it ends: the report's headline in a few lines.

    Accuracy per model (with its mCE when the robustness section ran), the
    three `effects`, and where report.md and report.png are; the tables of
    labeling and robustness stay in the report. `summary` is what
    `write_report` returns. 3 + models + effects lines: 10 for the digits
    demo (two rounds and the ablation), 11 with `--oracle`.
    """
    models, reported = summary["models"], summary["reported"]
    mce = {name: row["mce"] for name, row in summary["robustness"]["models"].items()} if "robustness" in summary else {}
    heading = "Top-1 accuracy per model"
    if mce:
        # robustness_section normalises by the teacher: its mCE is 100.
        heading += f" (mCE: mean corruption error on {reported}, teacher = 100, lower is better)"
    width = max((len(model_name(row)) for row in models), default=0)
    lines = [heading + ":"]
    for row in models:
        name = model_name(row)
        cells = [f"{role} {row[role]:.3f}" for role in evaluation_roles(summary["data"])]
        if name in mce:
            cells.append(f"mCE {percent(mce[name])}")
        lines.append(f"  {name:<{width}}  " + "  ".join(cells))
    lines += ["What the method predicts, measured:", *(f"  {line}" for line in effects(models, reported))]
    lines.append(f"Report: {summary['report_md']} (plot: {summary['report_png']})")
    return "\n".join(lines)


def _markdown(measured: dict[str, Any], config: dict[str, Any], robustness: str | None) -> str:
    lines = [
        "# Noisy Student report",
        "",
        config.get("description", ""),
        "",
        *_data_lines(measured["data"]),
        "## Accuracy per round (top-1)",
        "",
    ]
    roles = evaluation_roles(config)
    lines += ["| round | model | " + " | ".join(roles) + " |", "|---|---|" + "---|" * len(roles)]
    for row in measured["models"]:
        lines.append(f"| {row['round']} | {row['role']} | " + " | ".join(f"{row[r]:.3f}" for r in roles) + " |")
    if "test" in roles:
        lines += ["", "Validation images were used to choose settings; test images only to report.", ""]
    else:
        lines += [
            "",
            "There is no test set (pass --test=SPEC): these are validation accuracies, on the images the "
            "settings were chosen on, so they overstate the accuracy on new images.",
            "",
        ]
    if any(row["role"] == ORACLE for row in measured["models"]):
        lines += [
            "The oracle is the round-1 student's run with the true labels of the unlabeled data as its "
            "targets instead of pseudo-labels: what a perfect teacher would give this student.",
            "",
        ]
    elif config.get("oracle"):
        lines += ["The config names the unlabeled data's true labels: `--oracle` adds the oracle bound.", ""]
    lines += ["## What the method predicts, measured", "", *measured["comparisons"], ""]
    if measured["labeling"]:
        lines += [
            "## Pseudo-labels",
            "",
            "| round | accuracy before filtering | after filtering | kept / labeled | images per class |",
            "|---|---|---|---|---|",
        ]
        for row in measured["labeling"]:
            accuracy = row["pseudo_label_accuracy"] or {}
            lines.append(
                f"| {row['round']} | {_fraction(accuracy.get('before_filtering'))} | "
                f"{_fraction(accuracy.get('after_filtering'))} | {row['num_kept']} / {row['num_images']} | "
                f"{row['images_per_class']} |"
            )
        lines += ["", "Class balance after confidence filtering (before balancing to K per class):", ""]
        names = measured["labeling"][0]["class_names"] or list(
            range(len(measured["labeling"][0]["counts_after_filtering"]))
        )
        lines.append("| round | " + " | ".join(str(name) for name in names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for row in measured["labeling"]:
            lines.append(f"| {row['round']} | " + " | ".join(str(c) for c in row["counts_after_filtering"]) + " |")
        lines.append("")
    lines += ["![report](report.png)", ""]
    if robustness:
        lines += [robustness, ""]
    return "\n".join(lines)


def _data_lines(data: dict[str, Any]) -> list[str]:
    """Which data each role read, and how validation was made when it was held out."""
    lines = ["## Data", ""]
    holdout = data.get("validation_holdout")
    for role in DATA_ROLES:
        entry = data.get(role)
        split = f" split `{entry['split']}`" if entry and entry.get("split") else ""
        described = f"`{entry['dataset']}`{split}" if entry else "none"
        if role == "validation" and holdout:
            described = (
                f"{holdout['num_validation']} images held out of the labeled data ({holdout['fraction']:.0%} of "
                f"each class, seed {holdout['seed']}; ids in `{holdout['validation_ids']}`); "
                f"the models trained on the other {holdout['num_train']}"
            )
        lines.append(f"- {role}: {described}")
    return [*lines, ""]


def _fraction(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def draw(measured: dict[str, Any]):
    """The report's figure: accuracy per round (ticks at whole rounds) and pseudo-labels per class."""
    figure, (accuracy_axis, balance_axis) = figures.subplots(1, 2, figsize=(11, 4))
    noised = [row for row in measured["models"] if row["role"] in (TEACHER, STUDENT)]
    reported = measured["reported"]
    for split, marker in (("validation", "o"), ("test", "s")):
        if noised and split in noised[0]:
            accuracy_axis.plot([r["round"] for r in noised], [r[split] for r in noised], marker=marker, label=split)
    for row in measured["models"]:
        if row["role"] == STUDENT_NO_NOISE:
            label = f"{reported}, no noise"
            accuracy_axis.scatter([row["round"]], [row[reported]], marker="x", color="red", label=label)
        if row["role"] == ORACLE:
            accuracy_axis.axhline(row[reported], linestyle="--", color="green", label=f"{reported}, oracle")
    accuracy_axis.set_xticks(sorted({row["round"] for row in measured["models"]}))
    accuracy_axis.set_xlabel("round (0 = teacher)")
    accuracy_axis.set_ylabel("top-1 accuracy")
    accuracy_axis.set_title("Accuracy per round")
    accuracy_axis.legend()
    rounds = len(measured["labeling"])
    width = 0.8 / max(1, rounds)
    for offset, row in enumerate(measured["labeling"]):
        counts = row["counts_after_filtering"]
        shift = (offset - (rounds - 1) / 2) * width  # each class's bars centred on its index
        balance_axis.bar([i + shift for i in range(len(counts))], counts, width=width, label=f"round {row['round']}")
        if len(counts) <= 20:  # one tick per class where they stay legible
            balance_axis.set_xticks(range(len(counts)))
    balance_axis.set_xlabel("predicted class")
    balance_axis.set_ylabel("images kept")
    balance_axis.set_title("Pseudo-labels per class after filtering")
    if measured["labeling"]:
        balance_axis.legend()
    return figure
