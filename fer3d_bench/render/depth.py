"""The one depth convention every output uses, whatever the dataset.

A depth image is 16-bit. 0 is background. A face pixel's value v > 0 says the surface there lies
(65535 - v) * DEPTH_STEP_MM millimetres behind the nearest face point of that image (the nearest
point is 65535, nearer is brighter). The range is therefore DEPTH_RANGE_MM = 163.835 mm: a face
point farther behind than that is clipped to 1 (still face, never background). One count is
2.5 micrometres, so geometry is comparable across datasets and quantisation is negligible.
"""

from __future__ import annotations

import numpy as np

DEPTH_STEP_MM = 0.0025
DEPTH_MAX = 65535
DEPTH_RANGE_MM = (DEPTH_MAX - 1) * DEPTH_STEP_MM

CONVENTION = {
    "background": 0,
    "nearest_face_point": DEPTH_MAX,
    "step_mm": DEPTH_STEP_MM,
    "range_mm": DEPTH_RANGE_MM,
    "beyond_range": "clipped to 1",
    "meaning": "value v > 0: the surface lies (65535 - v) * step_mm behind the nearest face point",
}


def encode_depth(z_mm: np.ndarray) -> np.ndarray:
    """Height map (mm, larger = nearer the viewer, NaN = background) -> uint16 depth image."""
    face = np.isfinite(z_mm)
    out = np.zeros(z_mm.shape, dtype=np.uint16)
    if not face.any():
        return out
    behind = z_mm[face].max() - z_mm[face]
    counts = np.rint(behind / DEPTH_STEP_MM)
    out[face] = np.clip(DEPTH_MAX - counts, 1, DEPTH_MAX).astype(np.uint16)
    return out


def decode_depth(depth: np.ndarray) -> np.ndarray:
    """uint16 depth image -> millimetres behind the nearest face point (NaN = background)."""
    behind = (DEPTH_MAX - depth.astype(np.float64)) * DEPTH_STEP_MM
    behind[depth == 0] = np.nan
    return behind
