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


def center_crop(image: tf.Tensor, resolution: int) -> tf.Tensor:
    """Central square of side resolution/(resolution + 32)·min(h, w), uint8."""
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    fraction = resolution / (resolution + CROP_PADDING)
    side = tf.cast(fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32)
    top = (height - side + 1) // 2
    left = (width - side + 1) // 2
    return image[top : top + side, left : left + side]


def eval_image(image: tf.Tensor, resolution: int) -> tf.Tensor:
    """The evaluation / labeling view of an image: centre crop, bicubic resize."""
    if is_small(resolution):
        return resize(image, resolution)
    return resize(center_crop(image, resolution), resolution)


def distorted_crop(image: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Inception-style random crop covering 8–100% of the image.

    Returns the crop and whether the sampler gave up and returned the whole
    image, in which case the reference (and `train_image`) falls back to the
    eval centre crop rather than train on an uncropped image.
    """
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    whole_image = tf.constant([[[0.0, 0.0, 1.0, 1.0]]])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape,
        bounding_boxes=whole_image,
        seed=seed,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE,
        max_attempts=MAX_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    crop = image[begin[0] : begin[0] + size[0], begin[1] : begin[1] + size[1]]
    return crop, tf.reduce_all(tf.equal(size[:2], shape[:2]))


def train_image(image: tf.Tensor, resolution: int, seed: tf.Tensor, *, random_flip: bool = True) -> tf.Tensor:
    """The training view: random crop and bicubic resize, optional flip.

    Large images get the distorted-bounding-box crop; small ones (<= 64 px)
    are resized whole, padded by resolution/8 (4 px at 32) with zeros and
    randomly cropped back. Flipping is optional because it changes the meaning
    of some classes (digits, text).
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if is_small(resolution):
        padding = resolution // 8
        padded = tf.pad(resize(image, resolution), [[padding, padding], [padding, padding], [0, 0]])
        output = tf.image.stateless_random_crop(padded, [resolution, resolution, 3], seed=crop_seed)
    else:
        crop, sampled_whole_image = distorted_crop(image, crop_seed)
        output = tf.cond(
            sampled_whole_image,
            lambda: resize(center_crop(image, resolution), resolution),
            lambda: resize(crop, resolution),
        )
    if random_flip:
        output = tf.image.stateless_random_flip_left_right(output, flip_seed)
    return output


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    """Rounds a float image (bicubic overshoots) back into uint8 for augmentation."""
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
