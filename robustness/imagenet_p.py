"""ImageNet-P: prediction stability along perturbation sequences (docs/robustness.md#imagenet-p).

ImageNet-P is not in TFDS. The benchmark distributes each sequence as an .mp4 of 224 px
frames; convert them to NumPy (e.g. decode with ffmpeg or OpenCV once, elsewhere) and lay
them out as

  ROOT/<perturbation>/<class>/<sequence>.npy     uint8 array [frames, H, W, 3]

(the class level is optional: every .npy below ROOT/<perturbation> is a sequence, in sorted
path order). Perturbation folder names are the benchmark's: gaussian_noise, shot_noise,
motion_blur, zoom_blur, snow, brightness, translate, rotate, tilt, scale (and the extras
speckle_noise, gaussian_blur, spatter, shear). Labels are not needed: flip probability
measures whether the prediction changes, not whether it is right.

Frames are seen whole at each model's resolution (they are already 224 px crops). Scores
per perturbation: flip probability FP and top-5 distance T5D, comparing every frame with the
first one for the noise sequences and with the previous one otherwise; with a baseline, the
flip rate FR = FP / FP(baseline), mFR and mT5D over the perturbations evaluated (`complete`
when that is all ten).

Baseline. The paper normalises by AlexNet, but the benchmark's code does not contain
AlexNet's flip probabilities (the authors point to a spreadsheet, hendrycks/robustness issue
#49), so they are not hard-coded here: pass them as a JSON file
`{"flip_probability": {perturbation: FP}, "top5_distance": {perturbation: T5D}}`, or pass a
baseline export, which is evaluated on the same sequences. Without a baseline only the raw
FP / T5D and their means are reported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from efficientnet.util import fileio
from efficientnet.util.progress import ProgressLine
from robustness import inference, metrics

BASELINE = "baseline"


def sequence_paths(root: str, perturbation: str, max_sequences: int | None = None) -> list[str]:
    """Sorted .npy sequence files under ROOT/<perturbation> (any depth)."""
    directory = os.path.join(root, perturbation)
    if not tf.io.gfile.isdir(directory):
        raise FileNotFoundError(f"no ImageNet-P folder {directory!r}")
    paths, videos = [], []
    for folder, _, files in tf.io.gfile.walk(directory):
        paths += [os.path.join(folder, name) for name in files if name.endswith(".npy")]
        videos += [name for name in files if name.endswith(".mp4")]
    if not paths:
        hint = " (found .mp4 files: convert each to a uint8 .npy array [frames, H, W, 3])" if videos else ""
        raise ValueError(f"{directory!r} holds no .npy sequences{hint}")
    paths.sort()
    return paths[:max_sequences] if max_sequences else paths


def load_sequence(path: str) -> np.ndarray:
    with tf.io.gfile.GFile(path, "rb") as f:
        frames = np.load(f)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(f"{path}: expected a uint8 array [frames >= 2, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def available_perturbations(root: str) -> list[str]:
    known = [*metrics.BENCHMARK_PERTURBATIONS, *metrics.EXTRA_PERTURBATIONS]
    return [name for name in known if tf.io.gfile.isdir(os.path.join(root, name))]


def load_baseline(path: str) -> dict[str, dict[str, float]]:
    """Reads `{"flip_probability": {...}, "top5_distance": {...}}` baseline values."""
    values = fileio.read_json(path)
    if not isinstance(values, dict) or "flip_probability" not in values:
        raise ValueError(f"{path}: expected {{'flip_probability': {{perturbation: FP}}, 'top5_distance': {{...}}}}")
    return {"flip_probability": values["flip_probability"], "top5_distance": values.get("top5_distance", {})}


def imagenet_p_report(
    export_paths: Mapping[str, str],
    root: str,
    *,
    perturbations: Sequence[str] | None = None,
    baseline: str | None = None,
    max_sequences: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """FP, T5D and (with a baseline) FR, mFR, mT5D of each export on the sequences under `root`.

    Args:
      baseline: a JSON file of baseline values (module docstring) or an export directory.
    """
    if not tf.io.gfile.isdir(root):
        raise FileNotFoundError(f"ImageNet-P folder {root!r} does not exist")
    perturbations = list(perturbations or available_perturbations(root))
    if not perturbations:
        raise ValueError(f"{root!r} has none of the ImageNet-P perturbation folders")
    baseline_values = None
    all_paths = dict(export_paths)
    if baseline and baseline.endswith(".json"):
        baseline_values = load_baseline(baseline)
    elif baseline:
        all_paths[BASELINE] = baseline
    classifiers = inference.load_classifiers(all_paths)
    measured = {name: {"flip_probability": {}, "top5_distance": {}} for name in classifiers}
    num_sequences = {}
    for perturbation in perturbations:
        paths = sequence_paths(root, perturbation, max_sequences)
        num_sequences[perturbation] = len(paths)
        logits = {name: [] for name in classifiers}
        progress = ProgressLine(f"imagenet_p {perturbation}", len(paths), unit="sequences")
        for path in paths:
            frames = tf.convert_to_tensor(load_sequence(path))
            for name, classifier in classifiers.items():
                view = inference.whole_view(frames, classifier.resolution).numpy()
                logits[name].append(classifier.logits(view, batch_size))
            progress.advance(1)
        progress.close()
        compare_with_first = metrics.is_noise_perturbation(perturbation)
        for name, sequences in logits.items():
            predictions = [np.argmax(sequence, axis=-1) for sequence in sequences]
            measured[name]["flip_probability"][perturbation] = metrics.flip_probability(
                predictions, compare_with_first=compare_with_first
            )
            measured[name]["top5_distance"][perturbation] = metrics.top5_distance(
                sequences, compare_with_first=compare_with_first
            )
    if BASELINE in measured:
        baseline_values = measured.pop(BASELINE)
    models = {}
    for name, values in measured.items():
        row = {"export": classifiers[name].path, "resolution": classifiers[name].resolution} | values
        row["mean_flip_probability"] = float(np.mean(list(values["flip_probability"].values())))
        row["mean_top5_distance"] = float(np.mean(list(values["top5_distance"].values())))
        if baseline_values is not None:
            row |= _rates(values, baseline_values, perturbations)
        models[name] = row
    in_mean = [p for p in metrics.BENCHMARK_PERTURBATIONS if p in perturbations]
    return {
        "benchmark": "imagenet_p",
        "root": root,
        "perturbations": perturbations,
        "num_sequences": num_sequences,
        "normalisation": None if baseline is None else baseline,
        "baseline": baseline_values,
        "mfr_perturbations": in_mean,
        "complete": in_mean == list(metrics.BENCHMARK_PERTURBATIONS),
        "models": models,
    }


def _rates(values, baseline_values, perturbations) -> dict[str, Any]:
    """FR and T5D rate per perturbation, and their means over the benchmark perturbations."""
    rates = {}
    for key, rate_key in (("flip_probability", "flip_rate"), ("top5_distance", "top5_distance_rate")):
        reference = baseline_values.get(key, {})
        missing = [p for p in perturbations if p not in reference]
        if key == "flip_probability" and missing:
            raise ValueError(f"the baseline has no flip probability for {missing}")
        rates[rate_key] = {p: metrics.flip_rate(values[key][p], reference[p]) for p in perturbations if p in reference}
    in_mean = [p for p in metrics.BENCHMARK_PERTURBATIONS if p in perturbations] or list(perturbations)
    rates["mfr"] = metrics.mean_flip_rate(values["flip_probability"], baseline_values["flip_probability"], in_mean)
    t5d_reference = baseline_values.get("top5_distance", {})
    rates["mt5d"] = (
        metrics.mean_flip_rate(values["top5_distance"], t5d_reference, in_mean)
        if all(p in t5d_reference for p in in_mean)
        else None
    )
    return rates
