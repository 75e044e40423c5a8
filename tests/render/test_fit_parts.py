"""The fit's and the texture check's building blocks against the plain scipy computations they
replace (written for speed): the same figures, so the checks keep their semantics."""

import numpy as np
import pytest
from scipy import ndimage

from fer3d_bench.render import align, fit


def test_luminance_is_the_bilinear_interpolation_of_each_channel():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    cols = rng.uniform(-3, 34, 500)  # some outside: the border pixels repeat
    rows = rng.uniform(-3, 26, 500)
    cols[:4], rows[:4] = [0, 30, 30, 0], [0, 0, 22, 22]  # the corners exactly
    expected = sum(
        w * ndimage.map_coordinates(image[..., k], [rows, cols], order=1, mode="nearest",
                                    output=np.float64)
        for k, w in enumerate((0.299, 0.587, 0.114))
    )  # fmt: skip
    np.testing.assert_allclose(align._luminance_at(image, cols, rows), expected, atol=1e-9)


@pytest.mark.parametrize("sigma", [1.3, 2.0, 4.7])
def test_blur_at_a_few_pixels_is_the_blurred_mask_there(sigma):
    rng = np.random.default_rng(1)
    mask = np.zeros((60, 50), bool)
    mask[5:58, 0:40] = rng.random((53, 40)) < 0.8  # touching the image's left edge
    rows, cols = np.nonzero(fit._outline(mask))
    blurred = ndimage.gaussian_filter(mask.astype(np.float64), sigma, mode="constant", truncate=3)
    np.testing.assert_allclose(
        fit._blurred_at(mask, rows, cols, sigma), blurred[rows, cols], atol=1e-12
    )


def test_holes_are_the_background_that_does_not_reach_the_border():
    rng = np.random.default_rng(2)
    for _ in range(50):
        mask = ndimage.binary_opening(rng.random((30, 40)) < 0.7)
        if rng.random() < 0.5:
            mask = np.pad(mask, 1)  # as in a box grown by a pixel: one region around it
        labels, _ = ndimage.label(~mask)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        expected = (labels > 0) & ~np.isin(labels, edge)
        np.testing.assert_array_equal(fit._holes(mask), expected)
