"""Crops (docs/training.md) eagerly and inside tf.data, and the pipelines built on them."""

import numpy as np
import pytest
import tensorflow as tf

from efficientnet.data import preprocessing
from efficientnet.data.datasets import open_source
from efficientnet.data.input_pipeline import eval_dataset, train_dataset


def ramp_image(height, width):
    rows = np.arange(height)[:, None, None]
    cols = np.arange(width)[None, :, None]
    return ((rows * 7 + cols * 3 + np.arange(3)) % 256).astype(np.uint8)


def test_center_crop_geometry_is_the_reference_one():
    image = ramp_image(300, 400)
    crop = preprocessing.center_crop(tf.constant(image), 224).numpy()
    # side = int(224 / 256 * 300) = 262; top = (300 - 262 + 1) // 2 = 19; left = (400 - 262 + 1) // 2 = 69.
    np.testing.assert_array_equal(crop, image[19:281, 69:331])


def test_eval_image_is_centre_crop_then_bicubic_resize():
    image = tf.constant(ramp_image(300, 400))
    out = preprocessing.eval_image(image, 224)
    assert out.shape == (224, 224, 3) and out.dtype == tf.float32
    expected = tf.image.resize(tf.cast(image[19:281, 69:331], tf.float32), [224, 224], method="bicubic")
    np.testing.assert_allclose(out, np.clip(expected, 0, 255), atol=1e-4)


def test_small_images_are_resized_whole_for_eval():
    image = tf.constant(ramp_image(8, 8))
    out = preprocessing.eval_image(image, 32).numpy()
    assert out.shape == (32, 32, 3)
    assert out.min() >= 0 and out.max() <= 255  # bicubic overshoot is clipped
    constant = preprocessing.eval_image(tf.fill([8, 8, 3], tf.constant(77, tf.uint8)), 32)
    np.testing.assert_allclose(constant, 77.0, atol=1e-3)


def test_train_crop_is_seeded_and_varies_with_the_seed():
    image = tf.constant(ramp_image(120, 160))
    first = preprocessing.train_image(image, 64 + 8, tf.constant([1, 2], tf.int64))
    again = preprocessing.train_image(image, 64 + 8, tf.constant([1, 2], tf.int64))
    other = preprocessing.train_image(image, 64 + 8, tf.constant([1, 3], tf.int64))
    assert first.shape == (72, 72, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_distorted_window_respects_area_and_aspect_bounds():
    image = tf.zeros([200, 300, 3], tf.uint8)
    for seed in range(30):
        window, sampled_whole = preprocessing.distorted_window(tf.shape(image), tf.constant([seed, 0], tf.int64))
        crop = preprocessing.crop_window(image, window)
        height, width = crop.shape[:2]
        if sampled_whole:
            continue
        assert 0.08 * 200 * 300 * 0.9 <= height * width <= 200 * 300
        assert 3 / 4 * 0.9 <= width / height <= 4 / 3 * 1.1


def test_small_train_image_is_pad_and_random_crop():
    # A constant 32 px image padded by 4 zero pixels and cropped back: every output
    # row/column is either the constant or zero padding, and the shift is at most 4.
    image = tf.fill([32, 32, 3], tf.constant(200, tf.uint8))
    shifts = set()
    for seed in range(20):
        out = preprocessing.train_image(image, 32, tf.constant([seed, 7], tf.int64), random_flip=False).numpy()
        assert set(np.unique(out)) <= {0.0, 200.0}
        zero_rows = int(np.sum(out[:, 16, 0] == 0))
        zero_cols = int(np.sum(out[16, :, 0] == 0))
        assert zero_rows <= 4 and zero_cols <= 4
        shifts.add((zero_rows, zero_cols))
    assert len(shifts) > 3


def test_flip_is_optional():
    image = tf.constant(ramp_image(32, 32))
    unflipped = {
        np.array_equal(
            preprocessing.train_image(image, 32, tf.constant([s, 0], tf.int64), random_flip=False)[:, :, 0],
            preprocessing.train_image(image, 32, tf.constant([s, 0], tf.int64), random_flip=False)[:, ::-1, 0],
        )
        for s in range(5)
    }
    assert unflipped == {False}


def test_train_image_inside_tf_data_matches_eager():
    image = ramp_image(90, 70)
    seeds = tf.constant([[3, 4], [5, 6]], tf.int64)
    dataset = tf.data.Dataset.from_tensor_slices(seeds).map(lambda seed: preprocessing.train_image(image, 80, seed))
    for seed, out in zip(seeds, dataset, strict=True):
        np.testing.assert_allclose(out, preprocessing.train_image(tf.constant(image), 80, seed), atol=1e-4)


def photo(height=375, width=500, seed=0):
    """Smooth colours with edges, like a photo: what JPEG encodes well."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (height // 25, width // 25, 3)).astype(np.float32)
    return tf.cast(tf.image.resize(small, [height, width], method="bicubic"), tf.uint8).numpy()


@pytest.mark.parametrize("encode", [tf.io.encode_png, lambda image: tf.io.encode_jpeg(image, quality=95)])
def test_train_image_from_encoded_is_train_image_of_the_decoded_image(encode):
    """Same seed, same window; a PNG gives the same pixels, a JPEG decoded inside the window differs
    only where libjpeg's chroma upsampling reaches across the window's edge, by a few levels."""
    encoded = encode(photo())
    decoded = preprocessing.decode_image(encoded)
    seeds = tf.constant([[seed, 1] for seed in range(12)], tf.int64)
    from_encoded = tf.data.Dataset.from_tensor_slices(seeds).map(
        lambda seed: preprocessing.train_image_from_encoded(encoded, 224, seed)
    )
    for seed, out in zip(seeds, from_encoded, strict=True):
        expected = preprocessing.train_image(decoded, 224, seed).numpy()
        difference = np.abs(out.numpy() - expected)
        if encode is tf.io.encode_png:
            np.testing.assert_allclose(out, expected, atol=1e-3)
        else:
            assert difference.mean() < 0.5 and np.mean(difference > 2) < 0.02, (difference.mean(), difference.max())


def test_train_image_from_encoded_decodes_a_jpeg_inside_its_crop_window_only():
    """The JPEG path is the fused decode-and-crop of the window drawn from the header's shape."""
    encoded = tf.io.encode_jpeg(photo(), quality=95)
    seed = tf.constant([3, 1], tf.int64)
    crop_seed = tf.random.experimental.stateless_split(seed, 2)[0]
    window = preprocessing.train_window(tf.image.extract_jpeg_shape(encoded), 224, crop_seed)
    assert window[2] * window[3] < 375 * 500  # a part of the image
    fused = preprocessing.resize(tf.image.decode_and_crop_jpeg(encoded, window, channels=3), 224)
    out = preprocessing.train_image_from_encoded(encoded, 224, seed, random_flip=False)
    np.testing.assert_array_equal(out.numpy(), fused.numpy())


def test_to_uint8_rounds_and_clips():
    values = tf.constant([-3.0, 0.4, 0.6, 254.5, 300.0])
    assert preprocessing.to_uint8(values).numpy().tolist() == [0, 0, 1, 254, 255]


# ----------------------------------------------------------------- pipelines


@pytest.fixture(scope="module")
def digits():
    return open_source("digits")


def batches(dataset, count):
    return [{key: value.numpy() for key, value in batch.items()} for batch in dataset.take(count)]


def test_train_dataset_is_deterministic_under_a_seed(digits):
    def build(seed):
        return train_dataset(digits, "train", batch_size=16, resolution=32, seed=seed, random_flip=False)

    first, again, other = batches(build(1), 3), batches(build(1), 3), batches(build(2), 3)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["id"], b["id"])
    assert not np.array_equal(first[0]["id"], other[0]["id"])
    assert first[0]["image"].shape == (16, 32, 32, 3) and first[0]["image"].dtype == np.float32


def test_train_dataset_repeats_and_reshuffles(digits):
    # 150 labeled images in batches of 50: epoch 1 and epoch 2 each cover all ids once, in different orders.
    epochs = batches(train_dataset(digits, "train", batch_size=50, resolution=32, seed=0, cache=True), 6)
    first = np.concatenate([batch["id"] for batch in epochs[:3]])
    second = np.concatenate([batch["id"] for batch in epochs[3:]])
    assert len(set(first)) == 150 and set(first) == set(second)
    assert not np.array_equal(first, second)


def test_train_dataset_from_jpeg_files_gives_the_same_batches_with_and_without_cache(tmp_path):
    """Photos at 224 px: the shuffle holds paths (or, cached, the files' bytes) and each JPEG is
    decoded inside its crop window after it; in the first epoch caching changes where the bytes
    come from, nothing else (later epochs reshuffle the records, and without a cache the files too)."""
    for index in range(12):
        path = tmp_path / f"class{index % 2}" / f"{index}.jpg"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(tf.io.encode_jpeg(photo(seed=index), quality=90).numpy())
    source = open_source(f"folder:{tmp_path}")

    def build(cache):
        return train_dataset(source, None, batch_size=4, resolution=224, seed=5, shuffle_buffer=12, cache=cache)

    plain, cached = batches(build(False), 3), batches(build(True), 3)
    for a, b in zip(plain, cached, strict=True):
        np.testing.assert_array_equal(a["id"], b["id"])
        np.testing.assert_array_equal(a["image"], b["image"])
    assert plain[0]["image"].shape == (4, 224, 224, 3)
    assert len(set(np.concatenate([batch["id"] for batch in plain]))) == 12  # an epoch holds every file once


def test_train_dataset_applies_the_augmentation_on_uint8(digits):
    seen = {}

    def invert(image, seed):
        seen["dtype"] = image.dtype
        return 255 - image

    plain = batches(train_dataset(digits, "train", batch_size=8, resolution=32, seed=3), 1)[0]["image"]
    inverted = batches(train_dataset(digits, "train", batch_size=8, resolution=32, seed=3, augment=invert), 1)
    assert seen["dtype"] == tf.uint8
    assert plain.dtype == np.float32 and inverted[0]["image"].dtype == np.uint8  # left as RandAugment gives it
    np.testing.assert_allclose(inverted[0]["image"], 255 - np.round(plain), atol=1e-4)


def test_eval_dataset_sees_every_example_once_in_order(digits):
    result = batches(eval_dataset(digits, "test", batch_size=64, resolution=32), 100)
    assert [len(batch["id"]) for batch in result] == [64] * 7 + [52]
    ids = np.concatenate([batch["id"] for batch in result])
    assert len(set(ids)) == 500
    assert ids[0] == b"digits/360"
    first_image = digits.examples("test").take(1).get_single_element()["image"]
    np.testing.assert_allclose(result[0]["image"][0], preprocessing.eval_image(first_image, 32), atol=1e-4)
