"""The BU-3DFE F2D photo: the textured mesh seen from the front, with the real photos' flaws.

The silhouette is exact per pixel (a pixel is face if its centre lies in a written polygon) and
coloured by the F3D.bmp texture seen there, so a right alignment matches it to the pixel. By
default the photo is as irregular as the real ones, so the checks meet their flaws: stray bright
pixels on all four borders (besides the yellow ones of the real photo inspected) and a face
further off centre. Exact mode keeps the yellow strays only and the face within 20 px of centre.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from fer3d_bench.synthetic.bu3dfe.mesh import GridMesh
from fer3d_bench.synthetic.common import uniform

PHOTO_SIZE = 512
PHOTO_MARGIN = 6  # px kept black around the projected mesh
EXACT_OFFSET_PX = 20.0  # face centre off the photo centre by up to this (uniform), exact mode
OFFSET_PX = 60.0  # the same, irregular mode; both clipped to keep PHOTO_MARGIN
YELLOW = (255, 255, 0)
STRAYS_PER_BORDER = (2, 12)  # bright stray pixels per photo border (uniform, inclusive)
STRAY_BRIGHT = 41  # a bright stray's brightest channel is at least this


def draw_camera(
    mesh: GridMesh, rng: np.random.Generator, spread: float
) -> tuple[float, float, float]:
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
