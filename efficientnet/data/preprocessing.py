"""Image crops for training and evaluation (docs/training.md#preprocessing).

Functions take one uint8 image [h, w, 3] of any size and return a float32
[resolution, resolution, 3] image of raw pixel values in [0, 255]; models
normalise inside themselves. Randomness is stateless, driven by a per-example
seed of shape [2], so a pipeline is reproducible under a seed.

`eval_image` is the one eval crop: evaluation, pseudo-labeling and export all
call it, so a teacher sees the same pixels when it is evaluated and when it
labels.
"""

from __future__ import annotations

import tensorflow as tf

# Eval crop: centre crop of side res/(res + 32)·min(h, w), i.e. 224 of 256
# (reference `CROP_PADDING`).
CROP_PADDING = 32
# Inputs at or below this resolution (CIFAR, SVHN, digits) are already tight
# crops: they are resized whole and trained with pad-and-random-crop instead.
SMALL_IMAGE_MAX_RESOLUTION = 64
# Distorted-bounding-box crop parameters of the reference (Szegedy et al. 2015).
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
AREA_RANGE = (0.08, 1.0)
MAX_ATTEMPTS = 10


def is_small(resolution: int) -> bool:
    return resolution <= SMALL_IMAGE_MAX_RESOLUTION


def resize(image: tf.Tensor, resolution: int) -> tf.Tensor:
    """Bicubic resize to a square float32 image, clipped to [0, 255].

    Bicubic interpolation overshoots near edges (by ~30 levels when upsampling
    8 px digits to 32 px); the clip keeps the model's input contract of raw
    pixels in [0, 255], which the reference leaves implicit.
    """
    resized = tf.image.resize(tf.cast(image, tf.float32), [resolution, resolution], method="bicubic")
    return tf.clip_by_value(resized, 0.0, 255.0)


def center_window(shape: tf.Tensor, resolution: int) -> tf.Tensor:
    """[top, left, side, side] of the central square of side resolution/(resolution + 32)·min(h, w).

    A window rather than pixels, so that a JPEG can be decoded inside it
    alone (`train_image_from_encoded`); `shape` is [height, width, ...].
    """
    height, width = shape[0], shape[1]
    fraction = resolution / (resolution + CROP_PADDING)
    side = tf.cast(fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    return tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])


def crop_window(image: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """The pixels of `image` inside `window` ([top, left, height, width])."""
    return image[window[0] : window[0] + window[2], window[1] : window[1] + window[3]]


def center_crop(image: tf.Tensor, resolution: int) -> tf.Tensor:
    """Central square of side resolution/(resolution + 32)·min(h, w), uint8."""
    image = tf.convert_to_tensor(image)
    return crop_window(image, center_window(tf.shape(image), resolution))


def eval_image(image: tf.Tensor, resolution: int) -> tf.Tensor:
    """The evaluation / labeling view of an image: centre crop, bicubic resize."""
    if is_small(resolution):
        return resize(image, resolution)
    return resize(center_crop(image, resolution), resolution)


def distorted_window(shape: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Inception-style random crop window ([top, left, height, width]) covering 8–100% of the image.

    Returns the window and whether the sampler gave up and returned the whole
    image, in which case the reference (and `train_image`) falls back to the
    eval centre crop rather than train on an uncropped image. Only the
    image's shape is needed, so a JPEG's window is drawn from its header.
    """
    whole_image = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
    size_hw = tf.cast(shape[:2], tf.int32)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.concat([size_hw, [3]], 0),
        bounding_boxes=whole_image,
        seed=seed,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.concat([begin[:2], size[:2]], 0), tf.reduce_all(tf.equal(size[:2], size_hw))


def train_window(shape: tf.Tensor, resolution: int, seed: tf.Tensor) -> tf.Tensor:
    """The training crop's window: distorted, or the centre crop where the sampler gave up."""
    window, sampled_whole_image = distorted_window(shape, seed)
    return tf.cond(sampled_whole_image, lambda: center_window(shape, resolution), lambda: window)


def train_image(image: tf.Tensor, resolution: int, seed: tf.Tensor, *, random_flip: bool = True) -> tf.Tensor:
    """The training view of decoded pixels: random crop and bicubic resize, optional flip.

    Large images get the distorted-bounding-box crop; small ones (<= 64 px)
    are resized whole, padded by resolution/8 (4 px at 32) with zeros and
    randomly cropped back. Flipping is optional because it changes the meaning
    of some classes (digits, text). `train_image_from_encoded` gives the same
    view of the encoded image without decoding what the crop leaves out.
    """
    image = tf.convert_to_tensor(image)
    return _train_view(
        tf.shape(image),
        lambda window: image if window is None else crop_window(image, window),
        resolution,
        seed,
        random_flip,
    )


def train_image_from_encoded(
    encoded: tf.Tensor, resolution: int, seed: tf.Tensor, *, random_flip: bool = True
) -> tf.Tensor:
    """`train_image` of an encoded image (JPEG/PNG/BMP/GIF bytes), decoding only the crop for JPEG.

    The crop window is drawn from the JPEG header's shape and only that window
    is decoded (`tf.image.decode_and_crop_jpeg`, as the reference input
    pipeline does): a crop covers 8–100% of the image, 39% of a 500×375 one
    on average (docs/training.md#input-at-scale), so this saves decoding
    work, and no full-size pixels are ever held.
    Other formats are decoded whole, then cropped. Same seed, same window as
    `train_image` of the decoded image (docs/training.md#preprocessing).
    """
    if is_small(resolution):  # the whole image is used: nothing to save
        return train_image(decode_image(encoded), resolution, seed, random_flip=random_flip)

    def jpeg_view():
        def decode_window(window):
            image = tf.image.decode_and_crop_jpeg(encoded, window, channels=3)
            image.set_shape([None, None, 3])
            return image

        return _train_view(tf.image.extract_jpeg_shape(encoded), decode_window, resolution, seed, random_flip)

    return tf.cond(
        tf.io.is_jpeg(encoded),
        jpeg_view,
        lambda: train_image(decode_image(encoded), resolution, seed, random_flip=random_flip),
    )


def _train_view(shape, take_window, resolution: int, seed: tf.Tensor, random_flip: bool) -> tf.Tensor:
    """The training view from an image's shape and a function giving its pixels inside a window
    (the whole image for the window None, which small images use)."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if is_small(resolution):
        padding = resolution // 8
        padded = tf.pad(resize(take_window(None), resolution), [[padding, padding], [padding, padding], [0, 0]])
        output = tf.image.stateless_random_crop(padded, [resolution, resolution, 3], seed=crop_seed)
    else:
        output = resize(take_window(train_window(shape, resolution, crop_seed)), resolution)
    if random_flip:
        output = tf.image.stateless_random_flip_left_right(output, flip_seed)
    return output


def decode_image(encoded: tf.Tensor) -> tf.Tensor:
    """JPEG/PNG/BMP/GIF bytes → uint8 [h, w, 3] (gray replicated, alpha dropped, a GIF's first frame)."""
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """Rounds a float image (bicubic overshoots) back into uint8 for augmentation."""
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
