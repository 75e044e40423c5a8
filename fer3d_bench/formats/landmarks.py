"""Landmark files: BU-3DFE `.bnd` and Bosphorus `.lm2` / `.lm3` (text)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.errors import FormatError

_COUNT = re.compile(r"^\s*(\d+)\s+landmarks:?\s*$", re.I)


@dataclass(frozen=True)
class Landmarks:
    """Named or indexed points; `indices` are mesh vertex indices where the file gives them."""

    points: np.ndarray  # (n, 2) or (n, 3) float64
    labels: tuple[str, ...] = ()
    indices: np.ndarray | None = None  # (n,) int64, 0-based

    def by_label(self) -> dict[str, np.ndarray]:
        return dict(zip(self.labels, self.points, strict=True))


def read_bnd(path: Path | str) -> Landmarks:
    """BU-3DFE `.bnd`: one `<0-based vertex index> x y z` line per landmark."""
    path = Path(path)
    rows = [line.replace(",", " ").split() for line in _lines(path)]
    rows = [row for row in rows if row]
    if not rows:
        raise FormatError(path, "no landmark lines (expected '<vertex index> x y z' lines)")
    for number, row in enumerate(rows, 1):
        if len(row) != 4:
            raise FormatError(path, f"landmark {number}: expected 4 values, found {len(row)}")
    try:
        indices = np.array([row[0] for row in rows], dtype=np.int64)
        points = np.array([row[1:] for row in rows], dtype=np.float64)
    except ValueError as exc:
        raise FormatError(path, f"not numeric: {exc}") from None
    if (indices < 0).any():
        raise FormatError(path, "negative vertex index (indices are 0-based)")
    return Landmarks(points=points, indices=indices)


def read_lm3(path: Path | str) -> Landmarks:
    """Bosphorus `.lm3`: header, `N landmarks:`, then label / `x y z` line pairs."""
    path = Path(path)
    count, lines = _after_count(path)
    if len(lines) != 2 * count:
        raise FormatError(
            path,
            f"header announces {count} landmarks but {len(lines)} lines follow "
            f"(expected {2 * count}: a label and an 'x y z' line each)",
        )
    labels = tuple(lines[0::2])
    points = _numbers(path, lines[1::2], 3)
    return Landmarks(points=points, labels=labels)


def read_lm2(path: Path | str) -> Landmarks:
    """Bosphorus `.lm2`: header, `N landmarks`, `Labels:` names, `2D Image coordinates:` x y."""
    path = Path(path)
    count, lines = _after_count(path)
    try:
        labels_at = _index_of(lines, "labels:")
        coords_at = _index_of(lines, "2d image coordinates:")
    except ValueError as exc:
        raise FormatError(path, f"missing section {exc}") from None
    labels = tuple(lines[labels_at + 1 : coords_at])
    coords = lines[coords_at + 1 :]
    if len(labels) != count or len(coords) != count:
        raise FormatError(
            path,
            f"header announces {count} landmarks but the file has {len(labels)} labels and "
            f"{len(coords)} coordinate lines",
        )
    return Landmarks(points=_numbers(path, coords, 2), labels=labels)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="latin-1").splitlines()
    except OSError as exc:
        raise FormatError(path, f"cannot read file ({exc.strerror or exc})") from None


def _after_count(path: Path) -> tuple[int, list[str]]:
    """The announced count and the non-blank, non-comment lines after it."""
    lines = _lines(path)
    for at, line in enumerate(lines):
        found = _COUNT.match(line)
        if found:
            rest = [s.strip() for s in lines[at + 1 :] if s.strip() and not s.startswith("#")]
            return int(found.group(1)), rest
    raise FormatError(path, "no 'N landmarks' line found")


def _index_of(lines: list[str], heading: str) -> int:
    for at, line in enumerate(lines):
        if line.lower() == heading:
            return at
    raise ValueError(repr(heading))


def _numbers(path: Path, lines: list[str], width: int) -> np.ndarray:
    rows = [line.replace(",", " ").split() for line in lines]
    for number, row in enumerate(rows, 1):
        if len(row) != width:
            raise FormatError(
                path, f"landmark {number}: expected {width} coordinates, found {' '.join(row)!r}"
            )
    try:
        return np.array(rows, dtype=np.float64).reshape(-1, width)
    except ValueError as exc:
        raise FormatError(path, f"coordinates are not numeric ({exc})") from None
