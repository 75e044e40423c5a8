"""Fit the unpublished orthographic camera of a BU-3DFE F2D photo to its F3D mesh.

The photo is an orthographic frontal view of the mesh with a per-scan scale and offset that no
file states. The fit matches the mesh's rendered silhouette to the photo's foreground: first by
image moments (area gives the scale, centroids the offset, the principal axis the rotation),
then by a robust Gauss-Newton pull of the silhouette's outline onto the foreground's outline
(analytic Jacobian from the gradient of a signed distance map), which copes with foreground
that the mesh does not cover (hair, neck) better than moments alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize

from fer3d_bench.render.camera import OrthoCamera

_BAND = 8  # pixels of margin around the face kept when working on crops


@dataclass(frozen=True)
class Moments:
    area: float
    centroid: np.ndarray  # (column, row)
    angle: float  # principal axis, radians, in the (column, row) frame


def bright(photo: np.ndarray, threshold: int) -> np.ndarray:
    """Pixels whose brightest channel exceeds `threshold` (numpy's max over a last axis of
    three is an order of magnitude slower than two element-wise maxima)."""
    return np.maximum(np.maximum(photo[..., 0], photo[..., 1]), photo[..., 2]) > threshold


def photo_foreground(photo: np.ndarray, threshold: int = 8) -> np.ndarray:
    """The face in a black-background photo: its largest bright component, holes filled.

    Taking the largest component drops stray pixels such as the ones that real F2D photos carry
    along their borders.
    """
    lit = bright(photo, threshold)
    labels = np.empty(lit.shape, np.intp)  # bincount's type: int32 labels would be cast, slowly
    count = ndimage.label(lit, output=labels)
    if count == 0:
        return lit
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    face = labels == sizes.argmax()
    box = _box(face, 1)
    face[box] |= _holes(face[box])
    return face


def _holes(mask: np.ndarray) -> np.ndarray:
    """Background regions that do not touch the border (cheaper than iterative hole filling)."""
    labels, _ = ndimage.label(~mask)
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    if (border == border[0]).all():  # one background region around the mask, as in a box
        return (labels > 0) & (labels != border[0])  # grown by a pixel: no need to look further
    return (labels > 0) & ~np.isin(labels, np.unique(border))


def mask_moments(mask: np.ndarray) -> Moments:
    """Area, centroid and principal-axis angle of a mask, in (column, row) pixel units."""
    box = _box(mask, 0)
    m = mask[box].astype(np.float64)
    rows = np.arange(box[0].start, box[0].stop, dtype=np.float64)
    cols = np.arange(box[1].start, box[1].stop, dtype=np.float64)
    per_row, per_col = m.sum(axis=1), m.sum(axis=0)
    area = per_row.sum()
    cx, cy = per_col @ cols / area, per_row @ rows / area
    mu20 = per_col @ cols**2 / area - cx**2
    mu02 = per_row @ rows**2 / area - cy**2
    mu11 = rows @ m @ cols / area - cx * cy
    angle = 0.5 * np.arctan2(2 * mu11, mu20 - mu02)
    return Moments(float(area), np.array([cx, cy]), float(angle))


def initial_camera(vertices: np.ndarray, photo_mask: np.ndarray) -> OrthoCamera:
    """A first guess from bounding boxes: good to a few percent, enough to render a silhouette."""
    rows, cols = _box(photo_mask, 0)
    x, y = vertices[:, 0], vertices[:, 1]  # 1-D: reducing (N, 2) along axis 0 is 30x slower
    low, high = np.array([x.min(), y.min()]), np.array([x.max(), y.max()])
    span = high - low
    scale = float(np.mean([(cols.stop - cols.start) / span[0], (rows.stop - rows.start) / span[1]]))
    middle = (low + high) / 2
    tx = (cols.start + cols.stop - 1) / 2 - scale * middle[0]
    ty = (rows.start + rows.stop - 1) / 2 + scale * middle[1]
    return OrthoCamera(scale, float(tx), float(ty))


def camera_from_moments(
    rendered: np.ndarray, at: OrthoCamera, photo_mask: np.ndarray, fit_rotation: bool
) -> OrthoCamera:
    """The camera that gives the silhouette rendered through `at` the photo mask's moments.

    `at` has no rotation, so the rendered silhouette is the mesh's own shape scaled by
    `at.scale` with y pointing down: its moments convert to millimetres directly.
    """
    mesh, photo = mask_moments(rendered), mask_moments(photo_mask)
    scale = at.scale * float(np.sqrt(photo.area / mesh.area))
    turn = (photo.angle - mesh.angle + np.pi / 2) % np.pi - np.pi / 2  # axes have no direction
    rotation = float(-turn) if fit_rotation else 0.0
    centre_mm = np.array(
        [(mesh.centroid[0] - at.tx) / at.scale, -(mesh.centroid[1] - at.ty) / at.scale]
    )
    unshifted = OrthoCamera(scale, 0.0, 0.0, rotation).project(centre_mm[None, :])[0]
    tx, ty = photo.centroid - unshifted
    return OrthoCamera(scale, float(tx), float(ty), rotation)


def refine_on_outline(
    camera: OrthoCamera,
    rendered: np.ndarray,
    at: OrthoCamera,
    photo_mask: np.ndarray,
    fit_rotation: bool,
    max_points: int = 400,
    blur: float = 2.0,
) -> OrthoCamera:
    """Pull the silhouette's outline onto the photo's outline: robust least squares, sub-pixel.

    Both masks are blurred alike (the same width in millimetres, whatever the resolution the
    silhouette was rendered at); each outline point of the rendered silhouette must find in the
    photo the blurred value it has in its own silhouette. Agreement of the two silhouettes makes
    every residual zero, with no half-pixel bias from where an outline is taken to lie.
    """
    box = _box(rendered, _BAND)
    rows, cols = np.nonzero(_outline(rendered[box]))
    if len(rows) < 10:
        return camera
    step = max(1, len(rows) // max_points)
    rows, cols = rows[::step] + box[0].start, cols[::step] + box[1].start
    target = _blurred_at(rendered, rows, cols, blur * at.scale / camera.scale)
    points = np.column_stack([(cols - at.tx) / at.scale, -(rows - at.ty) / at.scale])
    band = _box(photo_mask, _BAND + int(4 * blur))
    field = ndimage.gaussian_filter(photo_mask[band].astype(np.float32), blur, truncate=3.0)
    origin = np.array([band[1].start, band[0].start], dtype=np.float64)  # (column, row)
    x, y = points[:, 0], points[:, 1]

    def sample(image: np.ndarray, cr: np.ndarray) -> np.ndarray:
        local = cr - origin
        return ndimage.map_coordinates(image, [local[:, 1], local[:, 0]], order=1, mode="nearest")

    def unpack(p: np.ndarray) -> OrthoCamera:
        return OrthoCamera(p[0], p[1], p[2], p[3] if fit_rotation else 0.0)

    def residuals(p: np.ndarray) -> np.ndarray:
        return sample(field, unpack(p).project(points)) - target

    def jacobian(p: np.ndarray) -> np.ndarray:
        cam = unpack(p)
        cr = cam.project(points)
        half = np.array([0.5, 0.0])  # central differences of the blurred field, one pixel wide
        gc = sample(field, cr + half) - sample(field, cr - half)
        gr = sample(field, cr + half[::-1]) - sample(field, cr - half[::-1])
        c, s = np.cos(cam.rotation), np.sin(cam.rotation)
        d_scale = gc * (c * x - s * y) - gr * (s * x + c * y)
        columns = [d_scale, gc, gr]
        if fit_rotation:
            columns.append(gc * cam.scale * (-s * x - c * y) - gr * cam.scale * (c * x - s * y))
        return np.column_stack(columns)

    start = [camera.scale, camera.tx, camera.ty] + ([camera.rotation] if fit_rotation else [])
    fit = optimize.least_squares(  # tolerances relative to the parameters: 1e-6 of a
        residuals,  # ~250 px offset is far below what the silhouettes can tell apart
        start,
        jac=jacobian,
        loss="soft_l1",
        f_scale=0.1,
        x_scale="jac",
        xtol=1e-6,
        ftol=1e-6,
    )
    return unpack(fit.x)


def _blurred_at(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, sigma: float):
    """The Gaussian-blurred mask (as scipy's gaussian_filter, truncated at 3 sigma) at the given
    pixels only: a few hundred weighted sums instead of blurring the whole image. Only the
    windows around those pixels are padded, not the whole image."""
    radius = int(3.0 * sigma + 0.5)
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    height, width = mask.shape
    top, left = rows.min() - radius, cols.min() - radius  # the windows' extent, maybe outside
    bottom, right = rows.max() + radius + 1, cols.max() + radius + 1
    inside = mask[max(top, 0) : bottom, max(left, 0) : right].astype(np.float64)
    outside = ((max(-top, 0), max(bottom - height, 0)), (max(-left, 0), max(right - width, 0)))
    part = np.pad(inside, outside)  # zero beyond the image, as when the whole image was padded
    windows = np.lib.stride_tricks.sliding_window_view(part, (2 * radius + 1,) * 2)
    return np.einsum("nij,i,j->n", windows[rows - rows.min(), cols - cols.min()], kernel, kernel)


def _outline(mask: np.ndarray) -> np.ndarray:
    """The pixels on both sides of the mask's outline: in the mask with a 4-neighbour outside
    it, or outside with a 4-neighbour in it."""
    padded = np.pad(mask, 1)
    up, down, left, right = padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]
    inside_edge = mask & ~(up & down & left & right)
    outside_edge = ~mask & (up | down | left | right)
    return inside_edge | outside_edge


def silhouette_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(np.logical_or(a, b))  # count_nonzero: 5x a boolean sum()
    return float(np.count_nonzero(np.logical_and(a, b)) / union) if union else 0.0


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The mask's bounding box grown by `margin` pixels, clipped to the image."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return slice(0, mask.shape[0]), slice(0, mask.shape[1])
    return (
        slice(max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, mask.shape[0])),
        slice(max(cols[0] - margin, 0), min(cols[-1] + 1 + margin, mask.shape[1])),
    )
