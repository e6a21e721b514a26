"""The robustness formulas against hand-computed examples (docs/robustness.md)."""

import hashlib
import math

import numpy as np
import pytest

from robustness import metrics
from robustness.imagenet_a import IMAGENET_A_CLASSES, imagenet_a_predictions, imagenet_a_scores

# ----------------------------------------------------------------------------- ImageNet-C


def test_corruption_error_is_a_ratio_of_sums_not_a_mean_of_ratios():
    errors = [0.2, 0.4, 0.6, 0.8, 1.0]  # Σ = 3.0
    baseline = [0.25, 0.5, 0.5, 0.5, 0.5]  # Σ = 2.25
    assert metrics.corruption_error(errors, baseline) == pytest.approx(3.0 / 2.25)  # 1.3333
    # The mean of per-severity ratios would be (0.8 + 0.8 + 1.2 + 1.6 + 2.0) / 5 = 1.28.
    assert metrics.corruption_error(errors, baseline) != pytest.approx(1.28)
    # A baseline given as its sum is the same thing.
    assert metrics.corruption_error(errors, 2.25) == pytest.approx(1.3333333)


def test_alexnet_normalisation_uses_five_times_the_published_mean():
    assert metrics.alexnet_error_sum("gaussian_noise") == pytest.approx(4.43214)
    # E = 0.5 at every severity: Σ_s E = 2.5 over Σ_s E_AlexNet = 5 × 0.886428.
    assert metrics.corruption_error([0.5] * 5, metrics.alexnet_error_sum("gaussian_noise")) == pytest.approx(0.5640616)
    with pytest.raises(ValueError, match="mean over severities 1-5"):
        metrics.alexnet_error_sum("gaussian_noise", num_severities=3)
    with pytest.raises(ValueError, match="no AlexNet error"):
        metrics.alexnet_error_sum("spatter")


def test_unnormalised_corruption_error_is_the_mean_error():
    assert metrics.corruption_error([0.1, 0.2, 0.3]) == pytest.approx(0.2)


def test_relative_corruption_error():
    # Σ(E − clean) = 2.5 − 5·0.2 = 1.5 over Σ(E_b − clean_b) = 4.0 − 5·0.4 = 2.0.
    errors, baseline = [0.3, 0.4, 0.5, 0.6, 0.7], [0.6, 0.7, 0.8, 0.9, 1.0]
    assert metrics.relative_corruption_error(errors, 0.2, baseline, 0.4) == pytest.approx(0.75)
    # Against AlexNet on gaussian_noise: 1.5 / (4.43214 − 5·0.43478) = 1.5 / 2.25824.
    alexnet = metrics.alexnet_error_sum("gaussian_noise")
    assert metrics.relative_corruption_error(errors, 0.2, alexnet, metrics.ALEXNET_CLEAN_ERROR) == pytest.approx(
        0.6642341
    )


def test_mce_of_alexnet_itself_is_100_and_partial_runs_say_so():
    alexnet = {name: [mean] * 5 for name, mean in metrics.ALEXNET_MEAN_ERRORS.items()}
    scores = metrics.imagenet_c_scores(alexnet, metrics.ALEXNET_CLEAN_ERROR)
    assert scores["mce"] == pytest.approx(1.0) and scores["relative_mce"] == pytest.approx(1.0)
    assert scores["complete"] and len(scores["mce_corruptions"]) == 15
    assert scores["unnormalised_mce"] == pytest.approx(np.mean(list(metrics.ALEXNET_MEAN_ERRORS.values())))
    # Two corruptions: mCE over those two, flagged as not the benchmark's number.
    two = {"gaussian_noise": [0.5] * 5, "fog": [0.8194] * 5}
    scores = metrics.imagenet_c_scores(two, None)
    assert scores["mce"] == pytest.approx((0.5640616 + 0.8194 / 0.819324) / 2)
    assert not scores["complete"] and scores["relative_mce"] is None
    # Fewer severities cannot be normalised by AlexNet's five-severity mean.
    assert metrics.imagenet_c_scores(two, 0.2, severities=(1, 2))["mce"] is None


def test_baseline_scores_keep_extras_out_of_the_mean():
    errors = {"gaussian_noise": [0.4, 0.6], "fog": [0.2, 0.2], "saturate": [0.9, 0.9]}
    baseline = {"gaussian_noise": [0.5, 0.5], "fog": [0.4, 0.4], "saturate": [0.3, 0.3]}
    scores = metrics.baseline_scores(errors, 0.1, baseline, 0.2, list(errors))
    assert scores["ce"] == pytest.approx({"gaussian_noise": 1.0, "fog": 0.5, "saturate": 3.0})
    assert scores["mce"] == pytest.approx(0.75)  # (1.0 + 0.5) / 2, saturate is an extra
    # Relative: gaussian (1.0 − 0.2) / (1.0 − 0.4) = 4/3, fog (0.4 − 0.2) / (0.8 − 0.4) = 0.5.
    assert scores["relative_mce"] == pytest.approx((4 / 3 + 0.5) / 2)
    unnormalised = metrics.baseline_scores(errors, 0.1, None, None, list(errors))
    assert unnormalised["ce"]["gaussian_noise"] == pytest.approx(0.5) and unnormalised["relative_ce"] is None


# ----------------------------------------------------------------------------- ImageNet-P


def test_flip_probability_consecutive_and_against_the_first_frame():
    predictions = [[0, 0, 1, 1], [2, 2, 2, 2]]
    # Consecutive: sequence 1 flips once in 3 transitions, sequence 2 never: (1/3 + 0) / 2.
    assert metrics.flip_probability(predictions, compare_with_first=False) == pytest.approx(1 / 6)
    # Noise sequences compare with frame 1: frames 3 and 4 differ from it: (2/3 + 0) / 2.
    assert metrics.flip_probability(predictions, compare_with_first=True) == pytest.approx(1 / 3)
    # Unequal lengths average per sequence first, like the benchmark: (1/1 + 1/4) / 2.
    assert metrics.flip_probability([[0, 1], [0, 0, 0, 1, 1]], compare_with_first=False) == pytest.approx(0.625)
    assert metrics.is_noise_perturbation("speckle_noise") and not metrics.is_noise_perturbation("translate")


REFERENCE = np.array([7.0, 6, 5, 4, 3, 2, 1])  # ranks classes 0, 1, …, 6


@pytest.mark.parametrize(
    "other, distance",
    [
        (REFERENCE, 0),
        ([6.0, 7, 5, 4, 3, 2, 1], 2),  # classes 0 and 1 swap: |0−1| + |1−0|
        ([7.0, 6, 5, 4, 0.5, 2, 1], 1),  # class 4 drops to rank 6, counted as 5: |4−5|
        ([3.0, 4, 5, 6, 7, 2, 1], 12),  # top-5 reversed: 4 + 2 + 0 + 2 + 4
    ],
)
def test_top5_distance_between_frames(other, distance):
    assert metrics.top5_distance_between(REFERENCE, np.array(other)) == distance


def test_top5_distance_over_sequences():
    swapped = np.array([6.0, 7, 5, 4, 3, 2, 1])
    sequence = [REFERENCE, swapped, swapped]
    assert metrics.top5_distance([sequence], compare_with_first=False) == pytest.approx((2 + 0) / 2)
    assert metrics.top5_distance([sequence], compare_with_first=True) == pytest.approx((2 + 2) / 2)


def test_flip_rates_and_mfr():
    assert metrics.flip_rate(0.1, 0.2) == pytest.approx(0.5)
    assert math.isnan(metrics.flip_rate(0.1, 0.0))
    assert metrics.mean_flip_rate({"a": 0.1, "b": 0.3}, {"a": 0.2, "b": 0.2}, ["a", "b"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="missing"):
        metrics.mean_flip_rate({"a": 0.1}, {"a": 0.2}, ["a", "b"])


# ----------------------------------------------------------------------------- calibration


def test_rms_calibration_error_with_adaptive_bins():
    confidence, correct = [0.9, 0.8, 0.6, 0.3], [1, 0, 1, 0]
    # Sorted: (0.3, 0), (0.6, 1) | (0.8, 0), (0.9, 1); gaps 0.45 − 0.5 and 0.85 − 0.5.
    assert metrics.rms_calibration_error(confidence, correct, bin_size=2) == pytest.approx(
        math.sqrt(0.5 * 0.05**2 + 0.5 * 0.35**2)
    )  # 0.25
    # One bin when there are fewer examples than a bin: |0.65 − 0.5|.
    assert metrics.rms_calibration_error(confidence, correct, bin_size=100) == pytest.approx(0.15)
    # The last bin takes the remainder and counts (the benchmark's loop leaves it out).
    five = metrics.rms_calibration_error([0.1, 0.2, 0.7, 0.8, 0.9], [0, 0, 1, 1, 0], bin_size=2)
    assert five == pytest.approx(math.sqrt(0.4 * 0.15**2 + 0.6 * (0.8 - 2 / 3) ** 2))


def test_expected_calibration_error_with_15_bins():
    # One example per bin: (|1 − 0.95| + |0 − 0.9| + |1 − 0.55| + |1 − 0.52|) / 4.
    assert metrics.expected_calibration_error([0.95, 0.9, 0.55, 0.52], [1, 0, 1, 1]) == pytest.approx(0.47)
    # Both in (2/3, 11/15]: accuracy 0.5 against mean confidence 0.71.
    assert metrics.expected_calibration_error([0.7, 0.72], [1, 0]) == pytest.approx(0.21)


# ----------------------------------------------------------------------------- ImageNet-A


def test_imagenet_a_classes_are_the_published_list():
    assert len(IMAGENET_A_CLASSES) == 200
    assert list(IMAGENET_A_CLASSES) == sorted(set(IMAGENET_A_CLASSES))
    assert 0 <= IMAGENET_A_CLASSES[0] and IMAGENET_A_CLASSES[-1] < 1000
    # indices_in_1k of hendrycks/natural-adv-examples eval.py: stingray, goldfinch, …, acorn.
    assert IMAGENET_A_CLASSES[:3] == (6, 11, 13) and IMAGENET_A_CLASSES[-1] == 988
    assert IMAGENET_A_CLASSES.index(207) == 38  # golden retriever is ImageNet-A class 38
    # Digest of the published list, computed from eval.py's thousand_k_to_200.
    digest = hashlib.sha256(",".join(map(str, IMAGENET_A_CLASSES)).encode()).hexdigest()
    assert digest == "973e8c3e530bf5dbd49999d046e74084ba5184ab98036b42b111d8dcdecf1015"
    assert sum(IMAGENET_A_CLASSES) == 102178


def test_restricted_argmax_ignores_classes_outside_imagenet_a():
    logits = np.zeros((2, 1000), np.float32)
    logits[0, 0] = 10.0  # tench: not an ImageNet-A class, the unrestricted argmax
    logits[0, 11] = 5.0  # goldfinch: the best of the 200
    logits[1, 988] = 1.0
    predictions, confidence = imagenet_a_predictions(logits)
    assert predictions.tolist() == [11, 988]  # labels in the 1000-class space
    # Softmax over the 200 restricted logits: e^5 / (e^5 + 199 e^0).
    assert confidence[0] == pytest.approx(0.42719498)
    scores = imagenet_a_scores(logits, np.array([11, 1]))
    assert scores["top1"] == 0.5 and scores["labels_outside_200_classes"] == 1
    with pytest.raises(ValueError, match="1000-class"):
        imagenet_a_predictions(np.zeros((1, 10)))
