"""ImageNet-C from TFDS, scored against AlexNet as in the benchmark (docs/robustness.md#imagenet-c).

Data: `imagenet2012_corrupted/<corruption>_<severity>`, split `validation` (TFDS builds it
from the ImageNet validation tarball, which has to be placed in TFDS's manual directory; the
builder applies the corruption to the 224 px eval crop). The images are therefore already
cropped, and each model sees them resized whole to its resolution (inference.whole_view).

Scores per model: top-1 error per corruption and severity, CE_c and mCE normalised by
AlexNet's errors, relative CE_c and relative mCE (these need the model's clean error: pass
it, or it is measured on `tfds:imagenet2012` validation with the eval crop), and the
unnormalised mCE. The 15 benchmark corruptions are evaluated by default, plus each of the
four held-out extras whose TFDS data is prepared; extras never enter mCE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from absl import logging

from efficientnet.data.datasets import open_source
from robustness import inference, metrics

CLEAN_DATASET = "tfds:imagenet2012"
SPLIT = "validation"


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
    unknown = sorted(set(corruptions) - {*metrics.BENCHMARK_CORRUPTIONS, *metrics.EXTRA_CORRUPTIONS})
    if unknown:
        valid = [*metrics.BENCHMARK_CORRUPTIONS, *metrics.EXTRA_CORRUPTIONS]
        raise ValueError(f"unknown ImageNet-C corruption(s) {unknown}; valid: {valid}")
    classifiers = inference.load_classifiers(export_paths)
    inference.require_num_classes(classifiers, 1000, "ImageNet-C")
    clean_errors = dict(clean_errors or {})
    missing_clean = {name: c for name, c in classifiers.items() if name not in clean_errors}
    if missing_clean:
        clean_source = open_source(CLEAN_DATASET, data_dir=data_dir)
        measured = _errors(missing_clean, clean_source, inference.eval_view, batch_size, max_examples)
        clean_errors |= measured
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
        "split": SPLIT,
        "severities": severities,
        "corruptions": list(corruptions),
        "normalisation": "AlexNet",
        "alexnet": {"mean_errors": metrics.ALEXNET_MEAN_ERRORS, "clean_error": metrics.ALEXNET_CLEAN_ERROR},
        "num_examples": num_examples,
        "models": models,
    }


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
