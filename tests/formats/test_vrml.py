"""The VRML reader against VRML text written by hand (not by the sample generator)."""

import numpy as np
import pytest

from fer3d_bench.errors import FormatError
from fer3d_bench.formats import parse_vrml, read_vrml, vrml

from handmade import TINY_VRML as TINY


def test_parses_points_polygons_and_separate_texture_indices():
    mesh = parse_vrml(TINY)
    assert mesh.vertices.shape == (8, 3)
    np.testing.assert_array_equal(mesh.vertices[5], [2, 1, 1.5])
    np.testing.assert_array_equal(mesh.vertices[7], [0.5, 2, -20])
    assert mesh.polygon_sizes == {3: 2, 4: 1, 5: 1}
    np.testing.assert_array_equal(
        mesh.faces,
        [[0, 1, 2], [0, 2, 3], [1, 4, 5], [1, 5, 2], [3, 2, 5], [3, 5, 6], [3, 6, 7]],
    )
    assert mesh.texcoords.shape == (7, 2)
    # the last texture polygon has no closing -1, which VRML allows
    np.testing.assert_array_equal(mesh.tex_faces[2:4], [[6, 4, 5], [6, 5, 2]])
    np.testing.assert_array_equal(mesh.tex_faces[-1], [3, 6, 0])
    assert mesh.texture_url == "F0001_AN01WH_F3D.bmp"


def test_fan_triangulation_preserves_polygon_area():
    mesh = parse_vrml(TINY)
    v = mesh.vertices[:, :2]
    a, b, c = (v[mesh.faces[:, i]] for i in range(3))
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    # triangles 0,1 (unit square) + quad 1-4-5-2 (unit square) + pentagon 3-2-5-6-7
    pentagon = np.array([[0, 1], [1, 1], [2, 1], [1.5, 2], [0.5, 2]])
    x, y = pentagon.T
    shoelace = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    assert abs(cross).sum() / 2 == pytest.approx(1 + 1 + shoelace)


def test_missing_texcoord_index_reuses_coord_index():
    text = (
        TINY.split("texCoordIndex")[0].replace(
            "0 0, 0.5 0, 0.5 1, 0 1, 1 0, 1 1, 0.5 0.5", "0 0 1 0 1 1 0 1 2 0 2 1 1 1 0 1"
        )
        + "} } ] }"
    )
    mesh = parse_vrml(text)
    np.testing.assert_array_equal(mesh.tex_faces, mesh.faces)


def test_reads_file_and_names_it_in_errors(tmp_path):
    good = tmp_path / "ok_F3D.wrl"
    good.write_text(TINY)
    assert read_vrml(good).faces.shape == (7, 3)
    bad = tmp_path / "bad_F3D.wrl"
    bad.write_text(TINY.replace("1,4,5,2", "1,4,9,2"))
    with pytest.raises(FormatError, match=r"bad_F3D\.wrl: coordIndex refers to point 9"):
        read_vrml(bad)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace("IndexedFaceSet", "PointSet"), "no IndexedFaceSet"),
        (lambda t: t.replace("#VRML V2.0 utf8", "#VRML V1.0 ascii"), "not a VRML 2.0 file"),
        (lambda t: t.replace("0 0 0, 1 0 0", "0 0 0, 1 0"), "not a multiple of 3"),
        (lambda t: t.replace("0 0 0, 1 0 0", "0 0 nan, 1 0 0"), "non-finite"),
        (lambda t: t.replace("0, 1, 2, -1,", "0, 1, -1,"), "at least 3 needed"),
        (lambda t: t.replace("0 2 3 -1\n", "0 2 -7 -1\n"), "refers to point -7"),
        (lambda t: t.replace("3 2 5 6 0 ]", "3 2 5 6 9 ]"), "texCoordIndex refers to point 9"),
        (lambda t: t.replace("3 2 5 6 0 ]", "3 2 5 6 ]"), "sizes differ"),
        (lambda t: t[: t.index("coordIndex [") + 20], "never closed"),
        (lambda t: t.replace("1,4,5,2", "1,4,x,2"), "not a list of integers"),
    ],
)
def test_malformed_vrml_gives_format_error(edit, message):
    with pytest.raises(FormatError, match=message):
        parse_vrml(edit(TINY), "scan_F3D.wrl")


def test_empty_face_list_is_an_error():
    text = TINY.replace(
        TINY[TINY.index("coordIndex [") : TINY.index("texCoord ")], "coordIndex [ ]\n"
    )
    with pytest.raises(FormatError, match="no faces"):
        parse_vrml(text)


def _numpy_numbers(text: str) -> np.ndarray:
    """What the reader gave before plain decimals had a fast path: numpy's own float parser."""
    return np.fromstring(text.replace(",", " "), dtype=np.float64, sep=" ")


def test_plain_decimals_are_read_bit_for_bit_as_numpy_reads_them():
    texts = ["-0.000 0.0 -0 5. .5 -.5 007.250 123456789012.345"]
    rng = np.random.default_rng(7)
    for _ in range(300):
        numbers = []
        for _ in range(rng.integers(1, 40)):
            whole = str(rng.integers(0, 10 ** rng.integers(1, 8))) if rng.random() < 0.9 else ""
            decimals = "".join(rng.choice(list("0123456789"), rng.integers(0, 8)))  # <= 15 digits
            number = ("-" if rng.random() < 0.4 else "") + whole
            number += "." + decimals if rng.random() < 0.8 or not whole else ""
            numbers.append(number if any(c.isdigit() for c in number) else number + "0")
        gaps = rng.choice([" ", ", ", ",", "\n\t\t", "\r\n", " ,\n"], len(numbers))
        texts.append("\n" + "".join(n + str(g) for n, g in zip(numbers, gaps, strict=True)))
    for text in texts:
        fast = vrml._plain_decimals(text)
        assert fast is not None
        np.testing.assert_array_equal(fast.view(np.uint64), _numpy_numbers(text).view(np.uint64))


@pytest.mark.parametrize(
    "text",
    ["1e-3 2", "nan 1", "+1 2", "1-2", "1..2", "1.2.3", "--1", "- 1", ".", "-.", "0x1", "1,,a",
     "12345678901234567"],
)  # fmt: skip
def test_anything_but_plain_decimals_goes_to_numpy(text):
    assert vrml._plain_decimals(text) is None


def test_exponents_and_negative_zero_read_as_numpy_reads_them():
    text = TINY.replace("0 0 0, 1 0 0", "0 0 -0.000, 1e0 0 0")
    mesh = parse_vrml(text)
    assert mesh.vertices[0, 2] == 0 and np.signbit(mesh.vertices[0, 2])
    assert mesh.vertices[1, 0] == 1.0
    np.testing.assert_array_equal(mesh.vertices[2:], parse_vrml(TINY).vertices[2:])
