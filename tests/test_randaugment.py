"""RandAugment: every op against hand-computed pixels, and the per-image policy in tf.data.

Expected values are worked out by hand from docs/randaugment.md (magnitude M on the
scale where 10 is the nominal maximum; enhancement factor M/10·1.8 + 0.1, so
M=0 → 0.1, M=5 → 1.0, M=10 → 1.9; blends truncate to uint8).
"""

import numpy as np
import pytest
import tensorflow as tf

from efficientnet.data import randaugment
from efficientnet.data.randaugment import DEFAULT_OPS, OPS, AugmentParams, RandAugment, cutout_at, random_sign
from efficientnet.util.registry import UnknownNameError

# Stateless seeds whose random sign we pinned down (checked in
# test_pinned_seeds_have_the_expected_signs, so the geometric tests below
# know which way the image moves).
POSITIVE = tf.constant([1, 0])
NEGATIVE = tf.constant([0, 0])
# Small-image constants so that translations and cutouts are a few pixels.
SMALL = AugmentParams(translate_max=2, cutout_max=2)

# 4x4 pattern: tens digit = row + 1 (minus one), units = column + 1.
PATTERN = np.array(
    [
        [1, 2, 3, 4],
        [11, 12, 13, 14],
        [21, 22, 23, 24],
        [31, 32, 33, 34],
    ],
    np.uint8,
)
F = randaugment.FILL_VALUE  # 128


def rgb(channel):
    """A gray image [H, W, 3] with the same plane in all channels."""
    return np.repeat(np.asarray(channel, np.uint8)[..., None], 3, axis=-1)


def apply(name, image, magnitude, seed=POSITIVE, params=SMALL):
    out = OPS.get(name)(tf.constant(image, tf.uint8), magnitude, seed, params)
    assert out.dtype == tf.uint8 and out.shape == np.shape(image)
    return out.numpy()


def test_registry_holds_exactly_the_16_reference_ops():
    expected = {
        "AutoContrast",
        "Equalize",
        "Invert",
        "Rotate",
        "Posterize",
        "Solarize",
        "Color",
        "Contrast",
        "Brightness",
        "Sharpness",
        "ShearX",
        "ShearY",
        "TranslateX",
        "TranslateY",
        "SolarizeAdd",
        "Cutout",
    }
    assert len(OPS) == 16
    assert set(OPS.names()) == expected
    assert len(DEFAULT_OPS) == 16 and set(DEFAULT_OPS) == expected


def test_pinned_seeds_have_the_expected_signs():
    assert random_sign(POSITIVE).numpy() == 1.0
    assert random_sign(NEGATIVE).numpy() == -1.0


# ---------------------------------------------------------------- colour ops


def test_invert():
    image = rgb([[0, 1], [128, 255]])
    np.testing.assert_array_equal(apply("Invert", image, 10), rgb([[255, 254], [127, 0]]))


@pytest.mark.parametrize(
    "magnitude, expected",
    [
        (10, 0b10110000),  # int(1.0·4) = 4 bits
        (5, 0b10000000),  # 2 bits
        (2.5, 0b10000000),  # 1 bit
        (0, 0),  # 0 bits: everything black
        (20, 0b10110111),  # 8 bits: unchanged
        (27, 0b10110111),  # int(10.8) = 10 bits, clamped: unchanged
    ],
)
def test_posterize(magnitude, expected):
    image = np.full((2, 2, 3), 0b10110111, np.uint8)
    np.testing.assert_array_equal(apply("Posterize", image, magnitude), np.full((2, 2, 3), expected))


def test_solarize_inverts_at_and_above_the_threshold():
    image = rgb([[0, 127], [128, 200]])
    # M=5: threshold int(0.5·256) = 128.
    np.testing.assert_array_equal(apply("Solarize", image, 5), rgb([[0, 127], [127, 55]]))
    # M=10: threshold 256, nothing inverted; M=0: threshold 0, everything.
    np.testing.assert_array_equal(apply("Solarize", image, 10), image)
    np.testing.assert_array_equal(apply("Solarize", image, 0), rgb([[255, 128], [127, 55]]))


def test_solarize_add():
    image = rgb([[0, 17, 127], [128, 145, 255]])
    # M=10: +110 below 128 only.
    np.testing.assert_array_equal(apply("SolarizeAdd", image, 10), rgb([[110, 127, 237], [128, 145, 255]]))
    # M=20: +220, clipped at 255.
    np.testing.assert_array_equal(apply("SolarizeAdd", image, 20), rgb([[220, 237, 255], [128, 145, 255]]))


def test_brightness():
    image = rgb([[0, 7, 99], [100, 134, 255]])
    np.testing.assert_array_equal(apply("Brightness", image, 5), image)  # factor 1.0
    # M=10: ×1.9 truncated and clipped: 7→13.3, 99→188.1, 100→190, 134→254.6, 255→484.5.
    np.testing.assert_array_equal(apply("Brightness", image, 10), rgb([[0, 13, 188], [190, 254, 255]]))
    # M=0: ×0.1: 99→9.9, 134→13.4, 255→25.5.
    np.testing.assert_array_equal(apply("Brightness", image, 0), rgb([[0, 0, 9], [10, 13, 25]]))


def test_color():
    # tf.image.rgb_to_grayscale: trunc((0.2989 R + 0.5870 G + 0.1140 B) / 255 · 255.5).
    # Red → 76.37 → 76. (200, 100, 50) → 124.42 → 124. Gray pixels stay themselves.
    image = np.array([[[255, 0, 0], [200, 100, 50], [90, 90, 90]]], np.uint8)
    np.testing.assert_array_equal(apply("Color", image, 5), image)
    # M=0, factor 0.1: red: 76 + 0.1·179 = 93.9, 76 − 7.6 = 68.4.
    # (200,100,50): 124 + 7.6 = 131.6, 124 − 2.4 = 121.6, 124 − 7.4 = 116.6.
    expected = np.array([[[93, 68, 68], [131, 121, 116], [90, 90, 90]]], np.uint8)
    np.testing.assert_array_equal(apply("Color", image, 0), expected)
    # M=10, factor 1.9: (200,100,50): 124 + 144.4 → 255, 124 − 45.6 = 78.4, 124 − 140.6 → 0.
    expected = np.array([[[255, 0, 0], [255, 78, 0], [90, 90, 90]]], np.uint8)
    np.testing.assert_array_equal(apply("Color", image, 10), expected)


def test_contrast_blends_from_the_rounded_mean_luma():
    # Gray pixels: mean (60 + 100 + 100 + 140) / 4 = 100.
    image = rgb([[60, 100], [100, 140]])
    np.testing.assert_array_equal(apply("Contrast", image, 5), image)
    # M=0, factor 0.1: 100 ± 4.
    np.testing.assert_array_equal(apply("Contrast", image, 0), rgb([[96, 100], [100, 104]]))
    # M=10, factor 1.9: 100 ± 76. (The TPU code's bug would use 4/256 ≈ 0
    # as the mean and give 114 and 255.)
    np.testing.assert_array_equal(apply("Contrast", image, 10), rgb([[24, 100], [100, 176]]))


def test_contrast_rounds_the_mean_half_up_like_pil():
    # Mean 25.5 → 26 (PIL's int(mean + 0.5)); M=0: 26 + 0.1·(x − 26).
    image = rgb([[10, 20], [30, 42]])
    np.testing.assert_array_equal(apply("Contrast", image, 0), rgb([[24, 25], [26, 27]]))
    # Mean 25.25 → 25: 23.5, 24.5, 25.5, 26.6.
    image = rgb([[10, 20], [30, 41]])
    np.testing.assert_array_equal(apply("Contrast", image, 0), rgb([[23, 24], [25, 26]]))


def test_sharpness_blends_from_the_smoothed_interior():
    # 3x3 with only the centre lit: smoothed centre 5·130/13 = 50, border kept.
    image = rgb([[0, 0, 0], [0, 130, 0], [0, 0, 0]])
    np.testing.assert_array_equal(apply("Sharpness", image, 5), image)
    # M=0: 50 + 0.1·80 = 58; M=10: 50 + 1.9·80 = 202. Border: blend(x, x) = x.
    np.testing.assert_array_equal(apply("Sharpness", image, 0), rgb([[0, 0, 0], [0, 58, 0], [0, 0, 0]]))
    np.testing.assert_array_equal(apply("Sharpness", image, 10), rgb([[0, 0, 0], [0, 202, 0], [0, 0, 0]]))


def test_sharpness_rounds_the_smoothed_image_before_blending():
    # Smoothed centre 5·10/13 = 3.85 → 4 (truncation would give 3);
    # M=0: 4 + 0.1·6 = 4.6 → 4 (from 3 it would be 3.7 → 3).
    image = rgb([[0, 0, 0], [0, 10, 0], [0, 0, 0]])
    np.testing.assert_array_equal(apply("Sharpness", image, 0), rgb([[0, 0, 0], [0, 4, 0], [0, 0, 0]]))


def test_sharpness_leaves_a_flat_image_alone():
    image = np.full((5, 5, 3), 77, np.uint8)
    np.testing.assert_array_equal(apply("Sharpness", image, 27), image)


def test_auto_contrast_stretches_each_channel():
    image = np.zeros((2, 2, 3), np.uint8)
    image[..., 0] = [[50, 100], [150, 75]]  # range [50, 150]: (x − 50)·2.55
    image[..., 1] = 7  # constant: unchanged
    image[..., 2] = [[0, 255], [10, 20]]  # already full range: unchanged
    expected = image.copy()
    expected[..., 0] = [[0, 127], [255, 63]]  # 127.5 and 63.75 truncate
    np.testing.assert_array_equal(apply("AutoContrast", image, 10), expected)


def test_equalize_follows_pil():
    image = np.zeros((30, 30, 3), np.uint8)
    # Channel 0: 300 pixels each of 10, 20, 30. step = (900 − 300) // 255 = 2;
    # lut[v] = (pixels below v + 1) // 2: 10 → 0, 20 → 301 // 2 = 150, 30 → 601 // 2 → 255.
    image[:10, :, 0], image[10:20, :, 0], image[20:, :, 0] = 10, 20, 30
    # Channel 1: 840 pixels of 50 and 60 of 200. step = 840 // 255 = 3;
    # 50 → (0 + 1) // 3 = 0, 200 → (840 + 1) // 3 = 280 → 255.
    image[..., 1] = 50
    image[:2, :, 1] = 200
    # Channel 2: constant, step = 0: unchanged.
    image[..., 2] = 99
    expected = image.copy()
    expected[:10, :, 0], expected[10:20, :, 0], expected[20:, :, 0] = 0, 150, 255
    expected[..., 1] = 0
    expected[:2, :, 1] = 255
    np.testing.assert_array_equal(apply("Equalize", image, 10), expected)


def test_equalize_leaves_a_small_image_alone():
    # Fewer than 256 pixels below the last bin: step 0, nothing changes.
    image = rgb(PATTERN)
    np.testing.assert_array_equal(apply("Equalize", image, 10), image)


# ------------------------------------------------------------- geometric ops


def test_rotate_90_degrees_at_magnitude_30():
    image = rgb(PATTERN)
    # ±30/10·30 = ±90°; positive turns counter-clockwise like np.rot90.
    np.testing.assert_array_equal(
        apply("Rotate", image, 30, POSITIVE),
        rgb([[4, 14, 24, 34], [3, 13, 23, 33], [2, 12, 22, 32], [1, 11, 21, 31]]),
    )
    np.testing.assert_array_equal(
        apply("Rotate", image, 30, NEGATIVE),
        rgb([[31, 21, 11, 1], [32, 22, 12, 2], [33, 23, 13, 3], [34, 24, 14, 4]]),
    )
    # 180° either way, and M=0 is the identity.
    np.testing.assert_array_equal(apply("Rotate", image, 60, NEGATIVE), rgb(PATTERN[::-1, ::-1]))
    np.testing.assert_array_equal(apply("Rotate", image, 0), image)


def test_rotate_non_square_fills_with_128():
    # 2x4 turned by 90° about its centre (1.5, 0.5): only the middle two
    # columns land inside; the rest is fill.
    image = rgb([[1, 2, 3, 4], [11, 12, 13, 14]])
    np.testing.assert_array_equal(apply("Rotate", image, 30, POSITIVE), rgb([[F, 3, 13, F], [F, 2, 12, F]]))


def test_shear_x():
    # M=10: level ±0.3; row y reads column x ± round(0.3·y) = x ± (0, 0, 1, 1).
    np.testing.assert_array_equal(
        apply("ShearX", rgb(PATTERN), 10, POSITIVE),
        rgb([[1, 2, 3, 4], [11, 12, 13, 14], [22, 23, 24, F], [32, 33, 34, F]]),
    )
    np.testing.assert_array_equal(
        apply("ShearX", rgb(PATTERN), 10, NEGATIVE),
        rgb([[1, 2, 3, 4], [11, 12, 13, 14], [F, 21, 22, 23], [F, 31, 32, 33]]),
    )


def test_shear_y():
    # Column x reads row y ± round(0.3·x) = y ± (0, 0, 1, 1).
    np.testing.assert_array_equal(
        apply("ShearY", rgb(PATTERN), 10, POSITIVE),
        rgb([[1, 2, 13, 14], [11, 12, 23, 24], [21, 22, 33, 34], [31, 32, F, F]]),
    )
    np.testing.assert_array_equal(
        apply("ShearY", rgb(PATTERN), 10, NEGATIVE),
        rgb([[1, 2, F, F], [11, 12, 3, 4], [21, 22, 13, 14], [31, 32, 23, 24]]),
    )


def test_translate_x():
    # translate_max 2 px: M=10 → 2 px, M=5 → 1 px; positive moves content right.
    np.testing.assert_array_equal(
        apply("TranslateX", rgb(PATTERN), 10, POSITIVE),
        rgb([[F, F, 1, 2], [F, F, 11, 12], [F, F, 21, 22], [F, F, 31, 32]]),
    )
    np.testing.assert_array_equal(
        apply("TranslateX", rgb(PATTERN), 5, NEGATIVE),
        rgb([[2, 3, 4, F], [12, 13, 14, F], [22, 23, 24, F], [32, 33, 34, F]]),
    )


def test_translate_y():
    np.testing.assert_array_equal(
        apply("TranslateY", rgb(PATTERN), 10, POSITIVE),
        rgb([[F, F, F, F], [F, F, F, F], [1, 2, 3, 4], [11, 12, 13, 14]]),
    )
    np.testing.assert_array_equal(
        apply("TranslateY", rgb(PATTERN), 5, NEGATIVE),
        rgb([[11, 12, 13, 14], [21, 22, 23, 24], [31, 32, 33, 34], [F, F, F, F]]),
    )


def test_translate_uses_the_default_imagenet_constant():
    image = np.full((4, 300, 3), 9, np.uint8)
    image[:, 0] = 200  # first column marks the left edge
    out = apply("TranslateX", image, 10, POSITIVE, params=AugmentParams())  # 100 px
    assert (out[:, :100] == F).all() and (out[:, 100] == 200).all() and (out[:, 101:] == 9).all()


# ------------------------------------------------------------------- cutout


def square(shape, rows, cols, value=7):
    expected = np.full(shape, value, np.uint8)
    expected[rows[0] : rows[1], cols[0] : cols[1]] = F
    return expected


def test_cutout_square_is_clipped_at_the_borders():
    image = tf.fill([6, 6, 3], tf.constant(7, tf.uint8))
    # Half-size 1 at (3, 3): rows and columns [2, 4).
    np.testing.assert_array_equal(cutout_at(image, 3, 3, 1), square((6, 6, 3), (2, 4), (2, 4)))
    # Half-size 2 at (0, 5): rows [-2, 2) → [0, 2), columns [3, 7) → [3, 6).
    np.testing.assert_array_equal(cutout_at(image, 0, 5, 2), square((6, 6, 3), (0, 2), (3, 6)))


def test_cutout_op_with_pinned_seeds():
    image = np.full((6, 6, 3), 7, np.uint8)
    # cutout_max 2 px at M=10 → half-size 2, a 4x4 square around a seeded centre.
    np.testing.assert_array_equal(
        apply("Cutout", image, 10, tf.constant([0, 0])), square((6, 6, 3), (2, 6), (0, 4))
    )  # centre (4, 2)
    np.testing.assert_array_equal(
        apply("Cutout", image, 10, tf.constant([3, 0])), square((6, 6, 3), (0, 2), (0, 2))
    )  # centre (0, 0): clipped on two sides
    # M=5 → half-size 1, a 2x2 square; M=0 → nothing.
    assert (apply("Cutout", image, 5, tf.constant([1, 0])) == F).sum() == 2 * 2 * 3
    np.testing.assert_array_equal(apply("Cutout", image, 0), image)


def test_cutout_default_half_size_is_40_px():
    image = np.zeros((200, 200, 3), np.uint8)
    # Seed [6, 5] centres the square at (62, 89): a full 80x80 square.
    out = apply("Cutout", image, 10, tf.constant([6, 5]), params=AugmentParams())
    np.testing.assert_array_equal(out, square((200, 200, 3), (22, 102), (49, 129), value=0))
    # Seed [5, 5] centres it at (44, 25): columns [-15, 65) clip to [0, 65).
    out = apply("Cutout", image, 10, tf.constant([5, 5]), params=AugmentParams())
    np.testing.assert_array_equal(out, square((200, 200, 3), (4, 84), (0, 65), value=0))


# -------------------------------------------------------- extrapolated magnitude


def test_magnitude_27_extrapolates_without_crashing():
    image = rgb([[0, 50], [52, 200]])
    for name in DEFAULT_OPS:
        apply(name, image, 27)
    np.testing.assert_array_equal(apply("Posterize", image, 27), image)  # 10 bits: no-op
    np.testing.assert_array_equal(apply("Solarize", image, 27), image)  # threshold 691: no-op
    np.testing.assert_array_equal(apply("SolarizeAdd", image, 27), rgb([[255, 255], [255, 200]]))  # +297
    np.testing.assert_array_equal(apply("Brightness", image, 27), rgb([[0, 248], [255, 255]]))  # ×4.96
    np.testing.assert_array_equal(apply("TranslateX", image, 27), np.full((2, 2, 3), F))  # 5.4 px
    np.testing.assert_array_equal(apply("Cutout", image, 27), np.full((2, 2, 3), F))  # half-size 5
    np.testing.assert_array_equal(apply("Sharpness", image, 27), image)  # no interior pixels


# ------------------------------------------------------------------ the policy


def smooth_image(height=16, width=16):
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([30 + 10 * x, 40 + 8 * y, 200 - 5 * (x + y)], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_the_chosen_op_always_runs():
    image = smooth_image()
    once = RandAugment(num_layers=1, ops=["Invert"])
    twice = RandAugment(num_layers=2, ops=["Invert"])
    for seed in range(5):
        np.testing.assert_array_equal(once(image, tf.constant([seed, 1])), 255 - image)
        np.testing.assert_array_equal(twice(image, tf.constant([seed, 1])), image)
    np.testing.assert_array_equal(RandAugment(num_layers=0)(image, tf.constant([0, 0])), image)


def map_with_seeds(augment, images, seeds):
    dataset = tf.data.Dataset.from_tensor_slices((images, seeds))
    dataset = dataset.map(lambda image, seed: augment(image, seed), num_parallel_calls=tf.data.AUTOTUNE)
    return np.stack(list(dataset.as_numpy_iterator()))


def test_op_choice_is_per_image_in_tf_data():
    image = smooth_image()
    images = np.stack([image] * 64)
    seeds = np.stack([np.arange(64), np.zeros(64, np.int64)], axis=1)
    # Two ops with unmistakable results: Invert, or Posterize to 0 bits (M=0).
    augment = RandAugment(num_layers=1, magnitude=0, ops=["Invert", "Posterize"])
    out = map_with_seeds(augment, images, seeds)
    inverted = (out == 255 - image).all(axis=(1, 2, 3))
    black = (out == 0).all(axis=(1, 2, 3))
    assert (inverted ^ black).all()
    assert 16 <= inverted.sum() <= 48  # both choices, about half each
    chosen = np.array([int(augment.choose_ops(seed)[0][0]) for seed in seeds])
    np.testing.assert_array_equal(inverted, chosen == 0)


def test_all_ops_give_many_different_results_per_batch():
    images = np.stack([smooth_image()] * 64)
    seeds = np.stack([np.arange(64), np.full(64, 3)], axis=1)
    out = map_with_seeds(RandAugment(num_layers=2, magnitude=9, translate_max=5, cutout_max=4), images, seeds)
    distinct = {o.tobytes() for o in out}
    assert len(distinct) >= 32  # 16² op pairs, random signs and centres
    chosen = {int(index) for seed in seeds for index, _ in RandAugment().choose_ops(seed)}
    assert chosen == set(range(16))  # every op is drawn somewhere in 128 draws


def test_same_seed_same_output_and_graph_matches_eager():
    image = smooth_image()
    augment = RandAugment(num_layers=2, magnitude=9, translate_max=5, cutout_max=4)
    seeds = np.stack([np.arange(12) * 7, np.arange(12)], axis=1)
    in_graph = map_with_seeds(augment, np.stack([image] * 12), seeds)
    for seed, graph_result in zip(seeds, in_graph, strict=True):
        eager = augment(image, tf.constant(seed)).numpy()
        np.testing.assert_array_equal(eager, graph_result)
        np.testing.assert_array_equal(augment(image, tf.constant(seed)).numpy(), eager)
    assert len({o.tobytes() for o in in_graph}) > 6  # different seeds, different results


def test_int32_and_int64_seeds_both_work():
    image = smooth_image()
    augment = RandAugment(magnitude=9)
    for dtype in (tf.int32, tf.int64):
        out = augment(image, tf.constant([4, 2], dtype))
        assert out.dtype == tf.uint8 and out.shape == image.shape


def test_dynamic_shapes_in_tf_data_at_magnitude_27():
    sizes = [(8, 8), (12, 10), (5, 17)]

    def generate():
        for index, (height, width) in enumerate(sizes):
            yield smooth_image(height, width), np.array([index, 9], np.int64)

    dataset = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec([None, None, 3], tf.uint8),
            tf.TensorSpec([2], tf.int64),
        ),
    )
    augment = RandAugment(num_layers=2, magnitude=27, translate_max=3, cutout_max=2)
    dataset = dataset.map(augment)
    assert dataset.element_spec == tf.TensorSpec([None, None, 3], tf.uint8)
    outputs = list(dataset.as_numpy_iterator())
    assert [o.shape for o in outputs] == [(h, w, 3) for h, w in sizes]
    assert all(o.dtype == np.uint8 for o in outputs)


def test_augment_batch_matches_per_image_calls():
    images = np.stack([smooth_image(), 255 - smooth_image()])
    augment = RandAugment(magnitude=12, translate_max=4, cutout_max=3)
    out = augment.augment_batch(images, tf.constant([3, 3]))
    seeds = tf.random.experimental.stateless_split(tf.constant([3, 3]), num=2)
    assert out.dtype == tf.uint8 and out.shape == images.shape
    for image, seed, result in zip(images, seeds, out, strict=True):
        np.testing.assert_array_equal(augment(image, seed), result)


# -------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_layers=-1), "num_layers must be an integer >= 0"),
        (dict(num_layers=1.5), "num_layers must be an integer >= 0"),
        (dict(magnitude=-1), "magnitude must be a number >= 0"),
        (dict(magnitude=float("nan")), "magnitude must be a number >= 0"),
        (dict(translate_max=-3), "translate_max must be a number >= 0"),
        (dict(cutout_max=-3), "cutout_max must be a number >= 0"),
        (dict(ops=[]), "ops must name at least one op"),
        (dict(ops="Invert"), "ops must be a sequence of op names"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandAugment(**kwargs)


def test_unknown_op_lists_the_valid_names():
    with pytest.raises(UnknownNameError, match=r"unknown augment op 'Invrt'; valid names: AutoContrast, Brightness"):
        RandAugment(ops=["Invert", "Invrt"])


def test_non_uint8_images_are_rejected():
    with pytest.raises(ValueError, match="image must be uint8, got float32"):
        RandAugment()(tf.zeros([4, 4, 3]), tf.constant([0, 0]))
