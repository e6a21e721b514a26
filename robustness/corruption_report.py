"""ImageNet-C-style robustness of several models on any dataset, via the built-in corruptions.

  result = corruption_report({"teacher": "runs/digits/round0-teacher/export",
                              "student 1": "runs/digits/round1-student/export"},
                             dataset="digits", split="test")

Each image is put through the models' eval view (`preprocessing.eval_image`) at their
resolution, rounded to uint8, then corrupted once per (corruption, severity); every model at
that resolution sees the same corrupted pixels (models at another resolution get their own
corrupted copy, drawn with the same seed). Images are processed in chunks that fit in
memory, each corrupted chunk is evaluated by all models and dropped, so the cost is one
corruption pass plus one forward pass per model, and any dataset size works. With
`cache_dir`, corrupted chunks are stored as .npy files keyed by a hash of their clean pixels,
corruption, severity and seed, so a later report (another round's model) skips corrupting.

Scores (docs/robustness.md, robustness/metrics.py): the top-1 error per corruption and severity,
the clean error, and CE_c = Σ_s E(f, c, s) / Σ_s E(baseline, c, s) against a baseline model
evaluated on the same corrupted images (`baseline=` export path); without a baseline, CE_c is
the unnormalised mean error over severities, as the benchmark's code prints it. mCE is the
mean over the benchmark corruptions evaluated (extras are reported but not averaged in).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from efficientnet.data import corruptions as corruption_library
from efficientnet.data.datasets import open_source
from efficientnet.model.inference import Predictor
from efficientnet.util import fileio
from robustness import inference, metrics, report

BASELINE = "baseline"
# Bytes of clean uint8 images per chunk: 48 MiB is all 500 digits test images at 32 px
# (1.5 MiB) or ~330 ImageNet images at 224 px.
CHUNK_BYTES = 48 * 2**20
# Bump when a corruption's output changes, so cached corrupted images are not reused.
CORRUPTIONS_VERSION = 1


def corruption_report(
    export_paths: Mapping[str, str],
    dataset: str,
    split: str | None,
    baseline: str | None = None,
    *,
    severities: Sequence[int] = metrics.SEVERITIES,
    corruptions: Sequence[str] = metrics.BENCHMARK_CORRUPTIONS,
    max_examples: int | None = None,
    seed: int = 0,
    batch_size: int = 500,
    cache_dir: str | None = None,
    data_dir: str | None = None,
) -> dict[str, Any]:
    """Evaluates every export (and the baseline) on `dataset`/`split` under the corruptions.

    Args:
      export_paths: display name → export directory (e.g. one per round).
      dataset, split: any dataset source spec (efficientnet/data/datasets.py) and split.
      baseline: export whose errors normalise CE (ImageNet-C uses AlexNet, docs/robustness.md);
        None for unnormalised mean errors.
      severities, corruptions: what to evaluate (names from `corruptions.CORRUPTIONS`).
      max_examples: the first N examples of the split only.
      seed: the corruption noise seed.
      cache_dir: where corrupted chunks are kept between calls (local or gs://), or None.

    Returns:
      A JSON-able dict: per model the clean error, `errors[corruption]` (one per severity),
      `ce`, `mce`, and against a baseline also `relative_ce`, `relative_mce`; plus the
      settings and `timing` (seconds spent preparing, corrupting, predicting).
    """
    start = time.perf_counter()
    if not export_paths:
        raise ValueError("corruption_report needs at least one export")
    if BASELINE in export_paths:
        raise ValueError(f"{BASELINE!r} is reserved for the baseline model; rename that export")
    corruptions = list(corruptions)
    for name in corruptions:
        corruption_library.CORRUPTIONS.get(name)
    severities = sorted(set(severities))
    if not severities or not set(severities) <= set(metrics.SEVERITIES):
        raise ValueError(f"severities must be a non-empty subset of {metrics.SEVERITIES}, got {severities}")
    all_paths = dict(export_paths) | ({BASELINE: baseline} if baseline else {})
    classifiers = inference.load_classifiers(all_paths)
    source = open_source(dataset, data_dir=data_dir)
    inference.require_num_classes(classifiers, source.num_classes, dataset)

    timing = {"prepare_s": time.perf_counter() - start, "load_images_s": 0.0, "corrupt_s": 0.0, "predict_s": 0.0}
    # One evaluation per distinct export, however many names (baseline included) point at it.
    unique = {c.path: c for c in classifiers.values()}
    tally = _count_correct(
        unique, source, split, corruptions, severities, max_examples, seed, batch_size, cache_dir, timing
    )
    models = {}
    for name, classifier in classifiers.items():
        counts = tally[classifier.path]
        total = counts["num_examples"]
        models[name] = {
            "export": classifier.path,
            "resolution": classifier.resolution,
            "num_examples": total,
            "clean_error": 1 - counts["clean"] / total,
            "errors": {c: [1 - counts[(c, s)] / total for s in severities] for c in corruptions},
        }
    reference = models.get(BASELINE)
    for row in models.values():
        row |= metrics.baseline_scores(
            row["errors"],
            row["clean_error"],
            None if reference is None else reference["errors"],
            None if reference is None else reference["clean_error"],
            corruptions,
        )
    baseline_row = models.pop(BASELINE, None)
    timing["total_s"] = time.perf_counter() - start
    images_per_resolution = {c.resolution: tally[c.path]["num_examples"] for c in unique.values()}
    evaluations = sum(tally[path]["num_examples"] for path in unique) * (len(corruptions) * len(severities) + 1)
    return {
        "benchmark": "corruptions",
        "dataset": dataset,
        "split": split,
        "seed": seed,
        "severities": severities,
        "corruptions": corruptions,
        "normalisation": "the baseline model" if baseline else "unnormalised mean error",
        "baseline": baseline_row,
        "models": models,
        "timing": {key: round(value, 2) for key, value in timing.items() if key.endswith("_s")}
        | {
            "corrupted_images": sum(images_per_resolution.values()) * len(corruptions) * len(severities),
            "model_evaluations": evaluations,
            "cache_hits": timing["cache_hits"],
        },
    }


def _count_correct(
    classifiers: Mapping[str, Predictor],
    source,
    split: str | None,
    corruptions: Sequence[str],
    severities: Sequence[int],
    max_examples: int | None,
    seed: int,
    batch_size: int,
    cache_dir: str | None,
    timing: dict[str, float],
) -> dict[str, dict]:
    """Correct top-1 counts per export: "clean", (corruption, severity), and "num_examples".

    Per resolution, chunks of clean eval views are corrupted once per (corruption, severity)
    and every classifier at that resolution is run on the same corrupted chunk.
    """
    tally = {
        path: {"clean": 0, "num_examples": 0} | dict.fromkeys(_keys(corruptions, severities), 0) for path in classifiers
    }
    timing["cache_hits"] = 0
    for resolution in sorted({c.resolution for c in classifiers.values()}):
        group = {path: c for path, c in classifiers.items() if c.resolution == resolution}
        loading = time.perf_counter()
        chunks = inference.view_batches(
            f"corruptions at {resolution} px",
            source,
            split,
            [resolution],
            inference.eval_view,
            batch_size=max(1, CHUNK_BYTES // (resolution * resolution * 3)),
            max_examples=max_examples,
            as_uint8=True,
        )
        for chunk_index, (views, labels) in enumerate(chunks):
            images = views[resolution]
            timing["load_images_s"] += time.perf_counter() - loading
            clock = time.perf_counter()
            for path, classifier in group.items():
                tally[path]["num_examples"] += len(labels)
                tally[path]["clean"] += int(inference.top1_correct(classifier.logits(images, batch_size), labels).sum())
            timing["predict_s"] += time.perf_counter() - clock
            for key in _keys(corruptions, severities):
                clock = time.perf_counter()
                corrupted, hit = _corrupted_chunk(images, *key, seed, chunk_index, cache_dir)
                timing["cache_hits"] += hit
                timing["corrupt_s"] += time.perf_counter() - clock
                clock = time.perf_counter()
                for path, classifier in group.items():
                    tally[path][key] += int(
                        inference.top1_correct(classifier.logits(corrupted, batch_size), labels).sum()
                    )
                timing["predict_s"] += time.perf_counter() - clock
            loading = time.perf_counter()
        if not any(tally[path]["num_examples"] for path in group):
            raise ValueError(f"split {split!r} of {source.spec!r} is empty")
    return tally


def _keys(corruptions: Sequence[str], severities: Sequence[int]) -> list[tuple[str, int]]:
    return [(corruption, severity) for corruption in corruptions for severity in severities]


def _corrupted_chunk(
    images: np.ndarray, corruption: str, severity: int, seed: int, chunk_index: int, cache_dir: str | None
) -> tuple[np.ndarray, int]:
    """The corrupted chunk, from `cache_dir` when an identical one was made before."""
    if cache_dir is None:
        return corruption_library.corrupt(images, corruption, severity, seed, stream=chunk_index), 0
    fingerprint = hashlib.sha1(images.tobytes())
    fingerprint.update(f"{images.shape}|{corruption}|{severity}|{seed}|{chunk_index}|{CORRUPTIONS_VERSION}".encode())
    path = os.path.join(cache_dir, f"{corruption}-{severity}-{fingerprint.hexdigest()[:20]}.npy")
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "rb") as f:
            return np.load(io.BytesIO(f.read())), 1
    corrupted = corruption_library.corrupt(images, corruption, severity, seed, stream=chunk_index)
    buffer = io.BytesIO()
    np.save(buffer, corrupted)
    fileio.write_bytes(path, buffer.getvalue())
    return corrupted, 0


def corruption_section(
    export_paths: Mapping[str, str],
    dataset: str,
    split: str | None,
    output_dir: str,
    *,
    baseline: str | None = None,
    basename: str = "robustness",
    heading_level: int = 2,
    **options,
) -> dict[str, Any]:
    """`corruption_report` plus its files, for embedding in another report (e.g. the iteration's).

    Writes `<basename>.json/.md/.png` into `output_dir` and returns {"result", "markdown",
    "paths"}; "markdown" is the section (tables and the plot link, relative to output_dir).
    `options` go to `corruption_report` (severities, corruptions, max_examples, seed, cache_dir…).
    """
    result = corruption_report(export_paths, dataset, split, baseline, **options)
    paths = report.write_report(result, output_dir, basename)
    text = report.markdown(result, heading_level=heading_level, image=os.path.basename(paths["png"]))
    return {"result": result, "markdown": text, "paths": paths}
