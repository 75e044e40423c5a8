"""VRML 2.0 IndexedFaceSet reader for BU-3DFE `F3D.wrl` meshes.

No maintained Python library reads VRML 2.0 (trimesh and open3d do not), so this is a small
reader for the one node BU-3DFE uses. Numbers are parsed by numpy in bulk: a line-by-line Python
parser is an order of magnitude slower on 8,000-vertex meshes. Plain decimals (the point lists of
every F3D.wrl) are read as integers with the point taken out and divided by a power of ten, four
times faster than numpy's float parser and bit for bit the same; anything else (exponents, nan)
goes to numpy's float parser, which also names what it cannot read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.errors import FormatError

_HEADER = "#VRML V2.0"
_IFS = re.compile(r"IndexedFaceSet\s*\{")
_POINTS = {
    "coord": re.compile(r"coord\s+(?:DEF\s+\S+\s+)?Coordinate\s*\{\s*point\s*\["),
    "texCoord": re.compile(r"texCoord\s+(?:DEF\s+\S+\s+)?TextureCoordinate\s*\{\s*point\s*\["),
}
_INDICES = {
    "coordIndex": re.compile(r"coordIndex\s*\["),
    "texCoordIndex": re.compile(r"texCoordIndex\s*\["),
}
_URL = re.compile(r"ImageTexture\s*\{[^}]*?\burl\s*\[?\s*\"([^\"]*)\"", re.S)


@dataclass(frozen=True)
class VrmlMesh:
    """A triangulated mesh; texture faces index `texcoords` and parallel `faces` one to one."""

    vertices: np.ndarray  # (N, 3) float64
    faces: np.ndarray  # (F, 3) int64, fan-triangulated from the file's polygons
    texcoords: np.ndarray | None  # (T, 2) float64
    tex_faces: np.ndarray | None  # (F, 3) int64 into texcoords
    texture_url: str | None
    polygon_sizes: dict[int, int]  # polygon size -> count, as written in the file


def read_vrml(path: Path | str) -> VrmlMesh:
    """Read one VRML file; every problem is a FormatError naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError as exc:
        raise FormatError(path, f"cannot read file ({exc.strerror or exc})") from None
    return parse_vrml(text, path)


def parse_vrml(text: str, path: Path | str = "<string>") -> VrmlMesh:
    """Parse VRML text holding one IndexedFaceSet (the first one is used)."""
    if not text.lstrip().startswith(_HEADER):
        raise FormatError(path, f"not a VRML 2.0 file (expected a first line starting {_HEADER!r})")
    found = _IFS.search(text)
    if found is None:
        raise FormatError(path, "no IndexedFaceSet node found")
    body = text[found.end() :]
    points = _bracket_numbers(body, _POINTS["coord"], path, "coord Coordinate point")
    if points is None:
        raise FormatError(path, "IndexedFaceSet has no 'coord Coordinate { point [...] }'")
    vertices = _finite_rows(_as_rows(points, 3, path, "vertex coordinates"), path, "vertex")
    index_text = _bracket_text(body, _INDICES["coordIndex"], path, "coordIndex")
    if index_text is None:
        raise FormatError(path, "IndexedFaceSet has no coordIndex")
    coord_index = _numbers(index_text, np.int64, path, "coordIndex")
    faces, sizes = _triangulate(coord_index, len(vertices), path, "coordIndex")

    texcoords = tex_faces = None
    tex_points = _bracket_numbers(body, _POINTS["texCoord"], path, "texCoord point")
    if tex_points is not None:
        rows = _as_rows(tex_points, 2, path, "texture coordinates")
        texcoords = _finite_rows(rows, path, "texture coordinate")
        tex_text = _bracket_text(body, _INDICES["texCoordIndex"], path, "texCoordIndex")
        tex_index = (
            coord_index if tex_text is None else _numbers(tex_text, np.int64, path, "texCoordIndex")
        )
        tex_faces, tex_sizes = _triangulate(tex_index, len(texcoords), path, "texCoordIndex")
        if len(tex_sizes) != len(sizes) or not np.array_equal(tex_sizes, sizes):
            raise FormatError(
                path,
                f"texCoordIndex has {len(tex_sizes)} polygons but coordIndex has {len(sizes)} "
                "(or their sizes differ); they must describe the same polygons",
            )
    url = _URL.search(text)
    counts = np.bincount(sizes)
    polygon_sizes = {int(n): int(c) for n, c in enumerate(counts) if c}
    return VrmlMesh(
        vertices=vertices,
        faces=faces,
        texcoords=texcoords,
        tex_faces=tex_faces,
        texture_url=url.group(1) if url else None,
        polygon_sizes=polygon_sizes,
    )


def _bracket_text(body: str, pattern: re.Pattern, path, what: str) -> str | None:
    opened = pattern.search(body)
    if opened is None:
        return None
    close = body.find("]", opened.end())
    if close < 0:
        raise FormatError(path, f"{what}: '[' is never closed (file truncated?)")
    return body[opened.end() : close]


def _bracket_numbers(body: str, pattern: re.Pattern, path, what: str) -> np.ndarray | None:
    text = _bracket_text(body, pattern, path, what)
    if text is None:
        return None
    plain = _plain_decimals(text)
    return _numbers(text, np.float64, path, what) if plain is None else plain


def _numbers(text: str, dtype, path, what: str) -> np.ndarray:
    """Whitespace- or comma-separated numbers, parsed in C by numpy."""
    text = text.replace(",", " ")
    if not text.strip():  # numpy reads a blank string as [0] for integer types
        return np.empty(0, dtype=dtype)
    try:
        return np.fromstring(text, dtype=dtype, sep=" ")
    except ValueError:
        kind = "integers" if dtype == np.int64 else "numbers"
        raise FormatError(path, f"{what}: not a list of {kind}") from None


_NUMBER_BYTES = b"0123456789-. \t\r\n,"
_POW10 = 10.0 ** np.arange(23)  # exact in float64
_EXACT = 10**15  # below 2**53: every such integer is an exact float64


def _plain_decimals(text: str) -> np.ndarray | None:
    """Numbers written as plain decimals (`-17.972`, `5`, `.5`), or None for anything else.

    Each number is read as the integer of its digits, then divided by 10 to the count of its
    decimals: both are exact in float64, so the quotient is the correctly rounded value, the
    one strtod (numpy's parser) gives. Numbers of 16 digits or more, exponents, `nan`, `+` and
    anything else malformed return None and go to numpy's parser (which then names the problem).
    """
    data = text.encode("latin-1")
    if data.translate(None, _NUMBER_BYTES):
        return None
    raw = np.frombuffer(data, np.uint8)
    gap = raw < 45  # whitespace or comma, after the check above
    inner = ~gap
    starts = np.flatnonzero(inner[1:] & gap[:-1]) + 1
    ends = np.flatnonzero(inner[:-1] & gap[1:]) + 1
    if len(raw) and inner[0]:
        starts = np.concatenate(([0], starts))
    if len(raw) and inner[-1]:
        ends = np.concatenate((ends, [len(raw)]))
    try:
        digits = data.replace(b",", b" ").replace(b".", b"")
        mantissa = np.fromstring(digits, np.int64, sep=" ")
    except ValueError:
        return None
    if len(mantissa) != len(starts) or not len(starts) or np.abs(mantissa).max() >= _EXACT:
        return None
    negative = raw[starts] == 45
    if data.count(b"-") != np.count_nonzero(negative):
        return None  # a minus sign inside a number
    decimals = np.zeros(len(starts), np.int64)
    length = ends - starts - negative  # digits and point
    points = np.flatnonzero(raw == 46)
    if len(points):
        owner = np.searchsorted(starts, points, side="right") - 1
        if (np.diff(owner) <= 0).any():
            return None  # two points in one number
        decimals[owner] = ends[owner] - points - 1
        length[owner] -= 1
        if decimals.max() >= len(_POW10):
            return None
    if length.min() < 1:
        return None  # a lone sign or point
    values = mantissa / _POW10[decimals]
    np.negative(values, out=values, where=negative & (mantissa == 0))  # -0.0, as strtod reads
    return values


def _as_rows(values: np.ndarray, width: int, path, what: str) -> np.ndarray:
    if len(values) % width:
        raise FormatError(
            path, f"{what}: {len(values)} numbers is not a multiple of {width} (file truncated?)"
        )
    return values.reshape(-1, width)


def _finite_rows(rows: np.ndarray, path, what: str) -> np.ndarray:
    """`rows`, each a point of finite numbers: NaN passes every later comparison unnoticed."""
    if np.isfinite(rows).all():  # one reduction over all; per row only to name the first bad one
        return rows
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        shown = " ".join(f"{v:g}" for v in rows[k])
        raise FormatError(
            path, f"{what} {k} holds a non-finite value ({shown}), and {bad.sum()} points in all"
        )
    return rows


def _triangulate(index: np.ndarray, n_points: int, path, what: str):
    """Fan-triangulate -1-separated polygons (the file declares them convex)."""
    if len(index) == 0:
        raise FormatError(path, f"{what} is empty: the mesh has no faces")
    if index[-1] != -1:
        index = np.append(index, -1)  # VRML allows the last polygon without its -1
    bad = (index < -1) | (index >= n_points)
    if bad.any():
        first = int(index[bad][0])
        raise FormatError(
            path, f"{what} refers to point {first}, but only {n_points} points exist (0-based)"
        )
    ends = np.flatnonzero(index == -1)
    starts = np.concatenate(([0], ends[:-1] + 1))
    sizes = ends - starts
    if (sizes < 3).any():
        k = int(np.flatnonzero(sizes < 3)[0])
        raise FormatError(path, f"{what}: polygon {k} has {sizes[k]} points; at least 3 needed")
    # a fan's triangles are (its first corner, j, j + 1) for each corner j but its first and last
    first = np.zeros(len(index), np.intp)
    first[starts] = starts
    np.maximum.accumulate(first, out=first)  # each corner's polygon's first corner
    inner = np.ones(len(index), bool)
    inner[starts] = inner[ends - 1] = inner[ends] = False
    j = np.flatnonzero(inner)
    tris = np.stack([index[first[j]], index[j], index[j + 1]], axis=1)
    return tris, sizes
