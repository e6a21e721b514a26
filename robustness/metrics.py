"""The robustness formulas of ImageNet-C/-P and ImageNet-A, as pure functions.

Everything here is NumPy on plain numbers, so each formula is unit-tested against
hand-computed examples (tests/test_robustness_metrics.py). Errors are fractions in [0, 1];
reports multiply by 100 the way the papers print them.

ImageNet-C (Hendrycks & Dietterich, ICLR 2019; docs/robustness.md). For a model f, a
corruption c and severities s = 1..5 with top-1 error E(f, c, s):

  CE_c          = Σ_s E(f, c, s) / Σ_s E(base, c, s)
  relative CE_c = Σ_s (E(f, c, s) − E_clean(f)) / Σ_s (E(base, c, s) − E_clean(base))
  mCE           = mean of CE_c over the 15 benchmark corruptions

The normaliser `base` is AlexNet on ImageNet-C. The benchmark publishes AlexNet's *mean* error
over the five severities per corruption (ALEXNET_MEAN_ERRORS), so its sum is 5× that number;
`alexnet_error_sum` makes the conversion explicit, and the CE functions always take sums of
the same severities on both sides (a ratio of sums, not a mean of per-severity ratios).

ImageNet-P: flip probability, top-5 distance and their AlexNet-normalised rates; ImageNet-A:
top-1 on the 200-class restriction and calibration errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

# Defined with the corruption functions, in the data layer, where the digits source also uses them.
from efficientnet.data.corruptions import BENCHMARK_CORRUPTIONS, SEVERITIES

# Held-out corruptions of ImageNet-C, reported but never part of mCE.
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")

# AlexNet's top-1 error on ImageNet-C, averaged over severities 1–5 (docs/robustness.md#imagenet-c; the
# same numbers as ALEXNET_ERR in google-research/augmix imagenet.py, "taken from
# https://github.com/hendrycks/robustness").
ALEXNET_MEAN_ERRORS = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
}
# AlexNet's clean top-1 error: torchvision's alexnet-owt-4df8aa71 checkpoint (the one the
# benchmark's ImageNet-C/test.py loads) has 56.522% top-1, i.e. 0.43478 error; the paper
# prints 43.5. The benchmark repository itself does not hard-code it. Only relative CE uses it.
ALEXNET_CLEAN_ERROR = 0.43478

# ImageNet-P (docs/robustness.md#imagenet-p): the noise sequences compare every frame with the first one,
# the others compare consecutive frames. The benchmark's test.py decides by "noise" in the
# name, which also covers the extra speckle_noise.
BENCHMARK_PERTURBATIONS = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "snow",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)
EXTRA_PERTURBATIONS = ("speckle_noise", "gaussian_blur", "spatter", "shear")
TOP5 = 5


def is_noise_perturbation(name: str) -> bool:
    return "noise" in name


# --------------------------------------------------------------------------- ImageNet-C


def alexnet_error_sum(corruption: str, num_severities: int = len(SEVERITIES)) -> float:
    """Σ_s E(AlexNet, c, s) over the five severities: 5 × the published mean error.

    Only defined for all five severities: the per-severity AlexNet errors are not published
    in the benchmark's code, so a subset of severities cannot be normalised by AlexNet.
    """
    if corruption not in ALEXNET_MEAN_ERRORS:
        raise ValueError(f"no AlexNet error for {corruption!r}; known: {sorted(ALEXNET_MEAN_ERRORS)}")
    if num_severities != len(SEVERITIES):
        raise ValueError(
            f"AlexNet's errors are published as a mean over severities 1-5; normalising {num_severities} "
            "severities by it would be wrong (evaluate all five)"
        )
    return len(SEVERITIES) * ALEXNET_MEAN_ERRORS[corruption]


def corruption_error(errors: Sequence[float], baseline_errors: Sequence[float] | float | None = None) -> float:
    """CE_c = Σ_s E(f, c, s) / Σ_s E(base, c, s); unnormalised (mean over s) without a baseline.

    Args:
      errors: E(f, c, s) for each evaluated severity s.
      baseline_errors: the baseline's E(base, c, s) for the same severities, or directly the
        baseline's *sum* Σ_s E(base, c, s) as a float (e.g. `alexnet_error_sum(c)`), or None
        for the benchmark's "unnormalised" CE, the mean error over severities.

    Returns NaN when the baseline never errs (the ratio is undefined).
    """
    errors = np.asarray(errors, np.float64)
    if errors.size == 0:
        raise ValueError("corruption_error needs at least one severity")
    if baseline_errors is None:
        return float(errors.mean())
    return _ratio(float(errors.sum()), _baseline_sum(baseline_errors, errors))


def _baseline_sum(baseline_errors: Sequence[float] | float, errors: np.ndarray) -> float:
    """Σ_s E(base, c, s): given per severity (checked against `errors`) or already summed."""
    if np.ndim(baseline_errors) == 0:
        return float(baseline_errors)
    baseline = np.asarray(baseline_errors, np.float64)
    if baseline.shape != errors.shape:
        raise ValueError(f"{errors.size} errors but {baseline.size} baseline errors; use the same severities")
    return float(baseline.sum())


def relative_corruption_error(
    errors: Sequence[float],
    clean_error: float,
    baseline_errors: Sequence[float] | float,
    baseline_clean_error: float,
) -> float:
    """Relative CE_c = Σ_s (E(f,c,s) − E_clean(f)) / Σ_s (E(base,c,s) − E_clean(base)).

    `baseline_errors` is a per-severity sequence or the baseline's sum over the same
    severities (as for `corruption_error`); the clean error is subtracted once per severity
    on both sides.
    """
    errors = np.asarray(errors, np.float64)
    baseline_sum = _baseline_sum(baseline_errors, errors)
    numerator = float(errors.sum()) - errors.size * clean_error
    return _ratio(numerator, baseline_sum - errors.size * baseline_clean_error)


def mean_over_corruptions(values: Mapping[str, float], corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS) -> float:
    """mCE (or relative mCE): the mean of CE_c over `corruptions`, NaN if any is missing/NaN."""
    selected = [values.get(name, math.nan) for name in corruptions]
    if not selected:
        raise ValueError("mean over an empty set of corruptions")
    return float(np.mean(selected))


def imagenet_c_scores(
    errors: Mapping[str, Sequence[float]],
    clean_error: float | None,
    *,
    severities: Sequence[int] = SEVERITIES,
) -> dict[str, object]:
    """CE, relative CE, mCE and relative mCE against AlexNet for errors[c] over `severities`.

    An error of None is a severity that could not be evaluated (its folder is missing): such
    a corruption gets no CE, since AlexNet's errors are only published summed over all five.
    mCE is over the benchmark corruptions with a CE; `complete` says whether that is all 15 at
    all 5 severities, i.e. whether the mCE can be comparable with published numbers. Without
    a clean error the relative scores are None.
    """
    full = tuple(severities) == SEVERITIES
    ce, relative_ce = {}, {}
    for name, values in errors.items():
        if name not in ALEXNET_MEAN_ERRORS or not full or None in values:
            continue
        ce[name] = corruption_error(values, alexnet_error_sum(name))
        if clean_error is not None:
            relative_ce[name] = relative_corruption_error(
                values, clean_error, alexnet_error_sum(name), ALEXNET_CLEAN_ERROR
            )
    evaluated = [name for name in BENCHMARK_CORRUPTIONS if name in ce]
    with_errors = [name for name in BENCHMARK_CORRUPTIONS if name in errors and None not in errors[name]]
    relative = clean_error is not None
    return {
        "ce": ce,
        "relative_ce": relative_ce if relative else None,
        "mce": mean_over_corruptions(ce, evaluated) if evaluated else None,
        "relative_mce": mean_over_corruptions(relative_ce, evaluated) if evaluated and relative else None,
        "mce_corruptions": evaluated,
        "complete": full and evaluated == list(BENCHMARK_CORRUPTIONS),
        # The benchmark's test.py prints this one: mean error, no AlexNet.
        "unnormalised_mce": float(np.mean([np.mean(errors[name]) for name in with_errors])) if with_errors else None,
    }


def baseline_scores(
    errors: Mapping[str, Sequence[float]],
    clean_error: float,
    baseline_errors: Mapping[str, Sequence[float]] | None,
    baseline_clean_error: float | None,
    corruptions: Sequence[str],
) -> dict[str, object]:
    """CE/mCE of one model against a baseline model evaluated on the same corrupted images.

    Without a baseline, CE_c is the unnormalised mean error over severities (the benchmark's
    "mCE (unnormalized)") and there is no relative CE.
    """
    ce, relative_ce = {}, {}
    for name in corruptions:
        reference = None if baseline_errors is None else baseline_errors[name]
        ce[name] = corruption_error(errors[name], reference)
        if baseline_errors is not None:
            relative_ce[name] = relative_corruption_error(errors[name], clean_error, reference, baseline_clean_error)
    in_mean = [name for name in corruptions if name in BENCHMARK_CORRUPTIONS] or list(corruptions)
    return {
        "ce": ce,
        "relative_ce": relative_ce if baseline_errors is not None else None,
        "mce": mean_over_corruptions(ce, in_mean),
        "relative_mce": mean_over_corruptions(relative_ce, in_mean) if baseline_errors is not None else None,
        "mce_corruptions": in_mean,
    }


# --------------------------------------------------------------------------- ImageNet-P


def flip_probability(predictions: Sequence[Sequence[int]], *, compare_with_first: bool) -> float:
    """FP over m sequences: the mean over sequences of the fraction of frames j = 2..n whose
    top-1 differs from frame j−1 (or from frame 1 for noise sequences).

    With sequences of equal length this is (1 / (m(n−1))) Σ_i Σ_j 1[...] (docs/robustness.md#imagenet-p);
    like the benchmark's test.py it averages per sequence first when lengths differ.
    """
    per_sequence = []
    for sequence in predictions:
        sequence = np.asarray(sequence)
        if sequence.size < 2:
            raise ValueError("a perturbation sequence needs at least two frames")
        reference = sequence[:1] if compare_with_first else sequence[:-1]
        per_sequence.append(np.mean(sequence[1:] != reference))
    if not per_sequence:
        raise ValueError("flip probability of zero sequences")
    return float(np.mean(per_sequence))


def top5_distance_between(reference_logits: np.ndarray, logits: np.ndarray, k: int = TOP5) -> int:
    """Top-5 distance between two frames: Σ_{i<k} |i − min(rank'(c_i), k)| (0-based).

    c_i is the class ranked i-th on the reference frame and rank'(c) its rank on the other
    frame. This is `dist(..., mode='top5')` of the benchmark's ImageNet-P/test.py, and equals
    the paper's sum over i = 1..5 of the number of positions j in (min(i, σ(i)), max(i, σ(i))]
    with 2 ≤ j ≤ 6: 0 when the top-5 is unchanged and in order.
    """
    k = min(k, reference_logits.shape[-1])
    order = np.argsort(-reference_logits, kind="stable")[:k]
    ranks = np.empty(logits.shape[-1], np.int64)
    ranks[np.argsort(-logits, kind="stable")] = np.arange(logits.shape[-1])
    return int(np.abs(np.arange(k) - np.minimum(ranks[order], k)).sum())


def top5_distance(logit_sequences: Sequence[np.ndarray], *, compare_with_first: bool) -> float:
    """T5D: the mean over sequences of the mean top-5 distance between frame j and frame j−1
    (or frame 1 for noise sequences), j = 2..n."""
    per_sequence = []
    for sequence in logit_sequences:
        if len(sequence) < 2:
            raise ValueError("a perturbation sequence needs at least two frames")
        distances = [
            top5_distance_between(sequence[0] if compare_with_first else sequence[j - 1], sequence[j])
            for j in range(1, len(sequence))
        ]
        per_sequence.append(np.mean(distances))
    if not per_sequence:
        raise ValueError("top-5 distance of zero sequences")
    return float(np.mean(per_sequence))


def flip_rate(value: float, baseline_value: float) -> float:
    """FR_p = FP_p(f) / FP_p(base) (and T5D likewise); NaN when the baseline never flips."""
    return _ratio(value, baseline_value)


def mean_flip_rate(
    values: Mapping[str, float],
    baseline_values: Mapping[str, float],
    perturbations: Sequence[str] = BENCHMARK_PERTURBATIONS,
) -> float:
    """mFR (or mT5D): the mean over perturbations of value_p / baseline_p."""
    missing = [name for name in perturbations if name not in values or name not in baseline_values]
    if missing:
        raise ValueError(f"mean flip rate needs every perturbation; missing {missing}")
    return float(np.mean([flip_rate(values[name], baseline_values[name]) for name in perturbations]))


# --------------------------------------------------------------------------- ImageNet-A


def rms_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bin_size: int = 100) -> float:
    """RMS calibration error with adaptive bins, as ImageNet-A reports it.

    Examples are sorted by confidence and cut into consecutive bins of `bin_size` (the last
    bin takes the remainder); error = sqrt(Σ_b (n_b / n) (mean confidence_b − accuracy_b)²).
    This is `calib_err(p='2', beta=100)` of hendrycks/natural-adv-examples calibration_tools.py
    with one deliberate difference: that loop runs over `range(len(bins) - 1)` and so leaves
    out its last, most confident bin; here every example counts. With fewer than `bin_size`
    examples there is one bin.
    """
    confidence, correct = _calibration_inputs(confidence, correct)
    order = np.argsort(confidence, kind="stable")
    confidence, correct = confidence[order], correct[order]
    num_bins = max(1, len(confidence) // bin_size)
    edges = [i * bin_size for i in range(num_bins)] + [len(confidence)]
    total = 0.0
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        gap = confidence[start:end].mean() - correct[start:end].mean()
        total += (end - start) / len(confidence) * gap**2
    return float(math.sqrt(total))


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], num_bins: int = 15) -> float:
    """ECE with `num_bins` equal-width confidence bins (lo, hi] (Guo et al., 2017; 15 bins):
    Σ_b (n_b / n) |accuracy_b − mean confidence_b|, empty bins skipped."""
    confidence, correct = _calibration_inputs(confidence, correct)
    edges = np.linspace(0.0, 1.0, num_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, num_bins - 1)
    total = 0.0
    for b in range(num_bins):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(total)


def _calibration_inputs(confidence, correct) -> tuple[np.ndarray, np.ndarray]:
    confidence = np.asarray(confidence, np.float64).reshape(-1)
    correct = np.asarray(correct, np.float64).reshape(-1)
    if confidence.shape != correct.shape or confidence.size == 0:
        raise ValueError(f"need as many confidences as correctness flags (got {confidence.size}, {correct.size})")
    return confidence, correct


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator != 0 else math.nan
