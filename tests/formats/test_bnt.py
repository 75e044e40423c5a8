"""The .bnt reader against bytes built with struct from the published layout."""

import numpy as np
import pytest

from fer3d_bench.errors import FormatError
from fer3d_bench.formats import read_bnt

from handmade import ZMIN, bnt_bytes


def test_reads_header_and_five_row_major_planes(tmp_path):
    planes = np.arange(30, dtype=np.float64)
    planes[12:14] = ZMIN  # z of the first two points: background
    path = tmp_path / "bs000_N_N_0.bnt"
    path.write_bytes(bnt_bytes(planes=planes))
    grid = read_bnt(path)
    assert (grid.nrows, grid.ncols, grid.zmin) == (2, 3, ZMIN)
    assert grid.image_name == "bs000_N_N_0.png"
    np.testing.assert_array_equal(grid.x, [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(grid.y, [[6, 7, 8], [9, 10, 11]])
    np.testing.assert_array_equal(grid.v[1], [27, 28, 29])
    np.testing.assert_array_equal(grid.valid, [[False, False, True], [True, True, True]])


def test_background_is_masked_on_z_not_on_x(tmp_path):
    planes = np.zeros(30)
    planes[14] = ZMIN  # z of point (0, 2) is background although its x is 0
    planes[0] = ZMIN  # x of point (0, 0) equals zmin but its z is real
    path = tmp_path / "g.bnt"
    path.write_bytes(bnt_bytes(planes=planes))
    valid = read_bnt(path).valid
    assert valid[0, 0] and not valid[0, 2]
    assert valid.sum() == 5


@pytest.mark.parametrize(
    "data, message",
    [
        (bnt_bytes()[:-8], "truncated: header implies 273 bytes, file has 265"),
        (bnt_bytes() + b"\0" * 8, "trailing bytes"),
        (bnt_bytes(count=29, planes=np.zeros(29)), r"header says 29 values but nrows\*ncols\*5"),
        (bnt_bytes()[:10], "shorter than the 14-byte header"),
        (bnt_bytes()[:20], "ends inside the header"),
        (bnt_bytes(nrows=0, planes=np.zeros(0)), "empty grid"),
        (b"", "shorter than"),
    ],
)
def test_bad_grids_are_format_errors_naming_the_file(tmp_path, data, message):
    path = tmp_path / "bs001_E_FEAR_0.bnt"
    path.write_bytes(data)
    with pytest.raises(FormatError, match=message) as info:
        read_bnt(path)
    assert "bs001_E_FEAR_0.bnt" in str(info.value)
