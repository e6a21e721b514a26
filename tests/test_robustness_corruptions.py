"""Built-in ImageNet-C corruptions: contract, determinism, hand-checked pixels, severity trend."""

import numpy as np
import pytest

from efficientnet.data import corruptions
from efficientnet.data.corruptions import BENCHMARK_CORRUPTIONS, SEVERITIES
from efficientnet.util.registry import UnknownNameError

RANDOM = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
}
# Mean absolute difference from the clean image never decreases from severity 1 to 5.
MONOTONE = {
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "defocus_blur",
    "gaussian_blur",
    "motion_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
}
# Not monotone in that distance, by the benchmark's own parameters (see the docstrings):
# snow (severity 3 has fewer, larger flakes than 2), frost (3 → 4 only lowers the image
# weight by 0.05, which brings a bright frost closer to a dark-ish image), fog (3 and 4 share
# the strength 2.5 and differ in roughness only): severity 5 is still farther than severity 1.
# glass_blur (severity 2 shuffles once, 1 twice), elastic_transform (1-2 large affine jitter,
# 3-5 small local warps), saturate (1-2 desaturate, 3-5 oversaturate): no order at all.
FARTHER_AT_5 = {"snow", "frost", "fog"}
UNORDERED = {"glass_blur", "elastic_transform", "saturate"}


def smooth_images(side=64, count=8):
    """A smooth colour pattern (a few periods of sines), identical copies."""
    ys, xs = np.mgrid[0:side, 0:side] / side
    image = np.stack(
        [
            0.5 + 0.3 * np.sin(2 * np.pi * 3 * xs),
            0.5 + 0.3 * np.cos(2 * np.pi * 2 * ys),
            0.5 + 0.3 * np.sin(2 * np.pi * 2 * (xs + ys)),
        ],
        axis=-1,
    )
    return np.repeat(np.rint(image * 255).astype(np.uint8)[None], count, axis=0)


def test_registry_holds_the_15_benchmark_corruptions_and_3_extras():
    assert set(corruptions.CORRUPTIONS.names()) == {
        *BENCHMARK_CORRUPTIONS,
        "speckle_noise",
        "gaussian_blur",
        "saturate",
    }
    assert MONOTONE | FARTHER_AT_5 | UNORDERED == set(corruptions.CORRUPTIONS.names())
    with pytest.raises(UnknownNameError, match="valid names: brightness, contrast"):
        corruptions.corrupt(smooth_images(8, 1), "spatter", 1)


@pytest.mark.parametrize("name", corruptions.BUILTIN_CORRUPTIONS)
def test_uint8_in_uint8_out_shape_kept_deterministic(name):
    images = smooth_images(side=40, count=2)
    images[1] = 255 - images[1]
    for severity in SEVERITIES:
        output = corruptions.corrupt(images, name, severity, seed=3)
        assert output.dtype == np.uint8 and output.shape == images.shape
        assert np.array_equal(output, corruptions.corrupt(images, name, severity, seed=3))
    other_seed = corruptions.corrupt(images, name, 5, seed=4)
    assert np.array_equal(other_seed, corruptions.corrupt(images, name, 5, seed=3)) == (name not in RANDOM)
    # One image [H, W, 3] works too; non-square images keep their shape.
    assert corruptions.corrupt(images[0], name, 2).shape == images.shape[1:]
    assert corruptions.corrupt(images[:, :, :24], name, 3).shape == (2, 40, 24, 3)


def test_severity_trend_on_a_smooth_image():
    images = smooth_images()
    for name in corruptions.BUILTIN_CORRUPTIONS:
        distances = [np.abs(corruptions.corrupt(images, name, s).astype(float) - images).mean() for s in SEVERITIES]
        assert distances[-1] > 0, name
        if name in MONOTONE:
            assert all(a <= b for a, b in zip(distances, distances[1:], strict=False)), (name, distances)
        elif name in FARTHER_AT_5:
            assert distances[-1] > distances[0], (name, distances)


def test_hand_checked_pixels():
    # contrast, severity 1 (c = 0.4): channel mean 100 → 100 ± 0.4·100.
    two = np.array([[[[0, 0, 0], [200, 200, 200]]]], np.uint8)
    assert corruptions.corrupt(two, "contrast", 1)[0, 0].tolist() == [[60] * 3, [140] * 3]
    # brightness, severity 2 (+0.2 on HSV value 0.6): every channel × 0.8 / 0.6.
    pixel = np.array([[[[153, 102, 51]]]], np.uint8)
    assert corruptions.corrupt(pixel, "brightness", 2)[0, 0, 0].tolist() == [204, 136, 68]
    # gaussian_noise, severity 1: std 0.08 · 255 ≈ 20.4 on a mid-grey 224 px image.
    grey = np.full((1, 224, 224, 3), 128, np.uint8)
    noise = corruptions.corrupt(grey, "gaussian_noise", 1).astype(float) - 128
    assert noise.std() == pytest.approx(20.4, abs=0.3) and abs(noise.mean()) < 0.3


def test_lengths_are_the_benchmarks_at_224_px_and_scale_with_the_image():
    # defocus severity 1 at 224 px: the benchmark's 17x17 disk of radius 3, normalised.
    kernel = corruptions._disk_kernel(3, 0.1, 8, 3)
    assert kernel.shape == (17, 17) and kernel.sum() == pytest.approx(1.0)
    assert np.allclose(kernel, kernel.T) and kernel[8, 8] == kernel.max()
    # A 32 px image gets a 7x smaller blur: defocus severity 1 (radius 3/7 px) is the identity.
    images = smooth_images(side=32, count=1)
    assert np.array_equal(corruptions.corrupt(images, "defocus_blur", 1), images)
    assert not np.array_equal(corruptions.corrupt(images, "defocus_blur", 5), images)
