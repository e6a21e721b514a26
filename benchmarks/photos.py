"""Synthetic photo-like images for the benchmarks: cheap to make, and costing what photos cost.

A benchmark of augmentation or of JPEG decoding measures nothing useful on
random noise: histogram ops (Equalize, AutoContrast) and the smoothing in
Sharpness behave unlike on real photos, and noise compresses to several times
a photo's JPEG size. Smooth images compress far better than photos instead,
which makes decoding look cheap. These images have what matters of both:
a colour gradient with flat rectangles and discs (large smooth regions,
sharp edges) and, with `texture`, fine grain on top (the high frequencies a
camera image has), so that a 500×375 image at JPEG quality 90 is about
100 KiB, the size of a typical ImageNet training image.

Pure numpy and Pillow (no TensorFlow), one image at a time, in a few
milliseconds each.
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image

# Grain amplitude (grey levels) drawn per image, times `texture`: at texture 1,
# 500×375 images at quality 90 are 76–113 KiB, mean 98 KiB (10,240 images measured).
GRAIN_LEVELS = (10.0, 22.0)
GRAIN_SEED = 1234


def photo(rng: np.random.Generator, height: int, width: int, *, texture: float = 0.0) -> np.ndarray:
    """One uint8 image [height, width, 3]: gradient, 3 rectangles, 2 discs, and grain times `texture`.

    With `texture=0` the image is smooth, and the draws from `rng` are those
    that benchmarks/augment.py has always made, so its images do not change.
    """
    y, x = _grid(height, width)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * x + np.sin(angle) * y
    start, end = rng.uniform(0, 255, size=(2, 3))
    # Channels first: every step below is a plain [h, w] array operation,
    # several times faster than broadcasting over a last axis of 3.
    image = start[:, None, None] + (end - start)[:, None, None] * ((ramp - ramp.min()) / np.ptp(ramp))
    for _ in range(3):
        top, left = rng.integers(0, [height, width])
        box_height, box_width = rng.integers([height // 8, width // 8], [height // 2, width // 2])
        image[:, top : top + box_height, left : left + box_width] = rng.uniform(0, 255, size=3)[:, None, None]
    for _ in range(2):
        center = rng.uniform(0, 1, size=2)
        radius = rng.uniform(0.05, 0.25)
        disc = (y - center[0]) ** 2 + (x - center[1]) ** 2 < radius**2
        image[:, disc] = rng.uniform(0, 255, size=3)[:, None]
    if texture > 0:
        top, left = rng.integers(0, [height, width])
        image += (
            texture * rng.uniform(*GRAIN_LEVELS) * _grain(height, width)[:, top : top + height, left : left + width]
        )
    return np.clip(image, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def synthetic_images(num_images: int, resolution: int, seed: int) -> np.ndarray:
    """`num_images` smooth square images [n, resolution, resolution, 3] (benchmarks/augment.py's)."""
    rng = np.random.default_rng(seed)
    return np.stack([photo(rng, resolution, resolution) for _ in range(num_images)])


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 image, 4:2:0 chroma subsampling (the common camera and ImageNet layout)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    return buffer.getvalue()


@functools.cache
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates in [0, 1), float32 [height, width] each."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return y / height, x / width


@functools.cache
def _grain(height: int, width: int) -> np.ndarray:
    """Unit grain [3, 2·height, 2·width], made once: each image adds a window of it at a random offset.

    Mostly luminance (the same noise in every channel), at one- and two-pixel
    scales, with a weaker colour part: camera noise and fine texture look so.
    """
    rng = np.random.default_rng(GRAIN_SEED)
    shape = (2 * height, 2 * width)
    fine = rng.standard_normal(shape, dtype=np.float32)
    coarse = rng.standard_normal((height + 1, width + 1), dtype=np.float32).repeat(2, 0).repeat(2, 1)
    colour = 0.3 * rng.standard_normal((3, *shape), dtype=np.float32)
    return fine + coarse[: shape[0], : shape[1]] + colour
