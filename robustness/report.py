"""Writes robustness results as JSON, a markdown table and a plot (atomically, via fileio).

`write_report(result, output_dir)` handles the result of any benchmark
(`result["benchmark"]` is "corruptions", "imagenet_c", "imagenet_a", "imagenet_r" or
"imagenet_p") and writes `<benchmark>.json`, `<benchmark>.md` and `<benchmark>.png`.
`markdown(result)` alone gives the section to paste into another report. Numbers are stored
as fractions in JSON and printed as percentages (×100), the way the papers print CE, mCE, mFR
and errors. Every ImageNet benchmark's section starts with the data source and whether the
numbers are comparable with published ones, and if not, why (`not_comparable_because`).
"""

from __future__ import annotations

import math
import os
from typing import Any

from efficientnet.util import figures, fileio
from robustness import metrics


def write_report(result: dict[str, Any], output_dir: str, basename: str | None = None) -> dict[str, str]:
    """Writes `<basename>.json/.md/.png` (basename defaults to the benchmark) into output_dir."""
    basename = basename or result["benchmark"]
    paths = {kind: os.path.join(output_dir, f"{basename}.{kind}") for kind in ("json", "md", "png")}
    fileio.write_json(paths["json"], result)  # NaN becomes null there
    figures.write_png(paths["png"], draw(result))
    text = markdown(result, image=os.path.basename(paths["png"]))
    fileio.write_bytes(paths["md"], text.encode())
    return paths


def markdown(result: dict[str, Any], *, heading_level: int = 2, image: str | None = None) -> str:
    """The result as a markdown section (title, tables, plot link when `image` is given)."""
    writer = {
        "corruptions": _corruption_markdown,
        "imagenet_c": _corruption_markdown,
        "imagenet_a": _imagenet_a_markdown,
        "imagenet_r": _imagenet_a_markdown,
        "imagenet_p": _imagenet_p_markdown,
    }[result["benchmark"]]
    lines = writer(result, "#" * heading_level)
    if image:
        lines += [f"![{result['benchmark']}]({image})", ""]
    return "\n".join(lines)


def comparability(result: dict[str, Any]) -> list[str]:
    """The data source and whether the result is comparable with published numbers, as lines."""
    if "data_source" not in result:
        return []
    if result["comparable"]:
        return [f"Data: {result['data_source']}. Comparable with published numbers: yes.", ""]
    lines = [f"Data: {result['data_source']}. **Not comparable with published numbers:**", ""]
    return lines + [f"- {reason}" for reason in result["not_comparable_because"]] + [""]


def percent(value) -> str:
    """A fraction as a percentage with one decimal (`0.669` → `66.9`); `n/a` when undefined (None or NaN)."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _corruption_markdown(result, heading) -> list[str]:
    models = result["models"]
    names = list(models)
    ratio = "CE_c = Σ_s E(f,c,s) / Σ_s E(base,c,s) with base = "
    if result["benchmark"] == "imagenet_c":
        title = "ImageNet-C"
        source = result["dataset"]
        definition = ratio + "AlexNet (its published errors, docs/robustness.md)"
    else:
        title = "Corruption robustness"
        count = next(iter(models.values()))["num_examples"]
        source = f"{result['dataset']} {result['split']}, {count} images, built-in corruptions, seed {result['seed']}"
        baseline = result.get("baseline")
        definition = (
            ratio + f"the baseline model {baseline['export']} (clean error {percent(baseline['clean_error'])})"
            if baseline
            else "CE_c = mean top-1 error over severities (unnormalised: no baseline model)"
        )
    corruptions = result["corruptions"]
    benchmark = [c for c in metrics.BENCHMARK_CORRUPTIONS if c in corruptions]
    extras = [c for c in corruptions if c not in metrics.BENCHMARK_CORRUPTIONS]
    severities = ", ".join(str(s) for s in result["severities"])
    lines = [
        f"{heading} {title}",
        "",
        *comparability(result),
        f"{source}; severities {severities}. {definition}; mCE = mean CE_c over the benchmark corruptions "
        "evaluated. Values in %.",
        "",
        "| corruption | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for corruption in benchmark:
        lines.append(f"| {corruption} | " + " | ".join(percent(models[n]["ce"].get(corruption)) for n in names) + " |")
    for corruption in extras:
        normalised = all(corruption in models[n]["ce"] for n in names)
        value = [models[n]["ce"][corruption] if normalised else _mean(models[n]["errors"][corruption]) for n in names]
        label = "extra, not in mCE" if normalised else "extra, mean error, not in mCE"
        lines.append(f"| {corruption} ({label}) | " + " | ".join(percent(v) for v in value) + " |")
    lines.append("| **mCE** | " + " | ".join(percent(models[n]["mce"]) for n in names) + " |")
    if any(models[n].get("relative_mce") is not None for n in names):
        lines.append("| relative mCE | " + " | ".join(percent(models[n].get("relative_mce")) for n in names) + " |")
    if result["benchmark"] == "imagenet_c":
        lines.append(
            "| unnormalised mCE | " + " | ".join(percent(models[n].get("unnormalised_mce")) for n in names) + " |"
        )
    lines.append("| clean error | " + " | ".join(percent(models[n]["clean_error"]) for n in names) + " |")
    lines.append("")
    if result["benchmark"] == "imagenet_c" and not all(models[n].get("complete") for n in names):
        evaluated = next(iter(models.values()))["mce_corruptions"]
        lines += [
            "Not all 15 corruptions × 5 severities were evaluated: this mCE is not the benchmark's (it is the "
            f"mean over the {len(evaluated)} corruption(s) evaluated at all five severities).",
            "",
        ]
    for name in names:
        lines += [
            f"{heading}# Top-1 error (%) per severity: {name}",
            "",
            "| corruption | " + " | ".join(str(s) for s in result["severities"]) + " |",
            "|---|" + "---|" * len(result["severities"]),
        ]
        for corruption in corruptions:
            lines.append(
                f"| {corruption} | " + " | ".join(percent(e) for e in models[name]["errors"][corruption]) + " |"
            )
        lines.append("")
    timing = result.get("timing")
    if timing:
        lines += [
            f"Cost: {timing['total_s']:.0f} s in all ({timing['corrupt_s']:.0f} s corrupting "
            f"{timing['corrupted_images']} images, {timing['predict_s']:.0f} s for "
            f"{timing['model_evaluations']} model evaluations).",
            "",
        ]
    return lines


def _imagenet_a_markdown(result, heading) -> list[str]:
    title = {"imagenet_a": "ImageNet-A", "imagenet_r": "ImageNet-R"}[result["benchmark"]]
    where = f"{result['dataset']} {result['split']}" if "split" in result else result["dataset"]
    lines = [
        f"{heading} {title}",
        "",
        *comparability(result),
        f"{where}; argmax over the 200 {title} classes' logits. Calibration: {result['calibration']}. Values in %.",
        "",
        "| model | images | top-1 | top-1 error | RMS calibration error | ECE (15 bins) |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["models"].items():
        lines.append(
            f"| {name} | {row['num_examples']} | {percent(row['top1'])} | {percent(row['top1_error'])} | "
            f"{percent(row['rms_calibration_error'])} | {percent(row['expected_calibration_error'])} |"
        )
    lines.append("")
    return lines


def _imagenet_p_markdown(result, heading) -> list[str]:
    models = result["models"]
    names = list(models)
    normalised = result["baseline"] is not None
    lines = [
        f"{heading} ImageNet-P",
        "",
        *comparability(result),
        f"Sequences under {result['root']}; FP = flip probability, T5D = top-5 distance"
        + (f", FR = FP / FP(baseline {result['normalisation']})" if normalised else " (no baseline: no flip rates)")
        + ". FP and FR in %.",
        "",
        "| perturbation | sequences | "
        + " | ".join(f"{n} FP | {n} T5D" + (f" | {n} FR" if normalised else "") for n in names)
        + " |",
        "|---|---|" + "---|" * (len(names) * (3 if normalised else 2)),
    ]
    for perturbation in result["perturbations"]:
        cells = []
        for name in names:
            row = models[name]
            cells += [percent(row["flip_probability"][perturbation]), f"{row['top5_distance'][perturbation]:.3f}"]
            if normalised:
                cells.append(percent(row["flip_rate"].get(perturbation)))
        lines.append(f"| {perturbation} | {result['num_sequences'][perturbation]} | " + " | ".join(cells) + " |")
    lines.append("")
    for name in names:
        row = models[name]
        summary = f"- {name}: mean FP {percent(row['mean_flip_probability'])}, mean T5D {row['mean_top5_distance']:.3f}"
        if normalised:
            summary += f", **mFR {percent(row['mfr'])}**, mT5D {percent(row.get('mt5d'))}"
        lines.append(summary)
    lines.append("")
    if normalised and not result["complete"]:
        lines += ["Not all 10 perturbations were evaluated: this mFR is not the benchmark's.", ""]
    return lines


def _mean(values) -> float:
    """Mean of the values that exist (a missing severity is None); NaN when none does."""
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else math.nan


def draw(result: dict[str, Any]):
    """The result's figure: CE per corruption and error per severity, ImageNet-A/R's accuracy and
    calibration, or ImageNet-P's flip probabilities."""
    models = result["models"]
    if result["benchmark"] in ("corruptions", "imagenet_c"):
        figure, (ce_axis, severity_axis) = figures.subplots(
            1, 2, figsize=(14, 4.5), gridspec_kw={"width_ratios": [3, 1]}
        )
        corruptions = result["corruptions"]
        width = 0.8 / len(models)
        for offset, (name, row) in enumerate(models.items()):
            values = [100 * row["ce"].get(c, _mean(row["errors"][c])) for c in corruptions]
            ce_axis.bar([i + offset * width for i in range(len(corruptions))], values, width=width, label=name)
            means = [100 * _mean([row["errors"][c][k] for c in corruptions]) for k in range(len(result["severities"]))]
            clean = math.nan if row["clean_error"] is None else 100 * row["clean_error"]
            severity_axis.plot([0, *result["severities"]], [clean, *means], marker="o", label=name)
        ce_axis.set_xticks([i + 0.4 - width / 2 for i in range(len(corruptions))], corruptions, rotation=45, ha="right")
        ce_axis.set_ylabel("CE (%)")
        normalisation = result.get("normalisation", "")
        ce_axis.set_title(
            "Mean error per corruption (unnormalised CE)"
            if normalisation.startswith("unnormalised")
            else f"Corruption error per corruption, normalised by {normalisation}"
        )
        ce_axis.legend(fontsize="small")
        severity_axis.set_xlabel("severity (0 = clean)")
        severity_axis.set_ylabel("top-1 error (%), mean over corruptions")
        severity_axis.set_title("Error vs severity")
    elif result["benchmark"] in ("imagenet_a", "imagenet_r"):
        figure, axis = figures.subplots(figsize=(7, 4))
        names = list(models)
        for offset, (key, label) in enumerate(
            (("top1", "top-1"), ("rms_calibration_error", "RMS calib. error"), ("expected_calibration_error", "ECE"))
        ):
            axis.bar(
                [i + offset * 0.27 for i in range(len(names))], [100 * models[n][key] for n in names], 0.27, label=label
            )
        axis.set_xticks([i + 0.27 for i in range(len(names))], names)
        axis.set_ylabel("%")
        axis.set_title({"imagenet_a": "ImageNet-A", "imagenet_r": "ImageNet-R"}[result["benchmark"]])
        axis.legend()
    else:
        figure, axis = figures.subplots(figsize=(10, 4))
        perturbations = result["perturbations"]
        width = 0.8 / len(models)
        for offset, (name, row) in enumerate(models.items()):
            axis.bar(
                [i + offset * width for i in range(len(perturbations))],
                [100 * row["flip_probability"][p] for p in perturbations],
                width=width,
                label=name,
            )
        axis.set_xticks(
            [i + 0.4 - width / 2 for i in range(len(perturbations))], perturbations, rotation=45, ha="right"
        )
        axis.set_ylabel("flip probability (%)")
        axis.set_title("ImageNet-P")
        axis.legend(fontsize="small")
    return figure
