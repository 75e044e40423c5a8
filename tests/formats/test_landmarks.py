"""Landmark readers against hand-written text in the published layouts."""

import numpy as np
import pytest

from fer3d_bench.errors import FormatError
from fer3d_bench.formats import read_bnd, read_lm2, read_lm3

from handmade import LM2, LM3


def test_bnd_reads_tab_separated_index_and_xyz(tmp_path):
    path = tmp_path / "F0001_NE00WH_F3D.bnd"
    path.write_text("12\t-1.5\t2.0\t3.25\n7\t4\t5\t6\n\n")
    marks = read_bnd(path)
    np.testing.assert_array_equal(marks.indices, [12, 7])
    np.testing.assert_array_equal(marks.points, [[-1.5, 2.0, 3.25], [4, 5, 6]])


def test_lm3_and_lm2_read_labels_and_points(tmp_path):
    (tmp_path / "a.lm3").write_text(LM3)
    (tmp_path / "a.lm2").write_text(LM2)
    lm3, lm2 = read_lm3(tmp_path / "a.lm3"), read_lm2(tmp_path / "a.lm2")
    assert lm3.labels == lm2.labels == ("Outer left eyebrow", "Nose tip", "Chin middle")
    np.testing.assert_array_equal(lm3.by_label()["Nose tip"], [0, -5.5, 101.125])
    np.testing.assert_array_equal(lm2.points[2], [182, 402.25])


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("x.bnd", "12 1 2\n", "expected 4 values, found 3"),
        ("x.bnd", "a 1 2 3\n", "not numeric"),
        ("x.bnd", "\n\n", "no landmark lines"),
        ("x.bnd", "-1 1 2 3\n", "negative vertex index"),
        ("x.lm3", LM3.replace("3 landmarks:", "4 landmarks:"), "announces 4 landmarks"),
        ("x.lm3", LM3.replace("3 landmarks:\n", ""), "no 'N landmarks' line"),
        ("x.lm3", LM3.replace("0.0 -5.5 101.125", "0.0 -5.5"), "expected 3 coordinates"),
        ("x.lm2", LM2.replace("Labels:", "Names:"), "missing section"),
        ("x.lm2", LM2.replace("182 402.25\n", ""), "2 coordinate lines"),
        ("x.lm2", LM2.replace("181 301", "181 abc"), "not numeric"),
    ],
)
def test_bad_landmark_files(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    reader = {"bnd": read_bnd, "lm3": read_lm3, "lm2": read_lm2}[name.split(".")[1]]
    with pytest.raises(FormatError, match=message) as info:
        reader(path)
    assert name in str(info.value)


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="cannot read file"):
        read_lm3(tmp_path / "absent.lm3")
