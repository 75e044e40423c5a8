"""Fake BU-3DFE scans in the native tree: F3D.wrl, F3D.bmp, F3D.bnd, F2D.bmp (+ a few RAW).

The mesh is the face height field sampled on a regular (x, y) grid in the written frame, each
grid cell split along its bottom-left to top-right diagonal. A few hundred cells are written
as one quad, and a few cell-and-a-half regions as one pentagon; the vertex order of both is
chosen so a fan from the first vertex gives back exactly the triangles they replace. Because
the mesh is a height field, the F2D photo's silhouette is computed exactly per pixel from the
same cells: a pixel is face if its centre lies in a written polygon. Its colour is the F3D.bmp
texture seen there, as a renderer of the textured mesh would show it.

By default the photo is as irregular as the real ones: stray bright pixels on all four borders
(besides the yellow ones of the real photo inspected) and a face further off the photo centre;
a few scans get a planted misalignment (a photo turned in its plane, or another subject's
photo). Exact mode keeps the yellow strays only and the face within 20 px of the centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fer3d_bench.sample.common import (
    Options,
    Plant,
    planted_scans,
    rng_for,
    save_rgb,
    uniform,
    write_text,
)
from fer3d_bench.sample.face import Face, Grid, landmarks, make_face, photo, sample_identity

DATASET = "bu3dfe"
EXPRESSIONS = {
    "AN": "anger",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happiness",
    "SA": "sadness",
    "SU": "surprise",
}
ETHNICITY_TONES = {
    "WH": (0.0, 0.3),
    "AE": (0.15, 0.45),
    "BL": (0.7, 1.0),
    "IN": (0.45, 0.75),
    "LA": (0.3, 0.6),
    "AM": (0.3, 0.6),
}
STRENGTH = {0: 0.0, 1: 0.4, 2: 0.6, 3: 0.8, 4: 1.0}  # BU intensity level -> expression strength
PHOTO_SIZE = 512
PHOTO_MARGIN = 6  # px kept black around the projected mesh
EXACT_OFFSET_PX = 20.0  # face centre off the photo centre by up to this (uniform), exact mode
OFFSET_PX = 60.0  # the same, irregular mode; both clipped to keep PHOTO_MARGIN
YELLOW = (255, 255, 0)
STRAYS_PER_BORDER = (2, 12)  # bright stray pixels per photo border (uniform, inclusive)
STRAY_BRIGHT = 41  # a bright stray's brightest channel is at least this
ROTATION_DEGREES = (10.0, 15.0)  # in-plane turn of a photo-rotated plant (uniform, either sign)
PLANT_KINDS = ("photo-rotated", "photo-swapped")  # planted in turn
TARGET_VERTICES = 8000
TEXTURE_PX_PER_MM = 1.7
VERTEX_FMT = "%.6f %.6f %.6f"  # the .bnd repeats these exact strings
RAW_SUBJECTS = 2  # the first subjects' neutral scans also get RAW.wrl + RAW.pse


@dataclass(frozen=True)
class BuScan:
    subject: str
    code: str  # e.g. "AN04", "NE00"
    ethnicity: str
    raw: bool

    @property
    def stem(self) -> str:
        return f"{self.subject}_{self.code}{self.ethnicity}"

    @property
    def cls(self) -> str:
        return "neutral" if self.code.startswith("NE") else EXPRESSIONS[self.code[:2]]

    @property
    def level(self) -> int:
        return int(self.code[2:])


def subject_names(n: int) -> list[str]:
    """Half female, half male (F gets the odd one): F0001.., M0001..."""
    n_f = (n + 1) // 2
    return [f"F{i + 1:04d}" for i in range(n_f)] + [f"M{i + 1:04d}" for i in range(n - n_f)]


def subject_ethnicity(seed: int, subject: str) -> str:
    codes = list(ETHNICITY_TONES)
    return codes[int(rng_for(seed, DATASET, "ethnicity", subject).integers(len(codes)))]


def scans(seed: int, n_subjects: int) -> list[BuScan]:
    """All 25 scans of each subject, in a stable order."""
    out = []
    for k, subject in enumerate(subject_names(n_subjects)):
        eth = subject_ethnicity(seed, subject)
        out.append(BuScan(subject, "NE00", eth, raw=k < RAW_SUBJECTS))
        out += [
            BuScan(subject, f"{ex}{lv:02d}", eth, raw=False)
            for ex in EXPRESSIONS
            for lv in range(1, 5)
        ]
    return out


# ---------------------------------------------------------------------------------------------
# Mesh


@dataclass(frozen=True, eq=False)
class GridMesh:
    """The written mesh: vertices in the written frame, polygons, texture coordinates."""

    vertices: np.ndarray  # (n, 3)
    sizes: np.ndarray  # vertex count of each polygon, in file order
    vertex_ids: np.ndarray  # polygon corners, flattened (without the -1 terminators)
    tex_ids: np.ndarray  # texture-coordinate ids of the same corners
    texcoords: np.ndarray  # (m, 2)
    lower: np.ndarray  # (ny-1, nx-1) lower-right triangle of the cell written
    upper: np.ndarray  # (ny-1, nx-1) upper-left triangle of the cell written
    vertex_grid: np.ndarray  # (ny, nx) vertex id of each grid point, -1 where unused
    x0: float  # written x of grid column 0
    y_top: float  # written y of grid row 0 (rows go down)
    step: float

    @property
    def n_triangles(self) -> int:
        """Triangles after fan triangulation of every polygon."""
        return int((self.sizes - 2).sum())

    def nearest_vertices(self, xy: np.ndarray) -> np.ndarray:
        """Id of the vertex nearest to each (x, y): the rounded grid point if it is in the
        mesh, else the nearest of all vertices (only happens next to the outline)."""
        ny, nx = self.vertex_grid.shape
        j = np.clip(np.rint((xy[:, 0] - self.x0) / self.step).astype(int), 0, nx - 1)
        i = np.clip(np.rint((self.y_top - xy[:, 1]) / self.step).astype(int), 0, ny - 1)
        ids = self.vertex_grid[i, j]
        for k in np.flatnonzero(ids < 0):
            d2 = ((self.vertices[:, :2] - xy[k]) ** 2).sum(axis=1)
            ids[k] = int(d2.argmin())
        return ids

    def coverage(self, cols_x: np.ndarray, rows_y: np.ndarray) -> np.ndarray:
        """Whether each point (cols_x[j], rows_y[i]) lies inside a written polygon."""
        return self.coverage_at(cols_x[None, :], rows_y[:, None])

    def coverage_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether each point (x, y) (broadcast together) lies inside a written polygon."""
        gx, gy = (x - self.x0) / self.step, (self.y_top - y) / self.step
        cj, ci = np.floor(gx).astype(int), np.floor(gy).astype(int)
        ok = (cj >= 0) & (cj < self.lower.shape[1]) & (ci >= 0) & (ci < self.lower.shape[0])
        cjc, cic = np.clip(cj, 0, self.lower.shape[1] - 1), np.clip(ci, 0, self.lower.shape[0] - 1)
        diag = (gx - cj) + (gy - ci)  # >= 1: lower-right half of the cell
        lower = self.lower[cic, cjc] & (diag >= 1.0)
        upper = self.upper[cic, cjc] & (diag <= 1.0)
        return (lower | upper) & ok


def _grid_frame(face: Face, offset: np.ndarray, step: float, rng: np.random.Generator):
    """Grid origin (written frame, 3 decimals so every written x, y is an exact decimal)."""
    x0, x1, y0, y1 = face.bounds()
    gx0 = round(x0 + offset[0] - 2.0 - uniform(rng, 0.0, step), 3)
    gy_top = round(y1 + offset[1] + 2.0 + uniform(rng, 0.0, step), 3)
    nx = int(np.ceil((offset[0] + x1 + 2.0 - gx0) / step)) + 1
    ny = int(np.ceil((gy_top - (offset[1] + y0 - 2.0)) / step)) + 1
    return gx0, gy_top, nx, ny


def _pick_special_cells(full: np.ndarray, rng: np.random.Generator):
    """Cells written as pentagons (with their right neighbour) and cells written as quads."""
    pairs = np.argwhere(full[:, :-1] & full[:, 1:])
    n_pent = int(rng.integers(2, 4))
    pent = np.zeros_like(full)
    taken = np.zeros_like(full)
    for ci, cj in pairs[rng.permutation(len(pairs))]:
        if pent.sum() == n_pent:
            break
        if not taken[ci, max(cj - 1, 0) : cj + 3].any():
            pent[ci, cj] = True
            taken[ci, cj : cj + 2] = True
    free = np.argwhere(full & ~taken)
    n_quads = min(250 + int(rng.integers(-12, 13)), len(free))
    quad = np.zeros_like(full)
    chosen = free[rng.choice(len(free), n_quads, replace=False)]
    quad[chosen[:, 0], chosen[:, 1]] = True
    return pent, quad


def build_mesh(face: Face, offset: np.ndarray, rng: np.random.Generator) -> GridMesh:
    """Sample the face on a grid sized for about 8,000 vertices and build the polygons."""
    x0, x1, y0, y1 = face.bounds()
    probe = Grid(np.arange(x0, x1, 1.5), np.arange(y1, y0, -1.5))
    area = face.render(probe, albedo=False).mask.sum() * 1.5**2
    step = round(float(np.sqrt(area / TARGET_VERTICES)), 3)
    gx0, gy_top, nx, ny = _grid_frame(face, offset, step, rng)
    xs_w, ys_w = gx0 + step * np.arange(nx), gy_top - step * np.arange(ny)
    surf = face.render(Grid(xs_w - offset[0], ys_w - offset[1]), albedo=False)
    inside = surf.mask
    tl, tr, bl, br = inside[:-1, :-1], inside[:-1, 1:], inside[1:, :-1], inside[1:, 1:]
    lower, upper = bl & br & tr, bl & tr & tl
    pent, quad = _pick_special_cells(lower & upper, rng)
    pent_b = np.zeros_like(pent)
    pent_b[:, 1:] = pent[:, :-1]

    used = np.zeros_like(inside)
    for tri, corners in ((lower, ((1, 0), (1, 1), (0, 1))), (upper, ((1, 0), (0, 1), (0, 0)))):
        ci, cj = np.nonzero(tri)
        for di, dj in corners:
            used[ci + di, cj + dj] = True
    vid = np.full(inside.shape, -1)
    vid[used] = np.arange(used.sum())
    rows, cols = np.nonzero(used)
    z_w = surf.z[rows, cols] + offset[2]
    vertices = np.column_stack([xs_w[cols], ys_w[rows], z_w])

    # texture coordinates: column-major order, plus duplicates along a vertical seam
    uv = np.column_stack(
        [(xs_w[cols] - gx0) / (step * (nx - 1)), (ys_w[rows] - ys_w[-1]) / (step * (ny - 1))]
    )
    order = np.lexsort((rows, cols))
    tid = np.full(inside.shape, -1)
    tid[rows[order], cols[order]] = np.arange(order.size)
    seam_col = int(round((offset[0] - gx0) / step))
    seam_rows = np.flatnonzero(used[:, seam_col])
    tid_right = tid.copy()
    tid_right[seam_rows, seam_col] = order.size + np.arange(seam_rows.size)
    texcoords = np.concatenate([uv[order], uv[vid[seam_rows, seam_col]]])

    sizes, vertex_ids, tex_ids = _polygons(
        vid, tid, tid_right, seam_col, lower, upper, quad, pent, pent_b
    )
    return GridMesh(
        vertices, sizes, vertex_ids, tex_ids, texcoords, lower, upper, vid, gx0, gy_top, step
    )


def _polygons(vid, tid, tid_right, seam_col, lower, upper, quad, pent, pent_b):
    """Polygons in cell order: their sizes, and their corners as vertex and texcoord ids.

    Corners are (row offset, col offset) from a cell's top-left vertex; a fan from the first
    corner triangulates each polygon into exactly the cell triangles it replaces.
    """
    kinds = (
        (lower & ~quad & ~pent, 0, ((1, 0), (1, 1), (0, 1))),  # BL BR TR
        (upper & ~quad & ~pent & ~pent_b, 1, ((1, 0), (0, 1), (0, 0))),  # BL TR TL
        (quad, 0, ((1, 0), (1, 1), (0, 1), (0, 0))),  # BL BR TR TL
        (pent, 0, ((1, 0), (1, 1), (0, 2), (0, 1), (0, 0))),  # cell + right cell's upper half
    )
    keys, sizes, starts, flat_v, flat_t = [], [], [], [], []
    n_cols, offset = lower.shape[1], 0
    for mask, sub, corners in kinds:
        ci, cj = np.nonzero(mask)
        v = np.stack([vid[ci + di, cj + dj] for di, dj in corners], axis=1)
        t_left = np.stack([tid[ci + di, cj + dj] for di, dj in corners], axis=1)
        t_right = np.stack([tid_right[ci + di, cj + dj] for di, dj in corners], axis=1)
        if (v < 0).any():
            raise RuntimeError("a polygon references a grid point outside the mesh")
        keys.append((ci * n_cols + cj) * 2 + sub)
        sizes.append(np.full(ci.size, len(corners)))
        starts.append(offset + len(corners) * np.arange(ci.size))
        flat_v.append(v.ravel())
        flat_t.append(np.where((cj >= seam_col)[:, None], t_right, t_left).ravel())
        offset += v.size
    order = np.argsort(np.concatenate(keys), kind="stable")
    size, start = np.concatenate(sizes)[order], np.concatenate(starts)[order]
    out_start = np.cumsum(size) - size
    gather = np.arange(size.sum()) + np.repeat(start - out_start, size)
    return size, np.concatenate(flat_v)[gather], np.concatenate(flat_t)[gather]


# ---------------------------------------------------------------------------------------------
# Text formats


def _section(
    pieces: list[str], values: list, style: str, rng: np.random.Generator, indent: str
) -> str:
    """Items (printf pieces filled from `values`) with the commas and line breaks of `style`."""
    if style == "comma_lines":
        text = (",\n" + indent).join(pieces)
    elif style == "bare_lines":
        text = ("\n" + indent).join(pieces)
    else:
        k = int(rng.integers(3, 9))
        text = (",\n" + indent).join(", ".join(pieces[i : i + k]) for i in range(0, len(pieces), k))
    trailing = "," if style != "bare_lines" and rng.random() < 0.5 else ""
    return indent + text % tuple(values) + trailing


def _index_pieces(sizes: np.ndarray, style: str) -> list[str]:
    sep = " " if style == "bare_lines" else ", "
    fmt = {n: sep.join(["%d"] * n + ["-1"]) for n in (3, 4, 5)}
    return [fmt[n] for n in sizes.tolist()]


def vrml_text(stem: str, mesh: GridMesh, rng: np.random.Generator) -> str:
    styles = ("comma_lines", "packed", "bare_lines")
    pick = lambda: styles[int(rng.integers(3))]  # noqa: E731
    ind = "\t\t\t\t\t" if rng.random() < 0.5 else "          "
    s_pt, s_ci, s_tc, s_ti = pick(), pick(), pick(), pick()
    points = _section(
        [VERTEX_FMT] * len(mesh.vertices), mesh.vertices.ravel().tolist(), s_pt, rng, ind
    )
    coord_index = _section(
        _index_pieces(mesh.sizes, s_ci), mesh.vertex_ids.tolist(), s_ci, rng, ind
    )
    tex_points = _section(
        ["%.6f %.6f"] * len(mesh.texcoords), mesh.texcoords.ravel().tolist(), s_tc, rng, ind
    )
    tex_index = _section(_index_pieces(mesh.sizes, s_ti), mesh.tex_ids.tolist(), s_ti, rng, ind)
    flags = (
        "ccw TRUE solid FALSE convex TRUE creaseAngle 0.5"
        if rng.random() < 0.5
        else "ccw TRUE\n      solid FALSE\n      convex TRUE\n      creaseAngle 0.5"
    )
    return "\n".join(
        [
            "#VRML V2.0 utf8",
            "",
            f"# fer3d-bench procedural sample: {stem}",
            f"DEF {stem} Transform {{",
            "  children [",
            "    Shape {",
            "      appearance Appearance {",
            f'        texture ImageTexture {{ url "{stem}.bmp" }}',
            "      }",
            "      geometry IndexedFaceSet {",
            f"      {flags}",
            "      coord Coordinate {",
            "        point [",
            points,
            "        ]",
            "      }",
            "      coordIndex [",
            coord_index,
            "      ]",
            "      texCoord TextureCoordinate {",
            "        point [",
            tex_points,
            "        ]",
            "      }",
            "      texCoordIndex [",
            tex_index,
            "      ]",
            "      }",
            "    }",
            "  ]",
            "}",
            'Viewpoint { position 0 0 500 fieldOfView 0.5 description "front" }',
            'Viewpoint { position 350 0 350 orientation 0 1 0 0.785 description "right" }',
            'Viewpoint { position -350 0 350 orientation 0 1 0 -0.785 description "left" }',
            "",
        ]
    )


# 83 landmarks: left eye 0-7, right eye 8-15, left brow 16-25, right brow 26-35, nose 36-47,
# mouth 48-67, contour 68-82 ("left" = image left, smaller x).
def _eye(tag: str) -> list[str]:
    first, last = (0, 4) if tag == "l" else (4, 0)
    step = 1 if first < last else -1
    ups = [f"eye_{tag}_up{k}" for k in range(first, last + step, step)]
    lows = [f"eye_{tag}_low{k}" for k in range(last - step, first, -step)]
    return ups + lows


LANDMARK_ORDER = (
    _eye("l")
    + _eye("r")
    + [f"brow_l_up{k}" for k in range(5)]
    + [f"brow_l_low{k}" for k in range(4, -1, -1)]
    + [f"brow_r_up{k}" for k in range(5)]
    + [f"brow_r_low{k}" for k in range(4, -1, -1)]
    + [
        "nose_saddle_l",
        "nose_bridge",
        "nose_saddle_r",
        "nose_alatop_l",
        "nose_ala_l",
        "nose_nostril_l",
        "nose_subnasale",
        "nose_nostril_r",
        "nose_ala_r",
        "nose_alatop_r",
        "nose_tip",
        "nose_saddle",
    ]
    + [f"mouth_up_out{k}" for k in range(7)]
    + [f"mouth_low_out{k}" for k in range(5, 0, -1)]
    + [
        "mouth_up_in0",
        "mouth_up_in2",
        "mouth_up_in3",
        "mouth_up_in4",
        "mouth_up_in6",
        "mouth_low_in4",
        "mouth_low_in3",
        "mouth_low_in2",
    ]
    + [f"contour{k}" for k in range(15)]
)
assert len(LANDMARK_ORDER) == 83


def bnd_text(face: Face, mesh: GridMesh, offset: np.ndarray) -> str:
    """83 lines `index<TAB>x<TAB>y<TAB>z`: the mesh vertex nearest to each feature point."""
    pts = landmarks(face)
    xy = np.array([pts[name] for name in LANDMARK_ORDER]) + offset[:2]
    nearest = mesh.nearest_vertices(xy)
    fmt = "%d\t" + VERTEX_FMT.replace(" ", "\t") + "\n"
    return "".join(fmt % (i, *mesh.vertices[i].tolist()) for i in nearest.tolist())


# ---------------------------------------------------------------------------------------------
# Images


def _camera(mesh: GridMesh, rng: np.random.Generator, spread: float) -> tuple[float, float, float]:
    """Per-scan scale and offset of the F2D photo: the face centre lies up to `spread` px off
    the photo centre, clipped so the projected mesh keeps PHOTO_MARGIN px of black around it."""
    (xmin, ymin, _), (xmax, ymax, _) = mesh.vertices.min(0), mesh.vertices.max(0)
    room = PHOTO_SIZE - 1 - 2 * PHOTO_MARGIN
    s_fit = room / max(xmax - xmin, ymax - ymin)
    s = uniform(rng, 2.4, min(2.9, s_fit)) if s_fit > 2.4 else s_fit
    centre = (PHOTO_SIZE - 1) / 2
    dx = np.clip(
        uniform(rng, -spread, spread),
        PHOTO_MARGIN - (centre - s * (xmax - xmin) / 2),
        (centre - s * (xmax - xmin) / 2) - PHOTO_MARGIN,
    )
    dy = np.clip(
        uniform(rng, -spread, spread),
        PHOTO_MARGIN - (centre - s * (ymax - ymin) / 2),
        (centre - s * (ymax - ymin) / 2) - PHOTO_MARGIN,
    )
    tx = float(centre + dx - s * (xmin + xmax) / 2)
    ty = float(centre + dy + s * (ymin + ymax) / 2)
    return s, tx, ty


def face_centre(mesh: GridMesh, camera) -> tuple[float, float]:
    """Photo column and row of the centre of the projected mesh's bounding box."""
    s, tx, ty = camera
    (xmin, ymin, _), (xmax, ymax, _) = mesh.vertices.min(0), mesh.vertices.max(0)
    return float(s * (xmin + xmax) / 2 + tx), float(-s * (ymin + ymax) / 2 + ty)


def _face_photo(mesh: GridMesh, texture: np.ndarray, camera) -> np.ndarray:
    """The 512x512 frontal photo: column = s*x + tx, row = -s*y + ty (written frame).

    A pixel is face exactly when its centre lies in a written polygon; its colour is the
    texture sampled (bilinearly) at that point, as a renderer of the textured mesh would see it.
    """
    s, tx, ty = camera
    px = np.arange(PHOTO_SIZE, dtype=float)
    xs_w, ys_w = (px - tx) / s, (ty - px) / s
    cover = mesh.coverage(xs_w, ys_w)
    rows, cols = np.flatnonzero(cover.any(1)), np.flatnonzero(cover.any(0))
    r, c = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    image = np.zeros((PHOTO_SIZE, PHOTO_SIZE, 3), np.uint8)
    image[r, c] = np.where(cover[r, c, None], _sample_texture(mesh, texture, camera, r, c), 0)
    return image


def _rotated_face_photo(mesh: GridMesh, texture: np.ndarray, camera, degrees: float):
    """The photo of a camera turned `degrees` in the image plane about the face centre
    (positive: clockwise on screen, as rows point down): each pixel centre is turned back onto
    the unrotated photo, then seen as `_face_photo` sees it."""
    s, tx, ty = camera
    cc, rc = face_centre(mesh, camera)
    cos, sin = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    turn_back = np.array(
        [[cos, sin, cc - cos * cc - sin * rc], [-sin, cos, rc + sin * cc - cos * rc], [0, 0, 1]]
    )
    to_world = np.array([[1 / s, 0, -tx / s], [0, -1 / s, ty / s], [0, 0, 1]])
    photo_to_world = to_world @ turn_back
    px = np.arange(PHOTO_SIZE, dtype=float)
    (a, b, c), (d, e, f) = photo_to_world[:2]
    cover = mesh.coverage_at(
        a * px[None, :] + b * px[:, None] + c, d * px[None, :] + e * px[:, None] + f
    )
    th, tw = texture.shape[:2]
    width, height = mesh.step * mesh.lower.shape[1], mesh.step * mesh.lower.shape[0]
    to_texture = np.array(  # Pillow's texel centres sit at +0.5, as its output pixels' do
        [
            [tw / width, 0, -mesh.x0 * tw / width],
            [0, -th / height, mesh.y_top * th / height],
            [0, 0, 1],
        ]
    )
    from_pillow = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    warp = (to_texture @ photo_to_world @ from_pillow)[:2].ravel()
    colours = Image.fromarray(texture).transform(
        (PHOTO_SIZE, PHOTO_SIZE),
        Image.Transform.AFFINE,
        tuple(warp.tolist()),
        resample=Image.Resampling.BILINEAR,
    )
    return np.where(cover[..., None], np.asarray(colours), 0).astype(np.uint8)


def _put_strays(image: np.ndarray, rows, cols, colours) -> np.ndarray:
    """Write stray pixels where the photo is black (never on the face); return where they went."""
    rows, cols = np.broadcast_arrays(rows, cols)
    colours = np.broadcast_to(np.asarray(colours, np.uint8), (rows.size, 3))
    free = ~image[rows, cols].any(axis=1)
    image[rows[free], cols[free]] = colours[free]
    hit = np.zeros(image.shape[:2], bool)
    hit[rows[free], cols[free]] = True
    return hit


def _yellow_strays(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few (255, 255, 0) pixels in column 0 and row 511, as in the real photo inspected."""
    n = PHOTO_SIZE
    left = _put_strays(image, rng.choice(n, int(rng.integers(2, 6)), replace=False), 0, YELLOW)
    bottom = _put_strays(
        image, n - 1, rng.choice(n, int(rng.integers(2, 6)), replace=False), YELLOW
    )
    return left | bottom


def _bright_strays(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """STRAYS_PER_BORDER pixels of random bright colours on each of the four borders."""
    n, hit = PHOTO_SIZE, np.zeros(image.shape[:2], bool)
    for border in ("top", "bottom", "left", "right"):
        count = int(rng.integers(STRAYS_PER_BORDER[0], STRAYS_PER_BORDER[1] + 1))
        along = rng.choice(n, count, replace=False)
        colours = rng.integers(0, 256, (count, 3))  # then one channel made bright
        colours[np.arange(count), rng.integers(3, size=count)] = rng.integers(
            STRAY_BRIGHT, 256, count
        )
        edge = 0 if border in ("top", "left") else n - 1
        rows, cols = (edge, along) if border in ("top", "bottom") else (along, edge)
        hit |= _put_strays(image, rows, cols, colours.astype(np.uint8))
    return hit


def f2d_photo(
    mesh: GridMesh,
    texture: np.ndarray,
    camera,
    rng: np.random.Generator,
    exact: bool,
    degrees: float = 0.0,
) -> tuple[np.ndarray, int]:
    """The F2D photo (turned `degrees` for a photo-rotated plant) with its stray border pixels,
    and how many strays it holds."""
    image = (
        _face_photo(mesh, texture, camera)
        if degrees == 0
        else _rotated_face_photo(mesh, texture, camera, degrees)
    )
    strays = _yellow_strays(image, rng)
    if not exact:
        strays |= _bright_strays(image, rng)
    return image, int(strays.sum())


def _sample_texture(mesh: GridMesh, texture: np.ndarray, camera, r: slice, c: slice):
    """The texture seen at photo pixels rows r, columns c (bilinear, by Pillow's affine warp).

    Texel (i, j) is centred at u = (j + .5) / W, v = 1 - (i + .5) / H; Pillow puts pixel centres
    at +0.5, so texture column = a * (photo column + .5) + b with the offsets below.
    """
    s, tx, ty = camera
    th, tw = texture.shape[:2]
    width, height = mesh.step * mesh.lower.shape[1], mesh.step * mesh.lower.shape[0]
    a_c, a_r = tw / (width * s), th / (height * s)  # texels per photo pixel
    b_c = ((c.start - 0.5 - tx) / s - mesh.x0) / width * tw
    b_r = (mesh.y_top - (ty - r.start + 0.5) / s) / height * th
    size = (c.stop - c.start, r.stop - r.start)
    warp = (a_c, 0.0, b_c, 0.0, a_r, b_r)
    warped = Image.fromarray(texture).transform(
        size, Image.Transform.AFFINE, warp, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(warped)


def texture_image(face: Face, mesh: GridMesh, offset: np.ndarray) -> np.ndarray:
    """The F3D.bmp texture; texel centres map to u = (c+.5)/W, v = 1 - (r+.5)/H."""
    width = mesh.step * (mesh.lower.shape[1])
    height = mesh.step * (mesh.lower.shape[0])
    tw, th = int(round(width * TEXTURE_PX_PER_MM)), int(round(height * TEXTURE_PX_PER_MM))
    xs_w = mesh.x0 + (np.arange(tw) + 0.5) / tw * width
    ys_w = mesh.y_top - height + (1.0 - (np.arange(th) + 0.5) / th) * height
    grid = Grid.for_photo(xs_w - offset[0], ys_w - offset[1])
    return photo(face, grid, face.render(grid), np.ones((th, tw), bool))


# ---------------------------------------------------------------------------------------------
# One scan


@dataclass(frozen=True, eq=False)
class Scene:
    """One scan's face, mesh and photo camera: a pure function of (scan, seed, exact), so a
    photo-swapped plant recomputes its donor's photo."""

    face: Face
    strength: float
    offset: np.ndarray  # written frame = face frame + offset (mm)
    mesh: GridMesh
    camera: tuple[float, float, float]  # s, tx, ty: column = s*x + tx, row = -s*y + ty
    rng: np.random.Generator  # the scan's stream after the camera: the .wrl's styles


def scene(scan: BuScan, seed: int, exact: bool) -> Scene:
    tone_range = ETHNICITY_TONES[scan.ethnicity]
    id_rng = rng_for(seed, DATASET, "identity", scan.subject)
    identity = sample_identity(id_rng, uniform(id_rng, *tone_range))
    rng = rng_for(seed, DATASET, "scan", scan.stem)
    strength = min(STRENGTH[scan.level] * uniform(rng, 0.93, 1.07), 1.0)
    face = make_face(identity, scan.cls, strength, rng)
    offset = np.array([uniform(rng, -6, 6), uniform(rng, -6, 6), uniform(rng, -15, 5)])
    mesh = build_mesh(face, offset, rng)
    camera = _camera(mesh, rng, EXACT_OFFSET_PX if exact else OFFSET_PX)
    return Scene(face, strength, offset, mesh, camera, rng)


def _stray_rng(seed: int, scan: BuScan) -> np.random.Generator:
    """Irregular mode draws strays from their own stream, so a donor's photo needs no .wrl."""
    return rng_for(seed, DATASET, "strays", scan.stem)


def _irregular_photo(scan: BuScan, seed: int) -> tuple[np.ndarray, int]:
    """The F2D photo an unplanted irregular scan writes: what a photo-swapped plant copies."""
    sc = scene(scan, seed, exact=False)
    texture = texture_image(sc.face, sc.mesh, sc.offset)
    return f2d_photo(sc.mesh, texture, sc.camera, _stray_rng(seed, scan), exact=False)


def _planted_photo(scan: BuScan, sc: Scene, texture: np.ndarray, seed: int, plant: Plant):
    """The photo of a planted scan, its stray count and its "planted" truth."""
    if plant.kind == "photo-swapped":
        (donor,) = plant.donors
        photo_rgb, strays = _irregular_photo(donor, seed)
        return photo_rgb, strays, {"kind": plant.kind, "donor": f"{donor.subject}/{donor.stem}"}
    rng = rng_for(seed, DATASET, "plant", scan.stem)
    degrees = uniform(rng, *ROTATION_DEGREES) * (1.0 if rng.random() < 0.5 else -1.0)
    stray_rng = _stray_rng(seed, scan)
    photo_rgb, strays = f2d_photo(
        sc.mesh, texture, sc.camera, stray_rng, exact=False, degrees=degrees
    )
    centre = list(face_centre(sc.mesh, sc.camera))
    return photo_rgb, strays, {"kind": plant.kind, "degrees": degrees, "centre_px": centre}


def write_scan(scan: BuScan, root: Path, seed: int, options: Options) -> tuple[str, dict]:
    """Write one scan's files; return its ground-truth key and entry."""
    sc = scene(scan, seed, options.exact)
    folder = root / scan.subject
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / scan.stem
    write_text(Path(f"{stem}_F3D.wrl"), vrml_text(f"{scan.stem}_F3D", sc.mesh, sc.rng))
    write_text(Path(f"{stem}_F3D.bnd"), bnd_text(sc.face, sc.mesh, sc.offset))
    texture = texture_image(sc.face, sc.mesh, sc.offset)
    save_rgb(Path(f"{stem}_F3D.bmp"), texture, "BMP")
    planted = None
    if options.plant is not None:
        photo_rgb, strays, planted = _planted_photo(scan, sc, texture, seed, options.plant)
    else:
        stray_rng = sc.rng if options.exact else _stray_rng(seed, scan)
        photo_rgb, strays = f2d_photo(sc.mesh, texture, sc.camera, stray_rng, options.exact)
    save_rgb(Path(f"{stem}_F2D.bmp"), photo_rgb, "BMP")
    if scan.raw:
        _write_raw(stem)
    centre = (PHOTO_SIZE - 1) / 2
    col, row = face_centre(sc.mesh, sc.camera)
    key = f"{scan.subject}/{scan.stem}_F3D.wrl"
    return key, {
        "subject": scan.subject,
        "sex": scan.subject[0],
        "class": scan.cls,
        "intensity": scan.level,
        "strength": sc.strength,
        "f2d_scale": sc.camera[0],
        "f2d_tx": sc.camera[1],
        "f2d_ty": sc.camera[2],
        "n_vertices": len(sc.mesh.vertices),
        "n_faces_polygons": len(sc.mesh.sizes),
        "n_faces_triangles": sc.mesh.n_triangles,
        "centre_offset_px": [col - centre, row - centre],
        "stray_pixels": strays,
        "planted": planted,
    }


# ---------------------------------------------------------------------------------------------
# Planted misalignments


def plan(seed: int, all_scans: list[BuScan], misaligned: int) -> dict:
    """{scan: Plant} for `misaligned` scans chosen by a named RNG over the whole dataset; kinds
    follow PLANT_KINDS in turn. A swap copies the same expression code of the next subject
    (in list order, wrapping) that is not planted itself; with no such subject it is rotated."""
    chosen = planted_scans(seed, DATASET, all_scans, misaligned)
    plants = {}
    for k, scan in enumerate(chosen):
        kind = PLANT_KINDS[k % len(PLANT_KINDS)]
        donor = _photo_donor(scan, all_scans, set(chosen)) if kind == "photo-swapped" else None
        plants[scan] = Plant(kind, (donor,)) if donor else Plant("photo-rotated")
    return plants


def _photo_donor(scan: BuScan, all_scans: list[BuScan], planted: set) -> BuScan | None:
    """The same code's scan of the first other subject after this one that is not planted."""
    same_code = {s.subject: s for s in all_scans if s.code == scan.code}
    subjects = list(same_code)
    i = subjects.index(scan.subject)
    others = [same_code[s] for s in subjects[i + 1 :] + subjects[:i]]
    return next((s for s in others if s not in planted), None)


def irregularities() -> dict:
    """The distributions irregular mode draws from, for the ground truth's readers."""
    return {
        "f2d_stray_pixels": {
            "yellow": "2-5 (255, 255, 0) pixels in column 0 and 2-5 in row 511 (also exact)",
            "bright_per_border_uniform": list(STRAYS_PER_BORDER),
            "bright_colour": (
                f"each channel uniform 0-255, then one channel uniform {STRAY_BRIGHT}-255"
            ),
            "borders": ["top", "bottom", "left", "right"],
            "never_on_the_face": True,
        },
        "f2d_centre_offset_px": (
            f"dx, dy uniform in [-{OFFSET_PX}, {OFFSET_PX}], clipped so the projected mesh "
            f"keeps {PHOTO_MARGIN} px of black margin (exact mode: [-{EXACT_OFFSET_PX}, "
            f"{EXACT_OFFSET_PX}])"
        ),
        "planted_kinds_in_turn": list(PLANT_KINDS),
        "planted_among": "all scans",
        "photo_rotated_degrees_uniform": list(ROTATION_DEGREES),
        "photo_rotated_sign": "+ or - with probability 1/2; + is clockwise on screen",
        "photo_swapped": "the F2D.bmp of the same expression code of another subject",
    }


def _write_raw(stem: Path) -> None:
    """Stubs: the readers must skip RAW files, so their content does not matter."""
    write_text(
        Path(f"{stem}_RAW.wrl"),
        "#VRML V2.0 utf8\n# fer3d-bench sample: uncropped RAW scan stub (not a real mesh)\n",
    )
    write_text(Path(f"{stem}_RAW.pse"), "0 0.0 0.0\n1 0.0 0.0\n")
