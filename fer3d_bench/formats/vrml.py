"""VRML 2.0 IndexedFaceSet reader for BU-3DFE `F3D.wrl` meshes.

No maintained Python library reads VRML 2.0 (trimesh and open3d do not), so this is a small
reader for the one node BU-3DFE uses. Numbers are parsed by numpy in bulk: a line-by-line Python
parser is an order of magnitude slower on 8,000-vertex meshes.
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
    return None if text is None else _numbers(text, np.float64, path, what)


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


def _as_rows(values: np.ndarray, width: int, path, what: str) -> np.ndarray:
    if len(values) % width:
        raise FormatError(
            path, f"{what}: {len(values)} numbers is not a multiple of {width} (file truncated?)"
        )
    return values.reshape(-1, width)


def _finite_rows(rows: np.ndarray, path, what: str) -> np.ndarray:
    """`rows`, each a point of finite numbers: NaN passes every later comparison unnoticed."""
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
    n_tri = sizes - 2
    polygon = np.repeat(np.arange(len(sizes)), n_tri)
    k = np.arange(int(n_tri.sum())) - np.repeat(np.cumsum(n_tri) - n_tri, n_tri)
    first = starts[polygon]
    tris = np.stack([index[first], index[first + k + 1], index[first + k + 2]], axis=1)
    return tris, sizes
