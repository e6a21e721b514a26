"""ImageNet-C, scored against AlexNet as in the benchmark (docs/robustness.md#imagenet-c).

Two data sources:

  imagenet_c_files_report  the published files, ROOT/<corruption>/<severity>/<wnid>/<name>.JPEG
                           (Hendrycks & Dietterich 2019): the only source whose mCE is
                           comparable with published numbers, and only when all 15 benchmark
                           corruptions × 5 severities × 1000 classes are there (`comparable`;
                           what is missing is listed in `missing` and in the report).
  imagenet_c_report        TFDS `imagenet2012_corrupted/<corruption>_<severity>`, split
                           `validation`: TFDS builds it from the ImageNet validation tarball
                           (placed in its manual directory) with its own re-implementation of
                           the corruptions, so these are regenerated corruptions, never
                           comparable with published mCE, and the report says so.

Both hold 224 px centre crops, which each model sees resized whole to its resolution
(inference.whole_view), as the benchmark's ImageNet-C/test.py feeds them unchanged.

Scores per model: top-1 error per corruption and severity, CE_c and mCE normalised by
AlexNet's errors, relative CE_c and relative mCE (these need the model's clean error: pass
it, or it is measured on `tfds:imagenet2012` validation with the eval crop), and the
unnormalised mCE. The 15 benchmark corruptions are evaluated by default, plus each of the
four held-out extras whose TFDS data is prepared; extras never enter mCE.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging

from efficientnet.data.datasets import open_source
from robustness import inference, metrics, published_files

CLEAN_DATASET = "tfds:imagenet2012"
SPLIT = "validation"
TFDS_SOURCE = "regenerated corruptions (TFDS imagenet2012_corrupted), not comparable with published mCE"
ALL_CORRUPTIONS = (*metrics.BENCHMARK_CORRUPTIONS, *metrics.EXTRA_CORRUPTIONS)


def corrupted_dataset(corruption: str, severity: int) -> str:
    return f"tfds:imagenet2012_corrupted/{corruption}_{severity}"


def available_extras(severities: Sequence[int], data_dir: str | None = None) -> list[str]:
    """The extra corruptions whose TFDS data is prepared for every severity asked for."""
    import tensorflow_datasets as tfds

    return [
        name
        for name in metrics.EXTRA_CORRUPTIONS
        if all(tfds.builder(f"imagenet2012_corrupted/{name}_{s}", data_dir=data_dir).is_prepared() for s in severities)
    ]


def imagenet_c_report(
    export_paths: Mapping[str, str],
    *,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = metrics.SEVERITIES,
    clean_errors: Mapping[str, float] | None = None,
    data_dir: str | None = None,
    max_examples: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Evaluates 1000-class exports on ImageNet-C.

    Args:
      export_paths: display name → export directory.
      corruptions: ImageNet-C names; None for the 15 benchmark ones plus the prepared extras.
      severities: 1..5 by default; AlexNet normalisation needs all five (metrics.py).
      clean_errors: name → clean top-1 error on ImageNet validation; models without one are
        evaluated on `tfds:imagenet2012` validation (same `max_examples`).
      max_examples: the first N images of each split (for smoke runs; such an mCE is not
        comparable with published numbers, nor is one over fewer corruptions: see `complete`).
    """
    severities = sorted(set(severities))
    if corruptions is None:
        corruptions = [*metrics.BENCHMARK_CORRUPTIONS, *available_extras(severities, data_dir)]
    check_corruptions(corruptions)
    classifiers = inference.load_classifiers(export_paths)
    inference.require_num_classes(classifiers, 1000, "ImageNet-C")
    clean_errors = measure_clean_errors(classifiers, clean_errors, data_dir, batch_size, max_examples)
    errors = {name: {c: [] for c in corruptions} for name in classifiers}
    num_examples = {}
    for corruption in corruptions:
        for severity in severities:
            spec = corrupted_dataset(corruption, severity)
            logging.info("evaluating %s", spec)
            source = open_source(spec, data_dir=data_dir)
            config_errors = _errors(classifiers, source, inference.whole_view, batch_size, max_examples, num_examples)
            for name, value in config_errors.items():
                errors[name][corruption].append(value)
    models = {}
    for name, classifier in classifiers.items():
        models[name] = {
            "export": classifier.path,
            "resolution": classifier.resolution,
            "clean_error": clean_errors[name],
            "errors": errors[name],
        } | metrics.imagenet_c_scores(errors[name], clean_errors[name], severities=severities)
    return {
        "benchmark": "imagenet_c",
        "dataset": "tfds:imagenet2012_corrupted",
        "data_source": TFDS_SOURCE,
        "comparable": False,
        "not_comparable_because": [
            "TFDS builds these images with its own implementation of the corruptions; the published ImageNet-C "
            "images differ (use the published files, --imagenet_c_dir)"
        ],
        "split": SPLIT,
        "severities": severities,
        "corruptions": list(corruptions),
        "normalisation": "AlexNet",
        "alexnet": {"mean_errors": metrics.ALEXNET_MEAN_ERRORS, "clean_error": metrics.ALEXNET_CLEAN_ERROR},
        "num_examples": num_examples,
        "models": models,
    }


def check_corruptions(corruptions: Sequence[str]) -> None:
    unknown = sorted(set(corruptions) - set(ALL_CORRUPTIONS))
    if unknown:
        raise ValueError(f"unknown ImageNet-C corruption(s) {unknown}; valid: {list(ALL_CORRUPTIONS)}")


def measure_clean_errors(
    classifiers, clean_errors, data_dir, batch_size, max_examples, *, only_if_prepared: bool = False
) -> dict[str, float | None]:
    """The given clean errors, the others measured on `tfds:imagenet2012` validation (eval crop).

    With `only_if_prepared`, models without a given clean error get None (no relative scores)
    when that TFDS dataset is not prepared, instead of an error.
    """
    clean_errors = dict(clean_errors or {})
    missing = {name: c for name, c in classifiers.items() if name not in clean_errors}
    if missing and only_if_prepared:
        import tensorflow_datasets as tfds

        if not tfds.builder(CLEAN_DATASET.removeprefix("tfds:"), data_dir=data_dir).is_prepared():
            logging.warning("%s is not prepared: no relative CE without --clean_error", CLEAN_DATASET)
            return clean_errors | dict.fromkeys(missing)
    if missing:
        clean_source = open_source(CLEAN_DATASET, data_dir=data_dir)
        clean_errors |= _errors(missing, clean_source, inference.eval_view, batch_size, max_examples)
    return clean_errors


def _errors(classifiers, source, view, batch_size, max_examples, counts=None) -> dict[str, float]:
    """Top-1 error of every classifier on the source's validation split (one data pass)."""
    wrong = dict.fromkeys(classifiers, 0)
    total = 0
    resolutions = [c.resolution for c in classifiers.values()]
    for views, labels in inference.view_batches(
        "imagenet_c", source, SPLIT, resolutions, view, batch_size=batch_size, max_examples=max_examples
    ):
        total += len(labels)
        for name, classifier in classifiers.items():
            wrong[name] += int((~inference.top1_correct(classifier.logits(views[classifier.resolution]), labels)).sum())
    if total == 0:
        raise ValueError(f"split {SPLIT!r} of {source.spec!r} is empty")
    if counts is not None:
        counts[source.spec] = total
    return {name: value / total for name, value in wrong.items()}


# --------------------------------------------------------------------------- published files


def imagenet_c_layout(
    root: str, corruptions: Sequence[str] | None = None, severities: Sequence[int] = metrics.SEVERITIES
) -> dict[str, Any]:
    """The class folders of the published ImageNet-C under `root`, and what is missing.

    Args:
      corruptions: what to evaluate; None for the 15 benchmark corruptions plus the extras present.
      severities: what to evaluate, 1-5 by default.

    Returns a dict: `corruptions` and `severities` evaluated, `groups` [(corruption, severity)]
    in stream order, `folders` (published_files.ClassFolder, group = index into groups), and
    `missing`: the benchmark corruptions not there (or not asked for), the severities missing
    per corruption, the wnids missing per `corruption/severity`, the extras asked for but
    absent. A folder that is not an ImageNet-C corruption, a severity or a wnid is an error
    that names it.
    """
    published_files.require_dir(root, "--imagenet_c_dir")
    present = published_files.subfolders(root)
    unknown = [name for name in present if name not in ALL_CORRUPTIONS]
    if unknown:
        raise ValueError(
            f"unknown ImageNet-C corruption folder(s) {unknown} in {root!r}; valid: {list(ALL_CORRUPTIONS)}"
        )
    if corruptions is None:
        corruptions = [*metrics.BENCHMARK_CORRUPTIONS, *(c for c in metrics.EXTRA_CORRUPTIONS if c in present)]
    check_corruptions(corruptions)
    severities = sorted(set(severities))
    missing = {
        "corruptions": [c for c in metrics.BENCHMARK_CORRUPTIONS if c not in present or c not in corruptions],
        "severities": {},
        "classes": {},
        # Extras asked for but not there: listed, not part of mCE, so no reason against comparing.
        "extras": [c for c in corruptions if c in metrics.EXTRA_CORRUPTIONS and c not in present],
    }
    groups, folders = [], []
    for corruption in corruptions:
        if corruption not in present:
            continue
        directory = os.path.join(root, corruption)
        severity_names = published_files.subfolders(directory)
        wrong = [name for name in severity_names if name not in {str(s) for s in metrics.SEVERITIES}]
        if wrong:
            raise ValueError(f"unknown severity folder(s) {wrong} in {directory!r}; severities are 1-5")
        absent = [s for s in severities if str(s) not in severity_names]
        if absent:
            missing["severities"][corruption] = absent
        for severity in severities:
            if severity in absent:
                continue
            group = len(groups)
            groups.append((corruption, severity))
            found, missing_wnids = published_files.class_folders(
                os.path.join(directory, str(severity)), what="ImageNet-C", group=group
            )
            folders += found
            if missing_wnids:
                missing["classes"][f"{corruption}/{severity}"] = missing_wnids
    if not folders:
        raise ValueError(f"{root!r} holds none of the ImageNet-C folders asked for ({list(corruptions)})")
    return {"corruptions": list(corruptions), "severities": severities, "groups": groups, "folders": folders} | {
        "missing": missing
    }


def imagenet_c_files_report(
    export_paths: Mapping[str, str],
    root: str,
    *,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = metrics.SEVERITIES,
    clean_errors: Mapping[str, float] | None = None,
    data_dir: str | None = None,
    max_examples: int | None = None,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Evaluates 1000-class exports on the published ImageNet-C files under `root`.

    One parallel stream over every image (published_files.labeled_batches) with one progress
    line; per batch only the wrong predictions per (corruption, severity) are counted. Scores
    as `imagenet_c_report`; `comparable` is true only for all 15 corruptions × 5 severities
    × 1000 classes, every image read, no `max_examples`; `not_comparable_because` says why not.

    Args:
      clean_errors: name → clean top-1 error; models without one are measured on
        `tfds:imagenet2012` validation when it is prepared, else get no relative scores.
      max_examples: the first N images of each corruption and severity (smoke runs).
    """
    layout = imagenet_c_layout(root, corruptions, severities)
    groups, folders = layout["groups"], layout["folders"]
    seen = published_files.count_images(folders, len(groups), max_examples)
    classifiers = inference.load_classifiers(export_paths)
    inference.require_num_classes(classifiers, 1000, "ImageNet-C")
    clean_errors = measure_clean_errors(
        classifiers, clean_errors, data_dir, batch_size, max_examples, only_if_prepared=True
    )
    wrong = {name: np.zeros(len(groups), np.int64) for name in classifiers}
    counted = np.zeros(len(groups), np.int64)
    resolutions = [c.resolution for c in classifiers.values()]
    stream = published_files.labeled_batches(
        f"imagenet_c on {root}",
        folders,
        resolutions,
        inference.whole_view,
        batch_size=batch_size,
        total=int(seen.sum()),
        max_per_group=max_examples,
    )
    for views, labels, batch_groups in stream:
        counted += np.bincount(batch_groups, minlength=len(groups))
        for name, classifier in classifiers.items():
            correct = inference.top1_correct(classifier.logits(views[classifier.resolution], batch_size), labels)
            wrong[name] += np.bincount(batch_groups[~correct], minlength=len(groups))
    empty = [f"{c}/{s}" for (c, s), n in zip(groups, counted, strict=True) if n == 0]
    if empty:
        raise ValueError(f"ImageNet-C folder(s) {empty} under {root!r} hold no readable image")
    position = {key: index for index, key in enumerate(groups)}
    severities = layout["severities"]
    evaluated = [c for c in layout["corruptions"] if any((c, s) in position for s in severities)]
    models = {}
    for name, classifier in classifiers.items():
        errors = {
            c: [
                float(wrong[name][position[c, s]] / counted[position[c, s]]) if (c, s) in position else None
                for s in severities
            ]
            for c in evaluated
        }
        models[name] = {
            "export": classifier.path,
            "resolution": classifier.resolution,
            "clean_error": clean_errors[name],
            "errors": errors,
        } | metrics.imagenet_c_scores(errors, clean_errors[name], severities=severities)
    undecodable = int((seen - counted).sum())  # files listed but not scored
    reasons = not_comparable_reasons(layout["missing"], severities, max_examples, undecodable)
    return {
        "benchmark": "imagenet_c",
        "dataset": f"files:{root}",
        "data_source": f"published ImageNet-C files under {root}",
        "comparable": not reasons,
        "not_comparable_because": reasons,
        "missing": layout["missing"],
        "severities": severities,
        "corruptions": evaluated,
        "normalisation": "AlexNet",
        "alexnet": {"mean_errors": metrics.ALEXNET_MEAN_ERRORS, "clean_error": metrics.ALEXNET_CLEAN_ERROR},
        "num_examples": {f"{c}/{s}": int(n) for (c, s), n in zip(groups, counted, strict=True)},
        "undecodable_images": undecodable,
        "models": models,
    }


def not_comparable_reasons(
    missing: Mapping[str, Any], severities: Sequence[int], max_examples: int | None, undecodable: int
) -> list[str]:
    """Why an mCE from these files is not the benchmark's, one sentence each; [] when it is."""
    reasons = []
    if missing["corruptions"]:
        reasons.append(f"benchmark corruptions missing: {', '.join(missing['corruptions'])}")
    if tuple(severities) != metrics.SEVERITIES:
        reasons.append(f"severities evaluated: {', '.join(map(str, severities))} (the benchmark's mCE needs 1-5)")
    for corruption, absent in missing["severities"].items():
        reasons.append(f"{corruption} misses severities {', '.join(map(str, absent))}")
    for key, wnids in missing["classes"].items():
        if key.split("/")[0] not in metrics.BENCHMARK_CORRUPTIONS:
            continue  # an extra's missing classes are listed in `missing` but do not touch mCE
        reasons.append(f"{key} misses {len(wnids)} of 1000 classes: {published_files.named(wnids)}")
    if max_examples is not None:
        reasons.append(f"only the first {max_examples} images of each corruption and severity (--max_examples)")
    if undecodable:
        reasons.append(f"{undecodable} undecodable image(s) left out")
    return reasons
