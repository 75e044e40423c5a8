"""Bosphorus `.bnt` range grids (little-endian binary; layout in docs/formats.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.errors import FormatError

_HEAD = struct.Struct("<HHdH")  # nrows, ncols, zmin, length of the image name
_COUNT = struct.Struct("<I")


@dataclass(frozen=True)
class BntGrid:
    """The five (nrows, ncols) planes as stored: grid row 0 is the bottom of the face."""

    nrows: int
    ncols: int
    zmin: float
    image_name: str
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """Face points: background is marked by z == zmin (x and y are not reliable there). A
        point with a NaN or an infinity in any plane is no face point either: it has no place."""
        finite = np.isfinite(self.x) & np.isfinite(self.y) & np.isfinite(self.z)
        return (self.z != self.zmin) & finite & np.isfinite(self.u) & np.isfinite(self.v)


def read_bnt(path: Path | str) -> BntGrid:
    """Read one `.bnt` file, checking every size the header implies against the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatError(path, f"cannot read file ({exc.strerror or exc})") from None
    if len(data) < _HEAD.size:
        raise FormatError(path, f"{len(data)} bytes is shorter than the {_HEAD.size}-byte header")
    nrows, ncols, zmin, name_len = _HEAD.unpack_from(data, 0)
    count_at = _HEAD.size + name_len
    if len(data) < count_at + _COUNT.size:
        raise FormatError(path, "file ends inside the header (image name or point count)")
    try:
        image_name = data[_HEAD.size : count_at].decode("ascii").rstrip("\0")
    except UnicodeDecodeError:
        raise FormatError(path, "image file name in the header is not ASCII") from None
    (n_values,) = _COUNT.unpack_from(data, count_at)
    if nrows == 0 or ncols == 0:
        raise FormatError(path, f"empty grid ({nrows} rows x {ncols} columns)")
    expected_n = nrows * ncols * 5
    if n_values != expected_n:
        raise FormatError(
            path,
            f"header says {n_values} values but nrows*ncols*5 = {nrows}*{ncols}*5 = {expected_n}",
        )
    data_at = count_at + _COUNT.size
    expected_size = data_at + 8 * n_values
    if len(data) != expected_size:
        state = "truncated" if len(data) < expected_size else "has trailing bytes"
        raise FormatError(
            path, f"file {state}: header implies {expected_size} bytes, file has {len(data)}"
        )
    planes = np.frombuffer(data, dtype="<f8", count=n_values, offset=data_at)
    x, y, z, u, v = (p.astype(np.float64) for p in planes.reshape(5, nrows, ncols))
    return BntGrid(nrows, ncols, float(zmin), image_name, x, y, z, u, v)
