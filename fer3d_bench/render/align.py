"""Per dataset: a full-resolution RGB image and a height map that lies pixel-on-pixel over it.

Each function returns the photo, the height map z (mm, larger = nearer, NaN = background) in
that photo's pixel grid, and the figures that prove the alignment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from fer3d_bench.render import fit
from fer3d_bench.render.backends import DepthRenderer
from fer3d_bench.sources import BosphorusScan, Bu3dfeScan, RgbdPair


class AlignmentError(ValueError):
    """The sample cannot be aligned at all (as opposed to aligned badly)."""


@dataclass
class Aligned:
    rgb: np.ndarray  # (H, W, 3) uint8
    z: np.ndarray  # (H, W) float64 mm, NaN = background
    method: str
    quality: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # why the quality is low, if it is


def align_bu3dfe(
    scan: Bu3dfeScan, renderer: DepthRenderer, fit_rotation: bool = False, min_iou: float = 0.95
) -> Aligned:
    """Fit the F2D photo's hidden orthographic camera, then render the mesh through it."""
    mesh, photo = scan.mesh, scan.photo
    target = fit.photo_foreground(photo)
    if target.sum() < 100:
        raise AlignmentError("the F2D photo has no foreground (is it all black?)")
    start = fit.initial_camera(mesh.vertices, target)
    first = np.isfinite(renderer.render(mesh.vertices, mesh.faces, start))
    if first.sum() < 100:
        raise AlignmentError("the mesh's silhouette is empty in the photo frame")
    moments = fit.camera_from_moments(first, start, target, fit_rotation)
    camera = fit.refine_on_outline(moments, first, start, target, fit_rotation)
    z = renderer.render(mesh.vertices, mesh.faces, camera)
    iou = fit.silhouette_iou(np.isfinite(z), target)
    quality = {**camera.as_dict(), "iou": iou}
    problems = [] if iou >= min_iou else [f"silhouette IoU {iou:.3f} below {min_iou}"]
    if scan.landmarks is not None:
        quality.update(_bnd_check(scan.landmarks.points, camera, z, target))
    return Aligned(photo, z, "ortho-fit", quality, problems)


def _bnd_check(points: np.ndarray, camera, z: np.ndarray, target: np.ndarray) -> dict:
    """Projected .bnd landmarks: do they land on the face, on the rendered surface?"""
    cr = camera.project(points)
    cols, rows = np.rint(cr[:, 0]).astype(int), np.rint(cr[:, 1]).astype(int)
    height, width = z.shape
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    on_face = np.zeros(len(points), dtype=bool)
    on_face[inside] = target[rows[inside], cols[inside]]
    gap = np.abs(z[rows[inside], cols[inside]] - points[inside, 2])
    return {
        "landmarks": len(points),
        "landmarks_on_face": float(on_face.mean()),
        "landmark_depth_mm_median": float(np.nanmedian(gap)) if inside.any() else np.nan,
    }


def align_bosphorus(scan: BosphorusScan, tolerance_px: float = 3.0) -> Aligned:
    """Place each grid point's z at its (u, v) pixel and fill the face between grid points."""
    grid, image = scan.grid, scan.image
    valid = grid.valid
    if not valid.any():
        raise AlignmentError("the .bnt grid has no face points (every z equals zmin)")
    height, width = image.shape[:2]
    z = _fill_from_grid(grid.z, valid, grid.u * width, grid.v * height, (height, width))
    quality: dict = {"grid_points": int(valid.sum())}
    problems: list[str] = []
    if scan.lm2 is not None and scan.lm3 is not None:
        quality.update(_landmark_check(scan, z, width, height))
        if quality["landmark_px_max"] > tolerance_px:
            problems.append(
                f"a .lm2 landmark lies {quality['landmark_px_max']:.2f} px from its .lm3 "
                f"vertex's image position (tolerance {tolerance_px} px)"
            )
    return Aligned(image, z, "bnt-grid", quality, problems)


def _fill_from_grid(z, valid, cols, rows, shape) -> np.ndarray:
    """Bilinear z between grid points; background where any surrounding grid point is missing.

    The grid is the image subsampled by a regular lattice; the lattice (an affine map from grid
    index to pixel) is fitted from the points' own (u, v), so nothing assumes the factor 6.
    """
    r, c = np.nonzero(valid)
    design = np.column_stack([r, c, np.ones_like(r)]).astype(np.float64)
    to_pixel, *_ = np.linalg.lstsq(design, np.column_stack([rows[valid], cols[valid]]), rcond=None)
    to_grid = np.linalg.inv(np.column_stack([to_pixel, [0, 0, 1]]).T)  # 3x3, pixel -> grid
    pix_r, pix_c = np.mgrid[0 : shape[0], 0 : shape[1]]
    homogeneous = np.stack([pix_r.ravel(), pix_c.ravel(), np.ones(pix_r.size)])
    gr, gc, _ = to_grid @ homogeneous
    coverage = ndimage.map_coordinates(valid.astype(np.float64), [gr, gc], order=1, cval=0.0)
    values = ndimage.map_coordinates(np.where(valid, z, 0.0), [gr, gc], order=1, cval=0.0)
    out = np.full(pix_r.size, np.nan)
    full = coverage > 1 - 1e-9
    out[full] = values[full]
    return out.reshape(shape)


def _landmark_check(scan: BosphorusScan, z: np.ndarray, width: int, height: int) -> dict:
    """Each .lm3 point's grid vertex must project onto its .lm2 pixel and carry its depth."""
    grid = scan.grid
    valid = grid.valid
    xyz = np.stack([grid.x[valid], grid.y[valid], grid.z[valid]], axis=1)
    uv = np.stack([grid.u[valid] * width, grid.v[valid] * height], axis=1)
    lm2 = scan.lm2.by_label()
    px_errors, z_errors, vertex_gaps = [], [], []
    for label, point in scan.lm3.by_label().items():
        if label not in lm2:
            continue
        nearest = int(np.argmin(np.linalg.norm(xyz - point, axis=1)))
        vertex_gaps.append(float(np.linalg.norm(xyz[nearest] - point)))
        px_errors.append(float(np.linalg.norm(uv[nearest] - lm2[label])))
        col, row = np.rint(lm2[label]).astype(int)
        if 0 <= row < height and 0 <= col < width and np.isfinite(z[row, col]):
            z_errors.append(abs(float(z[row, col]) - point[2]))
    return {
        "landmarks": len(px_errors),
        "landmark_px_max": max(px_errors, default=np.nan),
        "landmark_vertex_gap_mm_max": max(vertex_gaps, default=np.nan),
        "landmark_depth_mm_max": max(z_errors, default=np.nan),
    }


def align_rgbd(pair: RgbdPair, min_iou: float = 0.5) -> Aligned:
    """Sensor depth is already aligned: convert distance to height (z = -distance) in mm."""
    depth = pair.depth
    face = depth > 0
    if not face.any():
        raise AlignmentError("the depth image has no valid pixels (all zero)")
    z = np.where(face, -depth.astype(np.float64) * pair.depth_unit_mm, np.nan)
    rgb_face = pair.rgb.max(axis=2) > 0
    iou = fit.silhouette_iou(face, rgb_face)
    problems = [] if iou >= min_iou else [f"RGB/depth foreground IoU {iou:.3f} below {min_iou}"]
    return Aligned(pair.rgb, z, "given", {"iou": iou}, problems)
