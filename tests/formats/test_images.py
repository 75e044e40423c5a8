"""Image decoding: formats, bit depth and undecodable files."""

import numpy as np
import pytest
from PIL import Image

from fer3d_bench.errors import FormatError
from fer3d_bench.formats import read_depth16, read_rgb
from fer3d_bench.formats.images import png_bytes


def test_rgb_bmp_and_grey_png(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.bmp")
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.bmp"), rgb)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    grey = read_rgb(tmp_path / "g.png")
    assert grey.shape == (5, 7, 3) and (grey[..., 2] == rgb[..., 0]).all()


def test_depth16_keeps_every_bit(tmp_path):
    depth = np.array([[0, 1, 4000], [65535, 300, 9785]], dtype=np.uint16)
    Image.fromarray(depth).save(tmp_path / "d.png")
    out = read_depth16(tmp_path / "d.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, depth)


def test_depth16_refuses_8_bit(tmp_path):
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "d8.png")
    with pytest.raises(FormatError, match=r"d8\.png: expected a 16-bit single-channel image"):
        read_depth16(tmp_path / "d8.png")


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"])
def test_undecodable_and_truncated_images(tmp_path, content):
    path = tmp_path / "F0001_NE00WH_F2D.bmp"
    path.write_bytes(content)
    with pytest.raises(FormatError, match="F2D.bmp: image does not decode"):
        read_rgb(path)


def test_truncated_png_pixel_data(tmp_path):
    Image.fromarray(np.full((64, 64, 3), 7, np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="cut.png: image does not decode"):
        read_rgb(tmp_path / "cut.png")


def test_png_writer_is_lossless_and_deterministic(tmp_path):
    """render-depth's own PNG writer: Pillow (and so the merged-file builder) reads back every
    bit, and the same image always gives the same bytes."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (31, 17, 3), dtype=np.uint8)
    depth = rng.integers(0, 65536, (9, 40), dtype=np.uint16)
    depth[0, :3] = [0, 1, 65535]
    for image, read in ((rgb, read_rgb), (depth, read_depth16)):
        data = png_bytes(image)
        assert data == png_bytes(image.copy())
        path = tmp_path / "x.png"
        path.write_bytes(data)
        out = read(path)
        assert out.dtype == image.dtype
        np.testing.assert_array_equal(out, image)
        np.testing.assert_array_equal(np.asarray(Image.open(path)), image)


@pytest.mark.parametrize(
    "image",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.uint16), np.zeros((0, 4, 3), np.uint8)],
)
def test_png_writer_refuses_what_it_does_not_write(image):
    with pytest.raises(ValueError):
        png_bytes(image)
