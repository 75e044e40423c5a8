"""The orthographic camera that maps a mesh onto a photo's pixel grid.

Pixel convention: pixel (row i, column j) is centred at image coordinates (x = j, y = i).
A mesh point (x, y, z) in millimetres (+y up) lands at
    column = s * (cos(a) x - sin(a) y) + tx,    row = -s * (sin(a) x + cos(a) y) + ty,
with scale s in pixels per millimetre and a small in-plane rotation a (radians).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OrthoCamera:
    scale: float  # pixels per millimetre
    tx: float  # column of the mesh origin
    ty: float  # row of the mesh origin
    rotation: float = 0.0  # radians, counter-clockwise as seen in the photo

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 2+) mesh points -> (N, 2) image coordinates (column, row)."""
        c, s = np.cos(self.rotation), np.sin(self.rotation)
        x, y = points[:, 0], points[:, 1]
        cols = self.scale * (c * x - s * y) + self.tx
        rows = -self.scale * (s * x + c * y) + self.ty
        return np.stack([cols, rows], axis=1)

    def to_pixel_frame(self, vertices: np.ndarray) -> np.ndarray:
        """(N, 3) mesh points -> (column, -row, z): a right-handed frame the renderers draw in.

        x and y become pixel units; z stays in millimetres (an orthographic view ignores it).
        """
        cols_rows = self.project(vertices)
        return np.column_stack([cols_rows[:, 0], -cols_rows[:, 1], vertices[:, 2]])

    def as_dict(self) -> dict[str, float]:
        return {
            "scale": self.scale,
            "tx": self.tx,
            "ty": self.ty,
            "rotation_deg": float(np.degrees(self.rotation)),
        }
