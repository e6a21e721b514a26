"""RandAugment on uint8 images with the reference semantics (docs/randaugment.md).

Noisy Student's input noise is RandAugment as implemented in the reference TPU
code (tensorflow/tpu models/official/efficientnet/autoaugment.py, itself a TF
port of the PIL operations of the AutoAugment paper): each of N layers picks
one of 16 ops uniformly at random *per image* and always applies it at a fixed
magnitude M. `keras.layers.RandAugment` is not a substitute: it has 11 ops,
draws one op choice per batch, runs every op on every batch and uses another
magnitude scale (docs/randaugment.md).

Everything here works on a single image of shape [H, W, 3] (H and W may be
unknown until run time), uint8 in and uint8 out, so the input pipeline maps it
per image with `tf.data.Dataset.map(..., num_parallel_calls=AUTOTUNE)` before
batching. Randomness is stateless and comes from an explicit seed of shape [2]
(`tf.random.stateless_*`), so a given (image, seed) always gives the same
output, eagerly or inside a graph.

Each op is registered by name in `OPS` and has the same signature
`op(image, magnitude, seed, params) -> image` so that `RandAugment` can
dispatch them with `tf.switch_case`, which runs only the chosen op.

Example:
  >>> augment = RandAugment(num_layers=2, magnitude=9)
  >>> dataset = dataset.enumerate().map(
  ...     lambda index, image: augment(image, seed=tf.stack([index, 0])),
  ...     num_parallel_calls=tf.data.AUTOTUNE)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import tensorflow as tf

from efficientnet.util.registry import Registry

# The magnitude scale of the reference: M = 10 is the nominal maximum and the
# argument of every op is a linear function of M / 10 (docs/randaugment.md).
# Larger M extrapolates linearly; the paper trains L2 with M = 27.
MAX_MAGNITUDE = 10.0

# Pixels uncovered by geometric ops and the cutout square are mid-grey, the
# reference's `replace_value = [128] * 3` (docs/randaugment.md).
FILL_VALUE = 128

# Magnitude → argument at M = 10, docs/randaugment.md.
MAX_ROTATE_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_POSTERIZE_BITS = 4
MAX_SOLARIZE_THRESHOLD = 256
MAX_SOLARIZE_ADDITION = 110
# The reference's solarize-add only brightens pixels below this value.
SOLARIZE_ADD_THRESHOLD = 128
# Enhancement factor = M / 10 · ENHANCE_SCALE + ENHANCE_OFFSET, so M = 5 is the
# identity (factor 1.0) and M = 10 gives 1.9 (docs/randaugment.md).
ENHANCE_SCALE = 1.8
ENHANCE_OFFSET = 0.1
# PIL's ImageFilter.SMOOTH kernel, which the Sharpness op blends away from.
SMOOTH_KERNEL = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))
SMOOTH_KERNEL_SUM = 13.0

# The reference's ImageNet constants (its `translate_const` and
# `cutout_const`); callers with small images scale them down.
DEFAULT_TRANSLATE_MAX = 100.0
DEFAULT_CUTOUT_MAX = 40


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """Image-size dependent constants shared by all ops.

    Args:
      translate_max: Translation in pixels at M = 10 (docs/randaugment.md: 100 px
        for ImageNet-sized images).
      cutout_max: Half-size of the cutout square in pixels at M = 10
        (docs/randaugment.md: 40 px).
    """

    translate_max: float = DEFAULT_TRANSLATE_MAX
    cutout_max: float = DEFAULT_CUTOUT_MAX


AugmentOp = Callable[[tf.Tensor, float, tf.Tensor, AugmentParams], tf.Tensor]
OPS: Registry[AugmentOp] = Registry("augment op")

# The op list in the reference's order. The order only
# matters for which op a given seed selects, not for the distribution.
DEFAULT_OPS: tuple[str, ...] = (
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
)


def _level(magnitude: float) -> float:
    return float(magnitude) / MAX_MAGNITUDE


def enhance_factor(magnitude: float) -> float:
    """Color/Contrast/Brightness/Sharpness blend factor, M/10·1.8 + 0.1.

    The reference applies no random sign to this factor: below M = 5 the ops
    degrade the image, above it they exaggerate (docs/randaugment.md).
    """
    return _level(magnitude) * ENHANCE_SCALE + ENHANCE_OFFSET


def random_sign(seed: tf.Tensor) -> tf.Tensor:
    """+1.0 or -1.0 with equal probability, a pure function of `seed`.

    Rotate, shear and translate flip the direction of their argument at
    random per image, as the reference's `_randomly_negate_tensor` does.
    """
    draw = tf.random.stateless_uniform([], seed=seed)
    return tf.where(draw < 0.5, -1.0, 1.0)


def blend(image1: tf.Tensor, image2: tf.Tensor, factor: float) -> tf.Tensor:
    """`image1 + factor · (image2 − image1)`, clipped to [0, 255], as uint8.

    The reference's `blend`: factor 0 gives image1, 1 gives image2, values in
    between interpolate and values above 1 extrapolate away from image1. The
    float result is truncated (not rounded) to uint8, as `tf.cast` does in the
    reference. The reference skips the clip for 0 < factor < 1, where it can
    never bind, so clipping always changes nothing.
    """
    image1 = tf.cast(image1, tf.float32)
    image2 = tf.cast(image2, tf.float32)
    blended = image1 + factor * (image2 - image1)
    return tf.cast(tf.clip_by_value(blended, 0.0, 255.0), tf.uint8)


def _grayscale(image: tf.Tensor) -> tf.Tensor:
    """ITU-R 601 luma as uint8 [H, W, 1], exactly `tf.image.rgb_to_grayscale`.

    The reference uses that function, so we do too: it scales to [0, 1],
    weighs with 0.2989/0.5870/0.1140 and converts back by truncating x·255.5.
    """
    return tf.image.rgb_to_grayscale(image)


def _projective_transform(image: tf.Tensor, transform: Sequence[tf.Tensor | float]) -> tf.Tensor:
    """Resamples `image` so output (x, y) reads input ((a0·x + a1·y + a2), (b0·x + b1·y + b2)).

    `transform` is the 8-vector [a0, a1, a2, b0, b1, b2, c0, c1] of
    `ImageProjectiveTransformV3` (only affine maps here, c0 = c1 = 0).
    Nearest-neighbour sampling and a constant fill of 128 match the
    reference's geometric ops on uint8 (docs/randaugment.md).
    """
    transform = tf.reshape(tf.stack([tf.cast(t, tf.float32) for t in transform]), [1, 8])
    transformed = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[tf.newaxis],
        transforms=transform,
        output_shape=tf.shape(image)[:2],
        fill_value=float(FILL_VALUE),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
    return transformed[0]


# --------------------------------------------------------------------------
# Colour ops: a pure function of the pixel values.
# --------------------------------------------------------------------------


@OPS.register("AutoContrast")
def auto_contrast(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Per channel, stretches [min, max] linearly to [0, 255] (PIL's autocontrast).

    Ignores the magnitude. A constant channel (max == min) is left unchanged.
    We compute (x − min) · 255 / (max − min) rather than the reference's
    x · scale + offset: mathematically the same, but the reference form can
    land a hair below 255 for the channel maximum (e.g. range [50, 150] gives
    254.99998 in float32, truncated to 254), which ours never does. Values
    are truncated to uint8 like the reference.
    """
    del magnitude, seed, params
    pixels = tf.cast(image, tf.float32)
    low = tf.reduce_min(pixels, axis=[0, 1])
    high = tf.reduce_max(pixels, axis=[0, 1])
    has_range = high > low
    span = tf.where(has_range, high - low, 1.0)
    stretched = tf.clip_by_value((pixels - low) * 255.0 / span, 0.0, 255.0)
    return tf.where(has_range, tf.cast(stretched, tf.uint8), image)


@OPS.register("Equalize")
def equalize(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Per-channel histogram equalisation with PIL's algorithm, as the reference.

    Ignores the magnitude. For each channel: step = (number of pixels − count
    of the last non-empty histogram bin) // 255; if step is 0 the channel is
    unchanged, else lut[v] = (count of pixels < v + step // 2) // step,
    clipped to 255. All three channels are handled at once: one bincount over
    value + 256·channel and one gather through the stacked lookup tables.
    """
    del magnitude, seed, params
    bins = 256
    channels = tf.shape(image)[-1]
    offsets = tf.range(channels) * bins
    indices = tf.cast(image, tf.int32) + offsets
    histogram = tf.math.bincount(
        tf.reshape(indices, [-1]), minlength=bins * channels, maxlength=bins * channels, dtype=tf.int32
    )
    histogram = tf.reshape(histogram, [channels, bins])
    bin_index = tf.range(bins)
    last_nonempty = tf.reduce_max(tf.where(histogram > 0, bin_index, -1), axis=1)
    last_count = tf.gather(histogram, tf.maximum(last_nonempty, 0), batch_dims=1)
    step = (tf.reduce_sum(histogram, axis=1) - last_count) // 255
    step = step[:, tf.newaxis]
    cumulative = tf.cumsum(histogram, axis=1, exclusive=True)  # pixels strictly below each value
    lut = tf.minimum((cumulative + step // 2) // tf.maximum(step, 1), 255)
    lut = tf.where(step == 0, bin_index, lut)
    return tf.cast(tf.gather(tf.reshape(lut, [-1]), indices), tf.uint8)


@OPS.register("Invert")
def invert(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """255 − x; ignores the magnitude."""
    del magnitude, seed, params
    return 255 - image


@OPS.register("Posterize")
def posterize(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Keeps the int(M/10 · 4) most significant bits of every value.

    The reference shifts right and back left by 8 − bits; we mask instead,
    which is the same for shifts in [0, 8] and lets us clamp the shift there:
    8 or more bits (M ≥ 20) is a no-op, 0 bits (M < 2.5) gives all zeros.
    Shifting a uint8 by 8 or more is undefined in TF, hence the clamp.
    """
    del seed, params
    bits = int(_level(magnitude) * MAX_POSTERIZE_BITS)
    shift = min(max(8 - bits, 0), 8)
    mask = (0xFF << shift) & 0xFF
    return tf.bitwise.bitwise_and(image, tf.constant(mask, tf.uint8))


@OPS.register("Solarize")
def solarize(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Inverts the pixels >= int(M/10 · 256).

    The comparison is in int32 so that thresholds of 256 and more (M ≥ 10)
    stay valid and invert nothing.
    """
    del seed, params
    threshold = int(_level(magnitude) * MAX_SOLARIZE_THRESHOLD)
    return tf.where(tf.cast(image, tf.int32) >= threshold, 255 - image, image)


@OPS.register("SolarizeAdd")
def solarize_add(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Adds int(M/10 · 110) to the pixels below 128, clipping at 255."""
    del seed, params
    addition = int(_level(magnitude) * MAX_SOLARIZE_ADDITION)
    added = tf.cast(tf.clip_by_value(tf.cast(image, tf.int32) + addition, 0, 255), tf.uint8)
    return tf.where(image < SOLARIZE_ADD_THRESHOLD, added, image)


@OPS.register("Color")
def color(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Saturation: blends from the image's grayscale towards the image (PIL ImageEnhance.Color)."""
    del seed, params
    gray = tf.image.grayscale_to_rgb(_grayscale(image))
    return blend(gray, image, enhance_factor(magnitude))


@OPS.register("Contrast")
def contrast(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Blends from a flat grey image at the mean luma towards the image.

    PIL's ImageEnhance.Contrast semantics: the degenerate image is constant,
    equal to the mean of the grayscale image rounded to an integer (PIL's
    `int(mean + 0.5)`). Luma is `tf.image.rgb_to_grayscale`, as in Color,
    rather than PIL's integer L conversion (they differ by at most one level).
    The TPU reference code instead divides the sum of the histogram *counts*
    by 256, i.e. uses (number of pixels) / 256 as the "mean", a known bug that
    makes its Contrast depend on the image size; we do not reproduce it.
    """
    del seed, params
    mean = tf.reduce_mean(tf.cast(_grayscale(image), tf.float32))
    degenerate = tf.fill(tf.shape(image), tf.floor(mean + 0.5))
    return blend(degenerate, image, enhance_factor(magnitude))


@OPS.register("Brightness")
def brightness(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Blends from black towards the image, i.e. scales it by the factor (truncated)."""
    del seed, params
    return blend(tf.zeros_like(image), image, enhance_factor(magnitude))


@OPS.register("Sharpness")
def sharpness(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Blends from a smoothed copy towards the image (PIL ImageEnhance.Sharpness).

    The smoothed copy is the image filtered with [[1,1,1],[1,5,1],[1,1,1]]/13
    on interior pixels; the one-pixel border keeps the original values, as in
    PIL and the reference. The smoothed values are quantised to uint8 before
    blending, like the reference, but rounded to nearest as PIL's filter does
    (the TPU code truncates with `tf.cast`, which turns a float32 result such
    as 99.99999 for an exact 100 into 99).
    """
    del seed, params
    pixels = tf.cast(image, tf.float32)
    kernel = tf.constant(SMOOTH_KERNEL, tf.float32) / SMOOTH_KERNEL_SUM
    kernel = tf.tile(kernel[:, :, tf.newaxis, tf.newaxis], [1, 1, tf.shape(image)[-1], 1])
    # SAME padding keeps the shape (also for images under 3 px); the border
    # values it computes from zero padding are discarded just below.
    smoothed = tf.nn.depthwise_conv2d(pixels[tf.newaxis], kernel, strides=[1, 1, 1, 1], padding="SAME")[0]
    smoothed = tf.clip_by_value(tf.round(smoothed), 0.0, 255.0)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    rows, cols = tf.range(height), tf.range(width)
    interior_rows = (rows > 0) & (rows < height - 1)
    interior_cols = (cols > 0) & (cols < width - 1)
    interior = interior_rows[:, tf.newaxis, tf.newaxis] & interior_cols[tf.newaxis, :, tf.newaxis]
    degenerate = tf.where(interior, smoothed, pixels)
    return blend(degenerate, pixels, enhance_factor(magnitude))


# --------------------------------------------------------------------------
# Geometric ops: nearest-neighbour resampling with a fill of 128.
# --------------------------------------------------------------------------


@OPS.register("Rotate")
def rotate(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Rotates by ±M/10 · 30 degrees about the image centre.

    A positive angle turns the content counter-clockwise, as the reference's
    `contrib.image.rotate` (so +90° equals `np.rot90(image)`). Output pixel
    (x, y) samples input c + R·((x, y) − c), with c = ((W−1)/2, (H−1)/2) and
    R = [[cos, −sin], [sin, cos]].
    """
    del params
    degrees = random_sign(seed) * (_level(magnitude) * MAX_ROTATE_DEGREES)
    radians = degrees * (math.pi / 180.0)
    cos, sin = tf.cos(radians), tf.sin(radians)
    shape = tf.cast(tf.shape(image), tf.float32)
    center_x, center_y = (shape[1] - 1.0) / 2.0, (shape[0] - 1.0) / 2.0
    offset_x = center_x - cos * center_x + sin * center_y
    offset_y = center_y - sin * center_x - cos * center_y
    return _projective_transform(image, [cos, -sin, offset_x, sin, cos, offset_y, 0.0, 0.0])


@OPS.register("ShearX")
def shear_x(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Output (x, y) reads input (x + level·y, y), level = ±M/10 · 0.3."""
    del params
    level = random_sign(seed) * (_level(magnitude) * MAX_SHEAR)
    return _projective_transform(image, [1.0, level, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])


@OPS.register("ShearY")
def shear_y(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Output (x, y) reads input (x, y + level·x), level = ±M/10 · 0.3."""
    del params
    level = random_sign(seed) * (_level(magnitude) * MAX_SHEAR)
    return _projective_transform(image, [1.0, 0.0, 0.0, level, 1.0, 0.0, 0.0, 0.0])


@OPS.register("TranslateX")
def translate_x(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Moves the content right by p = ±M/10 · translate_max pixels (left if p < 0)."""
    pixels = random_sign(seed) * (_level(magnitude) * params.translate_max)
    return _projective_transform(image, [1.0, 0.0, -pixels, 0.0, 1.0, 0.0, 0.0, 0.0])


@OPS.register("TranslateY")
def translate_y(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Moves the content down by p = ±M/10 · translate_max pixels (up if p < 0)."""
    pixels = random_sign(seed) * (_level(magnitude) * params.translate_max)
    return _projective_transform(image, [1.0, 0.0, 0.0, 0.0, 1.0, -pixels, 0.0, 0.0])


@OPS.register("Cutout")
def cutout(image: tf.Tensor, magnitude: float, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Fills a square of half-size int(M/10 · cutout_max) with 128.

    The centre is a uniformly random pixel; the square covers rows
    [cy − s, cy + s) and columns [cx − s, cx + s) (side 2s, as the
    reference's padding arithmetic gives), clipped at the image borders.
    """
    half_size = int(_level(magnitude) * params.cutout_max)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    center = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=height * width, dtype=tf.int32)
    return cutout_at(image, center // width, center % width, half_size)


def cutout_at(image: tf.Tensor, center_y, center_x, half_size) -> tf.Tensor:
    """The Cutout op with a given centre: rows [cy − s, cy + s) × columns [cx − s, cx + s) := 128."""
    rows = tf.range(tf.shape(image)[0])
    cols = tf.range(tf.shape(image)[1])
    in_rows = (rows >= center_y - half_size) & (rows < center_y + half_size)
    in_cols = (cols >= center_x - half_size) & (cols < center_x + half_size)
    inside = in_rows[:, tf.newaxis, tf.newaxis] & in_cols[tf.newaxis, :, tf.newaxis]
    return tf.where(inside, tf.constant(FILL_VALUE, image.dtype), image)


# --------------------------------------------------------------------------
# The policy.
# --------------------------------------------------------------------------


class RandAugment:
    """N layers, each applying one op chosen uniformly per image, at magnitude M.

    Follows the reference's `distort_image_with_randaugment` (docs/randaugment.md):
    no per-op probability (the chosen op always runs), the same
    magnitude for every op, random signs for geometric ops. Randomness is a
    pure function of `seed`, so results are reproducible and independent of
    how many parallel calls `tf.data` makes.

    Args:
      num_layers: N, the number of ops applied in sequence (reference: 2).
      magnitude: M on the scale where 10 is the nominal maximum; larger values
        extrapolate (Noisy Student uses M = 27 for L2, docs/noisy_student.md).
      translate_max: Translation in pixels at M = 10 (100 for ImageNet).
      cutout_max: Cutout half-size in pixels at M = 10 (40 for ImageNet).
      ops: Names of the ops to choose from (default: all 16, `DEFAULT_OPS`).

    Example:
      >>> augment = RandAugment(num_layers=2, magnitude=27)
      >>> augmented = augment(image_uint8, seed=tf.constant([7, 0]))
    """

    def __init__(
        self,
        num_layers: int = 2,
        magnitude: float = 10.0,
        translate_max: float = DEFAULT_TRANSLATE_MAX,
        cutout_max: float = DEFAULT_CUTOUT_MAX,
        ops: Sequence[str] | None = None,
    ):
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 0:
            raise ValueError(f"num_layers must be an integer >= 0, got {num_layers!r}")
        if not _is_number(magnitude) or not magnitude >= 0:
            raise ValueError(f"magnitude must be a number >= 0, got {magnitude!r}")
        if not _is_number(translate_max) or not translate_max >= 0:
            raise ValueError(f"translate_max must be a number >= 0 (pixels), got {translate_max!r}")
        if not _is_number(cutout_max) or not cutout_max >= 0:
            raise ValueError(f"cutout_max must be a number >= 0 (pixels), got {cutout_max!r}")
        if isinstance(ops, str):
            raise ValueError(f"ops must be a sequence of op names, not the string {ops!r}")
        op_names = tuple(DEFAULT_OPS if ops is None else ops)
        if not op_names:
            raise ValueError("ops must name at least one op")
        self.num_layers = num_layers
        self.magnitude = float(magnitude)
        self.params = AugmentParams(translate_max=float(translate_max), cutout_max=float(cutout_max))
        self.op_names = op_names
        self._ops = [OPS.get(name) for name in op_names]  # unknown names list the valid ones

    def choose_ops(self, seed: tf.Tensor) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """Per layer, the chosen op's index into `op_names` (int32 scalar) and its seed.

        `__call__` uses exactly these draws, so tests and tools can see which
        ops a seed selects without running them.
        """
        if self.num_layers == 0:
            return []
        layer_seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=2 * self.num_layers)
        draws = []
        for layer in range(self.num_layers):
            choice_seed, op_seed = layer_seeds[2 * layer], layer_seeds[2 * layer + 1]
            index = tf.random.stateless_uniform([], seed=choice_seed, maxval=len(self._ops), dtype=tf.int32)
            draws.append((index, op_seed))
        return draws

    def __call__(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Augments one uint8 image [H, W, 3] with randomness from `seed` (int32/int64 [2])."""
        image = tf.convert_to_tensor(image)
        if image.dtype != tf.uint8:
            raise ValueError(f"image must be uint8, got {image.dtype.name}")
        if image.shape.rank != 3:
            raise ValueError(f"image must have shape [height, width, channels], got {image.shape}")
        static_shape = image.shape
        for index, op_seed in self.choose_ops(seed):
            # switch_case runs only the chosen branch, in graph mode as eagerly.
            branches = [functools.partial(op, image, self.magnitude, op_seed, self.params) for op in self._ops]
            image = tf.switch_case(index, branches)
            image.set_shape(static_shape)
        return image

    def augment_batch(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """Augments a uint8 batch [B, H, W, 3], each image with its own seed split from `seed`.

        Convenience for tests and notebooks; the input pipeline should map
        `__call__` per image with `num_parallel_calls`, which is faster.
        """
        images = tf.convert_to_tensor(images)
        seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=tf.shape(images)[0])
        return tf.map_fn(lambda args: self(args[0], args[1]), (images, seeds), fn_output_signature=tf.uint8)

    def __repr__(self) -> str:
        return (
            f"RandAugment(num_layers={self.num_layers}, magnitude={self.magnitude}, "
            f"translate_max={self.params.translate_max}, cutout_max={self.params.cutout_max}, "
            f"ops={list(self.op_names)})"
        )


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
