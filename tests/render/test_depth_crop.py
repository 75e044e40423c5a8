"""The depth convention and the joint crop, on arrays built by hand."""

import numpy as np
import pytest

from fer3d_bench.render.crop import CropBox, crop_pair, face_crop_box
from fer3d_bench.render.depth import DEPTH_RANGE_MM, DEPTH_STEP_MM, decode_depth, encode_depth


def test_encoding_nearest_is_brightest_background_is_zero():
    z = np.array([[np.nan, 100.0, 99.0], [90.0, 100.0 - DEPTH_RANGE_MM, -500.0]])
    depth = encode_depth(z)
    assert depth.dtype == np.uint16
    assert depth[0, 0] == 0  # background
    assert depth[0, 1] == 65535  # the nearest point
    assert depth[0, 2] == 65535 - 400  # 1 mm behind = 400 steps of 2.5 um
    assert depth[1, 0] == 65535 - 4000
    assert depth[1, 1] == 1  # exactly at the end of the range
    assert depth[1, 2] == 1  # beyond the range: clipped, still face


def test_decoding_inverts_encoding_to_the_step():
    rng = np.random.default_rng(1)
    z = rng.uniform(0, 120, (20, 20))
    z[rng.random((20, 20)) < 0.3] = np.nan
    behind = decode_depth(encode_depth(z))
    expected = np.nanmax(z) - z
    assert np.array_equal(np.isnan(behind), np.isnan(z))
    assert np.nanmax(np.abs(behind - expected)) <= DEPTH_STEP_MM / 2 + 1e-12


def test_all_background_encodes_to_zeros():
    assert not encode_depth(np.full((3, 3), np.nan)).any()


def test_crop_box_is_a_centred_square_with_margin():
    mask = np.zeros((100, 80), bool)
    mask[20:60, 30:50] = True  # 40 rows x 20 columns
    box = face_crop_box(mask, margin=0.25)
    assert box.side == 60  # 40 * (1 + 2 * 0.25)
    assert (box.y0 + box.side / 2, box.x0 + box.side / 2) == (40, 40)


def test_crop_keeps_rgb_and_depth_aligned_and_pads_outside():
    rgb = np.zeros((50, 60, 3), np.uint8)
    z = np.full((50, 60), np.nan)
    rgb[10:30, 20:40] = 200
    z[10:30, 20:40] = 50.0
    rgb[14:18, 24:28] = 255  # a marker in both images
    z[14:18, 24:28] = 60.0
    box = CropBox(x0=10, y0=-10, side=60)  # reaches above the image
    out_rgb, out_z = crop_pair(rgb, z, box, 30)
    assert out_rgb.shape == (30, 30, 3) and out_z.shape == (30, 30)
    face_rgb = out_rgb.max(axis=2) > 100
    assert np.array_equal(face_rgb, np.isfinite(out_z))
    rows, cols = np.mgrid[0:30, 0:30]
    excess_rgb = np.clip(out_rgb[..., 0].astype(float) - 200, 0, None)
    excess_z = np.clip(np.nan_to_num(out_z, nan=50.0) - 50, 0, None)
    for excess in (excess_rgb, excess_z):
        assert excess.sum() > 0
    centre = [
        ((rows * e).sum() / e.sum(), (cols * e).sum() / e.sum()) for e in (excess_rgb, excess_z)
    ]
    np.testing.assert_allclose(centre[0], centre[1], atol=0.1)
    np.testing.assert_allclose(centre[1], [(16 + 10) / 2 - 0.5, (26 - 10) / 2 - 0.5], atol=0.3)
    assert not out_rgb[:4].any() and np.isnan(out_z[:4]).all()  # padding above the image


def test_masked_resize_does_not_bleed_background_into_depth():
    z = np.full((64, 64), np.nan)
    z[8:56, 8:56] = 80.0
    _, out = crop_pair(np.zeros((64, 64, 3), np.uint8), z, CropBox(0, 0, 64), 23)
    assert np.nanmin(out) == pytest.approx(80.0) and np.nanmax(out) == pytest.approx(80.0)
