"""Robustness of exported models, the way the Noisy Student paper reports it.

  # Any dataset under the built-in ImageNet-C corruptions (digits: 500 test images):
  python -m pipelines.robustness --benchmarks=corruptions --dataset=digits --split=test \\
      --export=teacher=runs/digits/round0-teacher/export \\
      --export=student2=runs/digits/round2-student/export --output_dir=runs/digits/robustness

  # ImageNet-C, ImageNet-A (TFDS) and ImageNet-P (.npy sequences) for a 1000-class model:
  python -m pipelines.robustness --benchmarks=imagenet_c,imagenet_a,imagenet_p \\
      --export=b0=gs://bucket/b0/export --data_dir=gs://bucket/tfds \\
      --imagenet_p_dir=/data/imagenet-p --imagenet_p_baseline=alexnet_p.json --output_dir=out

Each benchmark writes `<benchmark>.json`, `.md` and `.png` into --output_dir and prints the
markdown. Flags are checked before any model is loaded; bad input ends with one
`error: ...` line and exit status 2. The library functions behind it (robustness/) are
what the tests and the iteration report call; see robustness/__init__.py for the layout.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from efficientnet.util import cli, fileio
from robustness import corruptions as corruption_library
from robustness import metrics, report
from robustness.corruption_report import corruption_report
from robustness.imagenet_a import imagenet_a_report
from robustness.imagenet_c import imagenet_c_report
from robustness.imagenet_p import imagenet_p_report

BENCHMARKS = ("corruptions", "imagenet_c", "imagenet_a", "imagenet_p")

_BENCHMARKS = flags.DEFINE_list("benchmarks", ["corruptions"], f"Any of {', '.join(BENCHMARKS)}.")
_EXPORTS = flags.DEFINE_multi_string(
    "export", [], "An exported model, as NAME=PATH or PATH (named after its directory); repeat for several."
)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the reports go (local or gs://).")
_DATASET = flags.DEFINE_string(
    "dataset", "digits", "corruptions: the dataset source spec (efficientnet/data/datasets.py)."
)
_SPLIT = flags.DEFINE_string("split", "test", "corruptions: the split.")
_BASELINE = flags.DEFINE_string(
    "baseline", None, "corruptions: export whose errors normalise CE; without it CE is the mean error."
)
_CORRUPTIONS = flags.DEFINE_list(
    "corruptions",
    None,
    "corruptions/imagenet_c: corruption names (default: the 15 benchmark ones; imagenet_c adds the prepared extras).",
)
_SEVERITIES = flags.DEFINE_list("severities", ["1", "2", "3", "4", "5"], "Severities to evaluate.")
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples", None, "Only the first N images of each split (imagenet_p: N sequences per perturbation)."
)
_SEED = flags.DEFINE_integer("seed", 0, "corruptions: noise seed of the built-in corruptions.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per forward pass.")
_CACHE_DIR = flags.DEFINE_string("cache_dir", None, "corruptions: keep corrupted images here for later runs.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data directory.")
_CLEAN_ERROR = flags.DEFINE_float(
    "clean_error", None, "imagenet_c: the model's clean ImageNet top-1 error (one export only); else measured."
)
_IMAGENET_P_DIR = flags.DEFINE_string(
    "imagenet_p_dir", None, "imagenet_p: ROOT of ROOT/<perturbation>/<class>/<sequence>.npy."
)
_IMAGENET_P_BASELINE = flags.DEFINE_string(
    "imagenet_p_baseline", None, "imagenet_p: JSON of baseline FP/T5D per perturbation, or a baseline export."
)
_PERTURBATIONS = flags.DEFINE_list("perturbations", None, "imagenet_p: perturbations (default: all present).")


def parse_exports(values: list[str]) -> dict[str, str]:
    """`NAME=PATH` or `PATH` → {name: path}; names must be unique."""
    exports = {}
    for value in values:
        name, separator, path = value.partition("=")
        if not separator:
            path, name = value, os.path.basename(os.path.normpath(value))
            if name == "export":
                name = os.path.basename(os.path.dirname(os.path.normpath(value)))
        if not name or not path:
            raise ValueError(f"--export={value!r}: expected NAME=PATH or PATH")
        if name in exports:
            raise ValueError(f"two exports are named {name!r}; use NAME=PATH to tell them apart")
        exports[name] = path
    return exports


def parse_severities(values: list[str]) -> list[int]:
    try:
        severities = sorted({int(value) for value in values})
    except ValueError:
        raise ValueError(f"--severities must be integers 1-5, got {values}") from None
    if not severities or severities[0] < 1 or severities[-1] > 5:
        raise ValueError(f"--severities must be integers 1-5, got {values}")
    return severities


def main(argv):
    if len(argv) > 1:
        raise ValueError(f"unexpected arguments {argv[1:]}")
    unknown = sorted(set(_BENCHMARKS.value) - set(BENCHMARKS))
    if unknown or not _BENCHMARKS.value:
        raise ValueError(f"unknown benchmark(s) {unknown}; valid: {', '.join(BENCHMARKS)}")
    exports = parse_exports(_EXPORTS.value)
    if not exports:
        raise ValueError("give at least one --export=NAME=PATH")
    if not _OUTPUT_DIR.value:
        raise ValueError("--output_dir is required")
    fileio.check_writable_dir(_OUTPUT_DIR.value, "--output_dir")
    severities = parse_severities(_SEVERITIES.value)
    if "corruptions" in _BENCHMARKS.value:
        for name in _CORRUPTIONS.value or []:
            corruption_library.CORRUPTIONS.get(name)
    if "imagenet_p" in _BENCHMARKS.value and not _IMAGENET_P_DIR.value:
        raise ValueError("--benchmarks=imagenet_p needs --imagenet_p_dir")
    if _CLEAN_ERROR.value is not None and len(exports) != 1:
        raise ValueError("--clean_error applies to a single --export")

    for benchmark in _BENCHMARKS.value:
        result = run_benchmark(benchmark, exports, severities)
        paths = report.write_report(result, _OUTPUT_DIR.value)
        print(report.markdown(result))
        print(f"[{benchmark}] wrote {', '.join(paths.values())}", file=sys.stderr)


def run_benchmark(benchmark: str, exports: dict[str, str], severities: list[int]) -> dict:
    if benchmark == "corruptions":
        return corruption_report(
            exports,
            _DATASET.value,
            _SPLIT.value,
            _BASELINE.value,
            severities=severities,
            corruptions=_CORRUPTIONS.value or metrics.BENCHMARK_CORRUPTIONS,
            max_examples=_MAX_EXAMPLES.value,
            seed=_SEED.value,
            batch_size=_BATCH_SIZE.value,
            cache_dir=_CACHE_DIR.value,
            data_dir=_DATA_DIR.value,
        )
    if benchmark == "imagenet_c":
        clean = None if _CLEAN_ERROR.value is None else {next(iter(exports)): _CLEAN_ERROR.value}
        return imagenet_c_report(
            exports,
            corruptions=_CORRUPTIONS.value,
            severities=severities,
            clean_errors=clean,
            data_dir=_DATA_DIR.value,
            max_examples=_MAX_EXAMPLES.value,
            batch_size=_BATCH_SIZE.value,
        )
    if benchmark == "imagenet_a":
        return imagenet_a_report(
            exports, data_dir=_DATA_DIR.value, max_examples=_MAX_EXAMPLES.value, batch_size=_BATCH_SIZE.value
        )
    return imagenet_p_report(
        exports,
        _IMAGENET_P_DIR.value,
        perturbations=_PERTURBATIONS.value,
        baseline=_IMAGENET_P_BASELINE.value,
        max_sequences=_MAX_EXAMPLES.value,
        batch_size=_BATCH_SIZE.value,
    )


if __name__ == "__main__":
    cli.run(main)
