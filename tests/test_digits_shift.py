"""The out-of-domain digits pool, `digits:unlabeled_shift=corrupted`: only the pool changes, the same way every time."""

import numpy as np
import pytest

from efficientnet.data.corruptions import BENCHMARK_CORRUPTIONS
from efficientnet.data.datasets import open_source
from efficientnet.data.digits import (
    DigitsVariant,
    corrupted_pool,
    digits_rgb,
    digits_split_indices,
    load_digits,
    parse_digits_argument,
)
from efficientnet.data.preprocessing import resize, to_uint8

SHIFTED = "digits:unlabeled_shift=corrupted"
USAGE = "the digits source takes 'digits[:per_class=N][,unlabeled_shift=corrupted]'"


def collect(source, split):
    examples = list(source.examples(split).as_numpy_iterator())
    return [e["id"] for e in examples], np.stack([e["image"] for e in examples]), [int(e["label"]) for e in examples]


@pytest.fixture(scope="module")
def clean_and_shifted():
    return open_source("digits"), open_source(SHIFTED)


def test_arguments_combine_in_any_order():
    assert parse_digits_argument("") == DigitsVariant(15, None)
    assert parse_digits_argument("unlabeled_shift=corrupted") == DigitsVariant(15, "corrupted")
    both = DigitsVariant(4, "corrupted")
    assert parse_digits_argument("per_class=4,unlabeled_shift=corrupted") == both
    assert parse_digits_argument("unlabeled_shift=corrupted,per_class=4") == both
    source = open_source("digits:per_class=4,unlabeled_shift=corrupted")
    assert (source.num_examples("train"), source.num_examples("unlabeled")) == (40, 947)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("digits:unlabeled_shift=blurred", "digits: unlabeled_shift must be one of corrupted, got "),
        ("digits:shift=corrupted", USAGE.replace("[", r"\[").replace("]", r"\]") + ", got "),
        ("digits:per_class=4,per_class=5", "the digits source takes .*, got "),
        ("digits:per_class=4,", "the digits source takes .*, got "),
        ("digits:per_class=four", "the digits source takes .*, got "),
    ],
)
def test_bad_arguments_are_one_line_errors_naming_the_spec(spec, message):
    with pytest.raises(ValueError, match=f"^{message}'{spec}'$"):
        open_source(spec)


def test_only_the_pool_changes(clean_and_shifted):
    clean, shifted = clean_and_shifted
    for split in ("train", "validation", "test"):
        ids, images, labels = collect(clean, split)
        shifted_ids, shifted_images, shifted_labels = collect(shifted, split)
        assert (shifted_ids, shifted_labels) == (ids, labels)
        np.testing.assert_array_equal(shifted_images, images)
    ids, images, labels = collect(clean, "unlabeled_with_labels")
    for split in ("unlabeled", "unlabeled_with_labels"):
        shifted_ids, shifted_images, shifted_labels = collect(shifted, split)
        assert shifted_ids == ids and shifted_images.shape == (947, 32, 32, 3) and shifted_images.dtype == np.uint8
        np.testing.assert_array_equal(shifted_images, corrupted_pool()[0])
    # The oracle split keeps the true labels, the unlabeled one hides them.
    assert shifted_labels == labels
    assert set(collect(shifted, "unlabeled")[2]) == {-1}


def test_every_image_is_corrupted_by_a_seeded_draw():
    images, names, severities = corrupted_pool()
    # Seed 0's draw: every corruption and severity, about 947/15 and 947/5 of each.
    assert set(names) == set(BENCHMARK_CORRUPTIONS)
    assert np.bincount(severities).tolist() == [0, 165, 192, 207, 185, 198]
    assert (names[:3].tolist(), severities[:3].tolist()) == (["elastic_transform", "fog", "snow"], [1, 3, 1])
    again = corrupted_pool.__wrapped__()  # recomputed, not the cached copy
    for first, second in zip((images, names, severities), again, strict=True):
        np.testing.assert_array_equal(first, second)
    upsampled = to_uint8(resize(digits_rgb(load_digits()[0][digits_split_indices()["unlabeled"]]), 32)).numpy()
    unchanged = np.all(images == upsampled, axis=(1, 2, 3))
    # Defocus blur at severities 1-3 is below half a pixel at 32 px (efficientnet/data/corruptions.py):
    # those 27 images are the upsampled digits themselves; every other image differs from its digit.
    np.testing.assert_array_equal(unchanged, (names == "defocus_blur") & (severities <= 3))
    assert unchanged.sum() == 27
