"""ImageNet-P: prediction stability along perturbation sequences (docs/robustness.md#imagenet-p).

ImageNet-P is not in TFDS. The benchmark (Hendrycks & Dietterich 2019) publishes each
sequence as an .mp4 of 224 px frames, laid out as

  ROOT/<perturbation>/<wnid>/<name>.mp4

which is read directly: PyAV (the `av` package, whose wheels carry their own FFmpeg) decodes
each video to RGB uint8 frames, as the benchmark's OpenCV loader does. Sequences already
converted to NumPy work too:

  ROOT/<perturbation>/<class>/<sequence>.npy     uint8 array [frames, H, W, 3]

(for .npy the class level is optional and not checked: every .npy below ROOT/<perturbation>
is a sequence). Every sequence file below ROOT/<perturbation> is used, in sorted path order.
An .mp4 must sit in a folder named by one of the 1000 ImageNet wnids
(robustness/imagenet_classes.py); another folder name is an error naming it. Perturbation
folder names are the benchmark's: gaussian_noise, shot_noise, motion_blur, zoom_blur, snow,
brightness, translate, rotate, tilt, scale (and the extras speckle_noise, gaussian_blur,
spatter, shear). Labels are not needed: flip probability measures whether the prediction
changes, not whether it is right.

Frames are seen whole at each model's resolution (they are already 224 px crops). Videos are
decoded a few ahead in background threads (FFmpeg releases the GIL) while the models run;
one sequence's frames are in memory at a time per thread. Scores per perturbation: flip
probability FP and top-5 distance T5D, comparing every frame with the first one for the noise
sequences and with the previous one otherwise; with a baseline, the flip rate
FR = FP / FP(baseline), mFR and mT5D over the perturbations evaluated. The result is
`comparable` with published numbers only with all ten benchmark perturbations, each with the
1000 wnid folders of the published .mp4 layout, and no `max_sequences`; `missing` and
`not_comparable_because` say what is not there. (A published mFR also needs AlexNet's flip
probabilities as the baseline; which baseline was used is in `normalisation`.)

Baseline. The paper normalises by AlexNet, but the benchmark's code does not contain
AlexNet's flip probabilities (the authors point to a spreadsheet, hendrycks/robustness issue
#49), so they are not hard-coded here: pass them as a JSON file
`{"flip_probability": {perturbation: FP}, "top5_distance": {perturbation: T5D}}`, or pass a
baseline export, which is evaluated on the same sequences. Without a baseline only the raw
FP / T5D and their means are reported.
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from efficientnet.util import fileio
from efficientnet.util.progress import ProgressLine
from robustness import imagenet_classes, inference, metrics, published_files

BASELINE = "baseline"
SEQUENCE_EXTENSIONS = (".npy", ".mp4")
# Sequences decoded ahead of the models, in as many threads.
DECODE_AHEAD = 4


def sequence_paths(root: str, perturbation: str, max_sequences: int | None = None) -> list[str]:
    """Sorted .mp4 and .npy sequence files under ROOT/<perturbation> (any depth).

    An .mp4's folder must be a wnid (the published layout); ValueError naming it otherwise.
    """
    directory = os.path.join(root, perturbation)
    if not tf.io.gfile.isdir(directory):
        raise FileNotFoundError(f"no ImageNet-P folder {directory!r}")
    paths = []
    for folder, _, files in tf.io.gfile.walk(directory):
        videos = [name for name in files if name.lower().endswith(".mp4")]
        if videos:
            imagenet_classes.folder_classes(os.path.dirname(folder), [os.path.basename(folder)])
        paths += [os.path.join(folder, name) for name in files if name.lower().endswith(SEQUENCE_EXTENSIONS)]
    if not paths:
        raise ValueError(f"{directory!r} holds no .mp4 or .npy sequences")
    paths.sort()
    return paths[:max_sequences] if max_sequences else paths


def load_sequence(path: str) -> np.ndarray:
    """The frames of one sequence, uint8 [frames, H, W, 3] (RGB), from an .mp4 or an .npy."""
    if path.lower().endswith(".mp4"):
        frames = read_video(path)
    else:
        with tf.io.gfile.GFile(path, "rb") as f:
            frames = np.load(f)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(f"{path}: expected a uint8 array [frames >= 2, H, W, 3], got {frames.dtype} {frames.shape}")
    return frames


def read_video(path: str) -> np.ndarray:
    """Every frame of a video file as RGB uint8 [frames, H, W, 3] (PyAV; local or gs://)."""
    import av  # only ImageNet-P reads videos; the rest of the project never imports it

    with tf.io.gfile.GFile(path, "rb") as f:
        try:
            with av.open(f) as container:
                frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        except (av.error.FFmpegError, ValueError, IndexError) as error:
            raise ValueError(f"{path}: not a readable video ({error})") from None
    if not frames:
        raise ValueError(f"{path}: the video has no frames")
    return np.stack(frames)


def decoded_sequences(paths: Sequence[str]) -> Iterator[np.ndarray]:
    """`load_sequence` of each path, in order, decoded up to DECODE_AHEAD ahead in threads."""
    with concurrent.futures.ThreadPoolExecutor(DECODE_AHEAD) as pool:
        pending = [pool.submit(load_sequence, path) for path in paths[:DECODE_AHEAD]]
        for index in range(len(paths)):
            frames = pending.pop(0).result()
            if index + DECODE_AHEAD < len(paths):
                pending.append(pool.submit(load_sequence, paths[index + DECODE_AHEAD]))
            yield frames


def missing_parts(root: str, paths_of: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """The benchmark perturbations not evaluated, and the wnid folders missing per perturbation.

    Class folders are only checked in the published layout (a perturbation holding .mp4
    files): .npy conversions may be laid out freely, so their classes count as unchecked (None).
    """
    missing = {"perturbations": [p for p in metrics.BENCHMARK_PERTURBATIONS if p not in paths_of], "classes": {}}
    for perturbation, paths in paths_of.items():
        if not any(path.lower().endswith(".mp4") for path in paths):
            missing["classes"][perturbation] = None
            continue
        present = published_files.subfolders(os.path.join(root, perturbation))
        absent = sorted(set(imagenet_classes.imagenet_wnids()) - set(present))
        if absent:
            missing["classes"][perturbation] = absent
    return missing


def not_comparable_reasons(missing: Mapping[str, Any], max_sequences: int | None) -> list[str]:
    reasons = []
    if missing["perturbations"]:
        reasons.append(f"benchmark perturbations missing: {', '.join(missing['perturbations'])}")
    for perturbation, absent in missing["classes"].items():
        if absent is None:
            reasons.append(f"{perturbation}: not the published .mp4 layout, classes unchecked")
        else:
            reasons.append(f"{perturbation} misses {len(absent)} of 1000 classes: {published_files.named(absent)}")
    if max_sequences:
        reasons.append(f"only the first {max_sequences} sequences of each perturbation (--max_examples)")
    return reasons


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
    unknown = sorted(set(perturbations) - {*metrics.BENCHMARK_PERTURBATIONS, *metrics.EXTRA_PERTURBATIONS})
    if unknown:
        valid = [*metrics.BENCHMARK_PERTURBATIONS, *metrics.EXTRA_PERTURBATIONS]
        raise ValueError(f"unknown ImageNet-P perturbation(s) {unknown}; valid: {valid}")
    # Listed (and the wnid folders checked) before any model is loaded.
    all_paths_of = {p: sequence_paths(root, p, max_sequences) for p in perturbations}
    missing = missing_parts(root, all_paths_of)
    classifiers = inference.load_classifiers(all_paths)
    measured = {name: {"flip_probability": {}, "top5_distance": {}} for name in classifiers}
    num_sequences = {}
    for perturbation in perturbations:
        paths = all_paths_of[perturbation]
        num_sequences[perturbation] = len(paths)
        logits = {name: [] for name in classifiers}
        progress = ProgressLine(f"imagenet_p {perturbation}", len(paths), unit="sequences")
        for frames in decoded_sequences(paths):
            frames = tf.convert_to_tensor(frames)
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
    reasons = not_comparable_reasons(missing, max_sequences)
    return {
        "benchmark": "imagenet_p",
        "root": root,
        "data_source": f"ImageNet-P sequences under {root}",
        "comparable": not reasons,
        "not_comparable_because": reasons,
        "missing": missing,
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
