"""Landmark files: BU-3DFE `.bnd` and Bosphorus `.lm2` / `.lm3` (text)."""

from __future__ import annotations

import math
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
    lines = [(n, text.replace(",", " ").split()) for n, text in enumerate(_lines(path), 1)]
    lines = [(number, row) for number, row in lines if row]
    if not lines:
        raise FormatError(path, "no landmark lines (expected '<vertex index> x y z' lines)")
    indices = []
    for landmark, (number, row) in enumerate(lines, 1):
        if len(row) != 4:
            raise FormatError(
                path, f"line {number} (landmark {landmark}): expected 4 values, found {len(row)}"
            )
        indices.append(_vertex_index(path, number, row[0]))
    coordinates = [(number, " ".join(row[1:])) for number, row in lines]
    points = _numbers(path, coordinates, 3, finite=True)  # no check after this one sees a NaN
    return Landmarks(points=points, indices=np.array(indices, dtype=np.int64))


def _vertex_index(path: Path, number: int, text: str) -> int:
    try:
        index = int(text)
    except ValueError:
        raise FormatError(
            path, f"line {number}: vertex index {text!r} is not numeric (an integer)"
        ) from None
    if index < 0:
        raise FormatError(path, f"line {number}: negative vertex index (indices are 0-based)")
    if index >= 2**31:  # no mesh has as many vertices; numpy's int64 would overflow further on
        raise FormatError(path, f"line {number}: vertex index {index} is out of range")
    return index


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
    labels = tuple(text for _, text in lines[0::2])
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
    labels = tuple(text for _, text in lines[labels_at + 1 : coords_at])
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


def _after_count(path: Path) -> tuple[int, list[tuple[int, str]]]:
    """The announced count and the non-blank, non-comment lines after it, each with its number
    in the file (so that a message can point at it)."""
    lines = _lines(path)
    for at, line in enumerate(lines):
        found = _COUNT.match(line)
        if found:
            rest = [
                (number, text.strip())
                for number, text in enumerate(lines[at + 1 :], at + 2)
                if text.strip() and not text.startswith("#")
            ]
            return int(found.group(1)), rest
    raise FormatError(path, "no 'N landmarks' line found")


def _index_of(lines: list[tuple[int, str]], heading: str) -> int:
    for at, (_, text) in enumerate(lines):
        if text.lower() == heading:
            return at
    raise ValueError(repr(heading))


def _numbers(
    path: Path, lines: list[tuple[int, str]], width: int, *, finite: bool = False
) -> np.ndarray:
    """The (len(lines), width) numbers of `lines`, `width` to a line. With `finite`, a NaN or
    an infinity is refused, naming its line: it would pass every later comparison unnoticed.
    (Bosphorus .lm2/.lm3 points may be non-finite: the aligner names each as a problem.)"""
    rows = []
    for landmark, (number, text) in enumerate(lines, 1):
        row = text.replace(",", " ").split()
        if len(row) != width:
            raise FormatError(
                path,
                f"line {number} (landmark {landmark}): expected {width} coordinates, "
                f"found {' '.join(row)!r}",
            )
        try:
            values = [float(value) for value in row]
        except ValueError as exc:
            raise FormatError(path, f"line {number}: coordinates are not numeric ({exc})") from None
        if finite and not all(math.isfinite(value) for value in values):
            raise FormatError(path, f"line {number}: {text.strip()!r} is not all finite numbers")
        rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(-1, width)
