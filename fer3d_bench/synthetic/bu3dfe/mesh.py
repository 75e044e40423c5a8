"""The BU-3DFE face mesh and its texture map, apart from the files that carry them.

The mesh is the face height field sampled on a regular (x, y) grid in the written frame, each
grid cell split along its bottom-left to top-right diagonal. A few hundred cells are written as
one quad and a few cell-and-a-half regions as one pentagon, so readers must triangulate; the
vertex order of both is chosen so a fan from the first vertex gives back exactly the triangles
they replace. A height field also tells exactly which points it covers, which the photo uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer3d_bench.synthetic.common import uniform
from fer3d_bench.synthetic.face import Face, Grid, photo

TARGET_VERTICES = 8000
TEXTURE_PX_PER_MM = 1.7


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


def texture_image(face: Face, mesh: GridMesh, offset: np.ndarray) -> np.ndarray:
    """The F3D.bmp texture; texel centres map to u = (c+.5)/W, v = 1 - (r+.5)/H."""
    width = mesh.step * (mesh.lower.shape[1])
    height = mesh.step * (mesh.lower.shape[0])
    tw, th = int(round(width * TEXTURE_PX_PER_MM)), int(round(height * TEXTURE_PX_PER_MM))
    xs_w = mesh.x0 + (np.arange(tw) + 0.5) / tw * width
    ys_w = mesh.y_top - height + (1.0 - (np.arange(th) + 0.5) / th) * height
    grid = Grid.for_photo(xs_w - offset[0], ys_w - offset[1])
    return photo(face, grid, face.render(grid), np.ones((th, tw), bool))
