"""Per dataset: a full-resolution RGB image and a height map that lies pixel-on-pixel over it.

Each function returns the photo, the height map z (mm, larger = nearer, NaN = background) in
that photo's pixel grid, and the checks that prove the alignment. Every check compares one
figure with a bar derived from the data's own geometry (a lattice pitch, a pixel) or from a
stated measurement, never with a number tuned until the sample passes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from fer3d_bench.render import fit
from fer3d_bench.render.backends import DepthRenderer
from fer3d_bench.render.bars import (
    ANNOTATION_ALLOWANCE_PX,
    MAX_LATTICE_RESIDUAL_PX,
    MIN_RGBD_IOU,
    MIN_SILHOUETTE_IOU,
)
from fer3d_bench.sources import BosphorusScan, Bu3dfeScan, RgbdPair


class AlignmentError(ValueError):
    """The sample cannot be aligned at all (as opposed to aligned badly)."""


@dataclass(frozen=True)
class Check:
    """One quality figure against its bar. `ratio` is the figure over its bar, oriented so that
    above 1 fails; it ranks samples from worst to best whatever the check."""

    name: str  # "silhouette-iou", "landmark-offset", ...
    figure: str  # short, for pictures: "IoU 0.912 (bar 0.95)"
    ratio: float
    message: str  # the reason given when it fails

    @property
    def failed(self) -> bool:
        return not self.ratio <= 1.0  # NaN fails: a figure that could not be computed


def failure(name: str, message: str) -> Check:
    """A check that has no figure, only a verdict: it fails."""
    return Check(name, message, float("inf"), message)


@dataclass
class Aligned:
    rgb: np.ndarray  # (H, W, 3) uint8
    z: np.ndarray  # (H, W) float64 mm, NaN = background
    method: str
    quality: dict = field(default_factory=dict)  # figures, for the alignment table
    checks: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def worst(self) -> Check | None:
        """The check nearest to (or furthest beyond) its bar."""
        return max(self.checks, key=lambda c: _rank(c.ratio), default=None)


def _rank(ratio: float) -> float:
    return float("inf") if np.isnan(ratio) else ratio


def _iou_check(name: str, iou: float, bar: float, what: str) -> Check:
    """IoU against its bar: the ratio is the missing overlap over the overlap the bar allows."""
    allowed = 1.0 - bar
    ratio = (1.0 - iou) / allowed if allowed > 0 else (0.0 if iou >= 1.0 else float("inf"))
    return Check(name, f"IoU {iou:.3f} (bar {bar})", ratio, f"{what} IoU {iou:.3f} below {bar}")


# ---------------------------------------------------------------------------------------------
# BU-3DFE


def align_bu3dfe(
    scan: Bu3dfeScan,
    renderer_for: Callable[[int, int], DepthRenderer],
    fit_rotation: bool = False,
    min_iou: float = MIN_SILHOUETTE_IOU,
) -> Aligned:
    """Fit the F2D photo's hidden orthographic camera, then render the mesh through it.

    The fit needs only the mesh's silhouette, which the renderer gives without converting any
    depth; the depth is rendered once, through the fitted camera. (A silhouette at half the
    resolution costs less but leaves the camera up to a pixel off: measured, not worth it.)
    `renderer_for(width, height)` gives a (reused) renderer.
    """
    mesh, photo = scan.mesh, scan.photo
    height, width = photo.shape[:2]
    target = fit.photo_foreground(photo)
    if np.count_nonzero(target) < 100:
        raise AlignmentError("the F2D photo has no foreground (is it all black?)")
    renderer = renderer_for(width, height)
    start = fit.initial_camera(mesh.vertices, target)
    silhouette = renderer.silhouette(mesh.vertices, mesh.faces, start)
    if np.count_nonzero(silhouette) < 100:
        raise AlignmentError("the mesh's silhouette is empty in the photo frame")
    moments = fit.camera_from_moments(silhouette, start, target, fit_rotation)
    camera = fit.refine_on_outline(moments, silhouette, start, target, fit_rotation)
    z = renderer.render(mesh.vertices, mesh.faces, camera)
    iou = fit.silhouette_iou(np.isfinite(z), target)
    quality = {**camera.as_dict(), "iou": iou}
    if scan.landmarks is not None:
        quality.update(_bnd_figures(scan.landmarks.points, camera, z, target))
    checks = [_iou_check("silhouette-iou", iou, min_iou, "silhouette")]
    if scan.texture is not None and mesh.texcoords is not None:
        figures, check = texture_check(mesh, scan.texture, photo, camera)
        quality.update(figures)
        checks += [check] if check else []
    return Aligned(photo, z, "ortho-fit", quality, checks)


def texture_check(mesh, texture: np.ndarray, photo: np.ndarray, camera, samples: int = 2000):
    """Does the photo show this mesh's texture where the fitted camera puts it?

    The F2D photo is a view of the textured mesh, so each vertex's texture colour should be the
    photo's colour at its projection. A silhouette cannot tell a photo rotated against its mesh,
    or another subject's photo, from the right one; the texture can. The bar comes from the
    photo itself: the texture must agree with it (normalised cross-correlation of luminance at
    the vertices) at least as well as the photo agrees with itself one mesh edge away (the
    finest displacement vertex samples can resolve).
    """
    corners = mesh.faces.ravel()
    first = np.full(len(mesh.vertices), -1)
    first[corners[::-1]] = np.arange(len(corners))[::-1]  # each vertex's first face corner
    vertices = np.flatnonzero(first >= 0)
    vertices = vertices[:: max(1, len(vertices) // samples)]
    uv = mesh.texcoords[mesh.tex_faces.ravel()[first[vertices]]]
    height, width = texture.shape[:2]
    texels = _luminance_at(texture, uv[:, 0] * width - 0.5, (1 - uv[:, 1]) * height - 0.5)
    cols, rows = camera.project(mesh.vertices[vertices]).T
    x, y = mesh.vertices[:, 0], mesh.vertices[:, 1]  # 1-D gathers: (F, 2) rows cost 10x more
    a, b = mesh.faces[:, 0], mesh.faces[:, 1]
    dx, dy = x[b] - x[a], y[b] - y[a]
    edge_px = camera.scale * float(np.median(np.sqrt(dx * dx + dy * dy)))
    steps = np.array([(0, 0), (edge_px, 0), (-edge_px, 0), (0, edge_px), (0, -edge_px)])
    seen, *around = _luminance_at(  # the photo where the camera puts each vertex, and 4 steps away
        photo, cols + steps[:, :1], rows + steps[:, 1:]
    )
    shifted = [_ncc(seen, other) for other in around]
    agreement, bar = _ncc(texels, seen), float(np.mean(shifted))
    figures = {"texture_ncc": agreement, "texture_ncc_bar": bar, "mesh_edge_px": edge_px}
    if not np.isfinite(agreement) or not bar < 1.0:  # a photo without structure: no verdict
        return figures, None
    return figures, Check(
        "texture-agreement",
        f"texture ncc {agreement:.3f} (bar {bar:.3f})",
        (1.0 - agreement) / (1.0 - bar),
        f"the F3D texture agrees with the photo less (ncc {agreement:.3f}) than the photo with "
        f"itself {edge_px:.1f} px away ({bar:.3f}): the photo is not a view of this mesh "
        "through the fitted camera (turned against it, or another scan's photo?)",
    )


def _luminance_at(image: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Bilinear luminance (Rec. 601 weights) of an RGB image at sub-pixel points, the border
    pixels repeated outside the image (map_coordinates' order 1, mode "nearest"); one
    interpolation of the three channels' weighted sum instead of one per channel."""
    height, width = image.shape[:2]
    rows = np.clip(rows, 0, height - 1)
    cols = np.clip(cols, 0, width - 1)
    top = np.minimum(rows.astype(np.intp), max(height - 2, 0))  # rows >= 0: truncation floors
    left = np.minimum(cols.astype(np.intp), max(width - 2, 0))
    down, right = np.minimum(top + 1, height - 1), np.minimum(left + 1, width - 1)
    fr, fc = rows - top, cols - left
    pixels = image.reshape(-1, 3)
    weights = np.array([0.299, 0.587, 0.114])

    def at(r, c):  # np.take of flat indices: a tenth of the time of image[r, c]
        return np.take(pixels, r * width + c, axis=0) @ weights

    upper = at(top, left) * (1 - fc) + at(top, right) * fc
    lower = at(down, left) * (1 - fc) + at(down, right) * fc
    return upper * (1 - fr) + lower * fr


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / norm) if norm > 0 else float("nan")


def _bnd_figures(points: np.ndarray, camera, z: np.ndarray, target: np.ndarray) -> dict:
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


# ---------------------------------------------------------------------------------------------
# Bosphorus


@dataclass(frozen=True)
class Lattice:
    """The affine map from a .bnt grid index (row, column) to its image pixel (row, column).

    The grid is the image subsampled on a regular lattice; the map is fitted from the points'
    own (u, v), so nothing assumes the factor 6 or an image size.
    """

    to_pixel: np.ndarray  # (3, 2): [grid row, grid column, 1] @ to_pixel = [pixel row, column]
    residual_px: float  # largest distance of a grid point's (u, v) from the fitted lattice

    @property
    def steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel displacement of one grid row and of one grid column."""
        return self.to_pixel[0], self.to_pixel[1]

    @property
    def snap_radius_px(self) -> float:
        """Half the longer diagonal of a lattice cell: the farthest an image point can lie from
        its nearest grid vertex (4.24 px for a 6 px square lattice)."""
        row, col = self.steps
        return float(max(np.linalg.norm(row + col), np.linalg.norm(row - col)) / 2)

    def to_grid(self) -> np.ndarray:
        """(3, 3) pixel (row, column, 1) -> grid (row, column, 1)."""
        return np.linalg.inv(np.column_stack([self.to_pixel, [0, 0, 1]]).T)


def fit_lattice(valid: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> Lattice:
    """Least-squares lattice through the valid grid points' pixel positions."""
    r, c = np.nonzero(valid)
    design = np.column_stack([r, c, np.ones_like(r)]).astype(np.float64)
    pixels = np.column_stack([rows[valid], cols[valid]])
    if len(r) < 3 or np.linalg.matrix_rank(design) < 3:
        raise AlignmentError("too few face points in the .bnt grid to fit its pixel lattice")
    to_pixel, *_ = np.linalg.lstsq(design, pixels, rcond=None)
    if abs(np.linalg.det(to_pixel[:2])) < 1e-9:
        raise AlignmentError("the .bnt grid's (u, v) positions do not span the image plane")
    residual = float(np.linalg.norm(design @ to_pixel - pixels, axis=1).max())
    return Lattice(to_pixel, residual)


def align_bosphorus(scan: BosphorusScan, allowance_px: float = ANNOTATION_ALLOWANCE_PX) -> Aligned:
    """Place each grid point's z at its (u, v) pixel and fill the face between grid points."""
    grid, image = scan.grid, scan.image
    valid = grid.valid  # face points with every coordinate finite
    if not valid.any():
        raise AlignmentError("the .bnt grid has no face points (every z equals zmin)")
    height, width = image.shape[:2]
    rows, cols = grid.v * height, grid.u * width
    lattice = fit_lattice(valid, rows, cols)
    z = _fill_from_grid(grid.z, valid, lattice, (height, width))
    quality: dict = {
        "grid_points": int(valid.sum()),
        "lattice_pitch_px": float(np.sqrt(abs(np.linalg.det(lattice.to_pixel[:2])))),
        "lattice_residual_px": lattice.residual_px,
    }
    bar = MAX_LATTICE_RESIDUAL_PX
    checks = [
        Check(
            "lattice",
            f"lattice residual {lattice.residual_px:.2f} px (bar {bar})",
            lattice.residual_px / bar,
            f"the .bnt (u, v) positions depart {lattice.residual_px:.2f} px from a regular "
            f"lattice (more than {bar} px): depth would land on the wrong pixels",
        )
    ]
    if scan.lm2 is not None and scan.lm3 is not None:
        figures, landmark_checks = _landmark_checks(scan, lattice, valid, z, allowance_px)
        quality.update(figures)
        checks += landmark_checks
    return Aligned(image, z, "bnt-grid", quality, checks)


def _fill_from_grid(z, valid, lattice: Lattice, shape) -> np.ndarray:
    """Bilinear z between grid points; background where any surrounding grid point is missing."""
    pix_r, pix_c = np.mgrid[0 : shape[0], 0 : shape[1]]
    homogeneous = np.stack([pix_r.ravel(), pix_c.ravel(), np.ones(pix_r.size)])
    gr, gc, _ = lattice.to_grid() @ homogeneous
    coverage = ndimage.map_coordinates(valid.astype(np.float64), [gr, gc], order=1, cval=0.0)
    values = ndimage.map_coordinates(np.where(valid, z, 0.0), [gr, gc], order=1, cval=0.0)
    out = np.full(pix_r.size, np.nan)
    full = coverage > 1 - 1e-9
    out[full] = values[full]
    return out.reshape(shape)


def _landmark_checks(scan: BosphorusScan, lattice: Lattice, valid, z, allowance_px: float):
    """Each .lm3 point's grid vertex must project near its .lm2 pixel.

    The 2D landmark was clicked on the image and the 3D one snapped to the nearest grid vertex,
    so a gap up to the lattice's snap radius is expected, plus the annotators' allowance. The
    median gap decides (one badly clicked point does not condemn a scan); the maximum is
    reported beside it.
    """
    grid = scan.grid
    height, width = z.shape
    xyz = np.stack([grid.x[valid], grid.y[valid], grid.z[valid]], axis=1)
    uv = np.stack([grid.u[valid] * width, grid.v[valid] * height], axis=1)
    lm2, lm3 = scan.lm2.by_label(), scan.lm3.by_label()
    common = [label for label in lm3 if label in lm2]
    broken = [label for label in common if not _finite(lm2[label], lm3[label])]
    checks: list[Check] = []
    if broken:
        names = ", ".join(repr(label) for label in broken)
        checks.append(
            failure("landmark-nonfinite", f"non-finite .lm2 or .lm3 coordinates for {names}")
        )
    usable = [label for label in common if label not in broken]
    if not usable:
        if not broken:
            checks.append(failure("landmark-labels", "no .lm2 label matches a .lm3 label"))
        return {"landmarks": 0}, checks
    points3 = np.array([lm3[label] for label in usable])
    points2 = np.array([lm2[label] for label in usable])
    nearest = np.array([int(np.argmin(np.linalg.norm(xyz - p, axis=1))) for p in points3])
    vertex_gap = np.linalg.norm(xyz[nearest] - points3, axis=1)
    px_gap = np.linalg.norm(uv[nearest] - points2, axis=1)
    tolerance = lattice.snap_radius_px + allowance_px
    median, largest = float(np.median(px_gap)), float(px_gap.max())
    figures = {
        "landmarks": len(usable),
        "landmark_px_median": median,
        "landmark_px_max": largest,
        "landmark_tolerance_px": tolerance,
        "landmark_vertex_gap_mm_max": float(vertex_gap.max()),
        "landmark_depth_mm_median": _depth_gap(points2, points3, z),
    }
    checks.append(
        Check(
            "landmark-offset",
            f".lm2 gap {median:.1f} px (bar {tolerance:.1f})",
            median / tolerance,
            f"median .lm2 gap {median:.2f} px (max {largest:.2f}, {len(usable)} landmarks) "
            f"exceeds {tolerance:.2f} px ({lattice.snap_radius_px:.2f} px lattice snap + "
            f"{allowance_px} px annotation allowance): the .lm2 does not fit this scan's image",
        )
    )
    snap_mm = _grid_snap_mm(grid, valid)
    gap_mm = float(np.median(vertex_gap))
    checks.append(
        Check(
            "lm3-off-grid",
            f".lm3 off grid {gap_mm:.2f} mm (bar {snap_mm:.2f})",
            gap_mm / snap_mm if snap_mm > 0 else float("inf"),
            f"the .lm3 points lie a median {gap_mm:.2f} mm from the nearest .bnt vertex "
            f"(more than half a grid diagonal, {snap_mm:.2f} mm): they belong to another scan",
        )
    )
    return figures, checks


def _finite(*points: np.ndarray) -> bool:
    return all(np.isfinite(p).all() for p in points)


def _depth_gap(points2: np.ndarray, points3: np.ndarray, z: np.ndarray) -> float:
    """Median |z at the .lm2 pixel - .lm3 z| over the landmarks that land on the face."""
    height, width = z.shape
    cols, rows = np.rint(points2).astype(int).T
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    depth = np.full(len(points2), np.nan)
    depth[inside] = z[rows[inside], cols[inside]]
    gaps = np.abs(depth - points3[:, 2])
    return float(np.nanmedian(gaps)) if np.isfinite(gaps).any() else np.nan


def _grid_snap_mm(grid, valid: np.ndarray) -> float:
    """Half the diagonal of a grid cell in millimetres, from the median (x, y) distance of
    neighbouring face points down the grid's columns and along its rows."""
    steps = []
    for both, axis in ((valid[1:] & valid[:-1], 0), (valid[:, 1:] & valid[:, :-1], 1)):
        step = np.hypot(np.diff(grid.x, axis=axis), np.diff(grid.y, axis=axis))[both]
        steps.append(float(np.median(step)) if step.size else float("nan"))
    return float(np.hypot(*steps) / 2)


# ---------------------------------------------------------------------------------------------
# CalD3r & MenD3s


def align_rgbd(pair: RgbdPair, min_iou: float = MIN_RGBD_IOU) -> Aligned:
    """Sensor depth is already aligned: convert distance to height (z = -distance) in mm."""
    depth = pair.depth
    face = depth > 0
    if not face.any():
        raise AlignmentError("the depth image has no valid pixels (all zero)")
    z = np.where(face, -depth.astype(np.float64) * pair.depth_unit_mm, np.nan)
    rgb_face = fit.bright(pair.rgb, 0)
    iou = fit.silhouette_iou(face, rgb_face)
    checks = [_iou_check("rgb-depth-iou", iou, min_iou, "RGB/depth foreground")]
    return Aligned(pair.rgb, z, "given", {"iou": iou}, checks)
