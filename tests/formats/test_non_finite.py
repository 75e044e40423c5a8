"""A NaN or an infinity where a reader needs a finite number is a FormatError naming the file
and where in it (line or point): NaN passes every later comparison unnoticed. Where the format
allows a missing value (a .bnt point, a Bosphorus landmark), it is read as missing instead."""

import numpy as np
import pytest

from fer3d_bench.errors import FormatError
from fer3d_bench.formats import parse_vrml, read_bnd, read_bnt, read_lm2, read_lm3

from handmade import LM2, LM3, bnt_bytes
from handmade import TINY_VRML as VRML

BND = "0\t0\t0\t0\n5\t2\t1\t1.5\n7\t1\t1\t1\n"


@pytest.mark.parametrize(
    "text, message",
    [
        (BND.replace("2\t1\t1.5", "2\tnan\t1.5"), "line 2: '2 nan 1.5' is not all finite"),
        (BND.replace("7\t1\t1\t1", "7\t1\tinf\t1"), "line 3: "),
        (BND.replace("7\t1\t1\t1", "7\t-Infinity\t1\t1"), "line 3: "),
        (BND.replace("5\t2", "9e99\t2"), "line 2: vertex index '9e99' is not numeric"),
        (BND.replace("7\t1", "99999999999\t1"), "line 3: vertex index 99999999999 is out of"),
    ],
)
def test_non_finite_bnd_landmarks_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "F0001_NE00WH_F3D.bnd"
    path.write_text(text)
    with pytest.raises(FormatError, match=message) as info:
        read_bnd(path)
    assert str(info.value).startswith(f"{path}: line ")
    assert "\n" not in str(info.value)


def test_bosphorus_landmarks_may_be_missing(tmp_path):
    """The aligner names a non-finite .lm2/.lm3 point as a problem of the scan (flagged, with
    its label): the readers keep it, and say which line a malformed one is on."""
    (tmp_path / "a.lm3").write_text(LM3.replace("0.0 -5.5 101.125", "0.0 NaN 101.125"))
    (tmp_path / "a.lm2").write_text(LM2.replace("181 301", "181 inf"))
    assert np.isnan(read_lm3(tmp_path / "a.lm3").by_label()["Nose tip"][1])
    assert np.isinf(read_lm2(tmp_path / "a.lm2").points[1, 1])
    (tmp_path / "b.lm2").write_text(LM2.replace("181 301", "181 abc"))
    with pytest.raises(FormatError, match=r"b\.lm2: line 12: coordinates are not numeric"):
        read_lm2(tmp_path / "b.lm2")


def test_finite_landmarks_still_read(tmp_path):
    path = tmp_path / "F0001_NE00WH_F3D.bnd"
    path.write_text(BND.replace("2\t1\t1.5", "2,1e-3,-1.5"))
    marks = read_bnd(path)
    assert marks.indices.tolist() == [0, 5, 7]
    np.testing.assert_array_equal(marks.points[1], [2, 1e-3, -1.5])


def test_non_finite_texture_coordinates_are_refused():
    with pytest.raises(FormatError, match="texture coordinate 2 holds a non-finite value"):
        parse_vrml(VRML.replace("0.5 0, 0.5 1,", "0.5 0, nan 1,"), "F0001_AN01WH_F3D.wrl")


def test_a_vertex_at_infinity_is_named():
    with pytest.raises(FormatError, match=r"F3D\.wrl: vertex 4 holds a non-finite value"):
        parse_vrml(VRML.replace("0 1 0, 2 0 0", "0 1 0, 2 inf 0"), "F0001_AN01WH_F3D.wrl")


def test_a_grid_point_with_a_non_finite_coordinate_is_no_face_point(tmp_path):
    path = tmp_path / "bs000_N_N_0.bnt"
    for plane, at in (("x", 0), ("y", 6), ("z", 12), ("u", 18), ("v", 24)):
        planes = np.arange(30, dtype=np.float64)
        planes[at + 4] = np.nan  # point (row 1, column 1) of that plane
        planes[at + 5] = np.inf  # and (row 1, column 2)
        path.write_bytes(bnt_bytes(planes=planes))
        valid = read_bnt(path).valid
        assert valid.sum() == 4 and not valid[1, 1] and not valid[1, 2], plane
