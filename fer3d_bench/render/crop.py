"""One square crop for RGB and depth together, so the pair stays aligned after resizing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

_FILTER = Image.Resampling.BILINEAR  # antialiased when shrinking; the same for both images


@dataclass(frozen=True)
class CropBox:
    """A square in image pixels; it may reach outside the image (padded as background)."""

    x0: int
    y0: int
    side: int


def face_crop_box(mask: np.ndarray, margin: float = 0.1) -> CropBox:
    """The square around the face's bounding box, with `margin` of its longer side each way."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = int(np.ceil(max(bottom - top, right - left) * (1 + 2 * margin)))
    x0 = int(np.floor((left + right - side) / 2))
    y0 = int(np.floor((top + bottom - side) / 2))
    return CropBox(x0, y0, side)


def crop_pair(
    rgb: np.ndarray, z_mm: np.ndarray, box: CropBox, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crop and resize RGB (uint8) and a height map (mm, NaN = background) identically.

    Depth is resized as a masked average (sum of z*mask over sum of mask, same filter), so
    background never bleeds into the face; a pixel is face where the face covers half of it.
    """
    rgb_out = np.asarray(Image.fromarray(_crop(rgb, box, 0)).resize((size, size), _FILTER))
    face = np.zeros((box.side, box.side), np.float32)  # 1 on the face
    z_sum = np.zeros((box.side, box.side), np.float32)  # z on the face, 0 elsewhere
    inside = _overlap(z_mm.shape, box)
    if inside is not None:
        source, target = inside
        z = z_mm[source]
        finite = np.isfinite(z)
        face[target] = finite.view(np.uint8)  # as 0/1 bytes: casting bools is 10x slower
        np.copyto(z_sum[target], z, where=finite)
    weight = _resize_float(face, size)
    total = _resize_float(z_sum, size)
    covered = weight >= 0.5
    z_out = np.full((size, size), np.nan)
    z_out[covered] = total[covered] / weight[covered]
    return rgb_out, z_out


def _overlap(shape, box: CropBox):
    """The part of the image inside the box, and where it lies in the box; None if none."""
    height, width = shape[:2]
    top, left = max(box.y0, 0), max(box.x0, 0)
    bottom, right = min(box.y0 + box.side, height), min(box.x0 + box.side, width)
    if bottom <= top or right <= left:
        return None
    return (
        (slice(top, bottom), slice(left, right)),
        (slice(top - box.y0, bottom - box.y0), slice(left - box.x0, right - box.x0)),
    )


def _crop(image: np.ndarray, box: CropBox, fill) -> np.ndarray:
    out = np.full((box.side, box.side) + image.shape[2:], fill, dtype=image.dtype)
    inside = _overlap(image.shape, box)
    if inside is not None:
        source, target = inside
        out[target] = image[source]
    return out


def _resize_float(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), _FILTER), np.float64)
