"""Both depth renderers against analytic surfaces, each other, and the sample F2D photos.

Images are deliberately not square (W=40, H=32), so a swapped width and height shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fer3d_bench.formats import read_rgb, read_vrml
from fer3d_bench.render.backends import (
    BACKENDS,
    DepthRenderer,
    Open3dDepthRenderer,
    PyrenderDepthRenderer,
    make_renderer,
)
from fer3d_bench.render.camera import OrthoCamera
from fer3d_bench.synthetic import SampleConfig

W, H = 40, 32
TOL_MM = 1e-4


@pytest.fixture(scope="module", params=BACKENDS)
def renderer(request) -> Iterator[DepthRenderer]:
    with make_renderer(request.param, W, H) as r:
        yield r


# ---------------------------------------------------------------------------------------------
# Analytic helpers


def pixel_centres_in_mesh(camera: OrthoCamera, width: int, height: int):
    """Mesh (x, y) of every pixel centre, each (H, W): the inverse of `OrthoCamera.project`."""
    cols, rows = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    u, v = (cols - camera.tx) / camera.scale, -(rows - camera.ty) / camera.scale
    c, s = np.cos(camera.rotation), np.sin(camera.rotation)
    return c * u + s * v, -s * u + c * v


def inside_convex(polygon: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Signed distance (mm) inside a counter-clockwise convex polygon; > 0 strictly inside."""
    dist = np.full(x.shape, np.inf)
    for p, q in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        edge = q - p
        cross = edge[0] * (y - p[1]) - edge[1] * (x - p[0])
        dist = np.minimum(dist, cross / np.hypot(*edge))
    return dist


def plane_z(x, y):
    return 0.8 * x - 0.55 * y + 30.0


# Counter-clockwise; every pixel centre is > 0.01 px from its edges under all CAMERAS, since
# OpenGL snaps vertices to a sub-pixel grid (centres 0.001 px from an edge can flip in pyrender).
QUAD = np.array([[-6.4, -4.1], [7.4, -5.6], [7.9, 5.9], [-5.9, 6.5]])
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def quad_mesh() -> np.ndarray:
    return np.column_stack([QUAD, plane_z(QUAD[:, 0], QUAD[:, 1])])


CAMERAS = [
    OrthoCamera(scale=1.7, tx=19.3, ty=15.6),
    OrthoCamera(scale=1.3, tx=21.2, ty=14.1, rotation=np.radians(23.0)),
    OrthoCamera(scale=2.1, tx=18.4, ty=16.7, rotation=np.radians(-11.0)),
]


# ---------------------------------------------------------------------------------------------
# 1-2: exact depth and coverage


@pytest.mark.parametrize("camera", CAMERAS, ids=["plain", "rot+23", "rot-11"])
@pytest.mark.parametrize("winding", ["ccw", "cw"])
def test_tilted_quad_exact_depth_and_coverage(renderer, camera, winding):
    faces = QUAD_FACES if winding == "ccw" else QUAD_FACES[:, ::-1].copy()
    x, y = pixel_centres_in_mesh(camera, W, H)
    dist = inside_convex(QUAD, x, y)
    assert np.abs(dist).min() * camera.scale > 0.01  # no pixel centre on an edge
    expected = np.where(dist > 0, plane_z(x, y), np.nan)

    depth = renderer.render(quad_mesh(), faces, camera)

    assert depth.shape == (H, W) and depth.dtype == np.float64
    np.testing.assert_array_equal(np.isfinite(depth), dist > 0)
    assert 100 < (dist > 0).sum() < W * H  # the quad is inside the image, not filling it
    np.testing.assert_allclose(depth, expected, rtol=0, atol=TOL_MM, equal_nan=True)


def test_orthographic_depth_at_several_heights(renderer):
    """Flat squares far apart in z: pyrender's raw (perspective-linearised) depth is off by
    millimetres here, so only a correct orthographic conversion passes."""
    camera = OrthoCamera(scale=1.0, tx=0.0, ty=0.0)
    heights = [-180.0, -41.25, 0.0, 7.5, 96.0]
    vertices, faces = [], []
    for k, z in enumerate(heights):
        x0 = 1.6 + 8 * k  # side by side, each covering columns 8k+2..8k+7 and rows 2..7
        square = [[x0, -1.6], [x0 + 5.8, -1.6], [x0 + 5.8, -7.4], [x0, -7.4]]
        vertices += [[px, py, z] for px, py in square]
        faces += [[4 * k, 4 * k + 1, 4 * k + 2], [4 * k, 4 * k + 2, 4 * k + 3]]

    depth = renderer.render(np.array(vertices), np.array(faces), camera)

    for k, z in enumerate(heights):
        block = depth[2:8, 8 * k + 2 : 8 * k + 8]
        np.testing.assert_allclose(block, z, rtol=0, atol=TOL_MM)
    assert np.isfinite(depth).sum() == 36 * len(heights)


@pytest.mark.parametrize("z", [-250.0, 0.0, 3.3, 1200.0])
def test_single_plane_at_known_height(renderer, z):
    camera = OrthoCamera(scale=1.0, tx=0.0, ty=0.0)
    square = np.array([[2.5, -2.5, z], [30.5, -2.5, z], [30.5, -20.5, z], [2.5, -20.5, z]])
    depth = renderer.render(square, QUAD_FACES, camera)
    assert np.isfinite(depth).sum() == 28 * 18
    np.testing.assert_allclose(depth[3:21, 3:31], z, rtol=0, atol=TOL_MM)


# ---------------------------------------------------------------------------------------------
# 3: nearest surface


@pytest.mark.parametrize("order", ["near_first", "far_first"])
def test_nearest_surface_wins(renderer, order):
    camera = OrthoCamera(scale=1.0, tx=0.0, ty=0.0)
    big = np.array([[1.5, -1.5], [30.0, -1.5], [1.5, -30.0]])  # col + row < 31.5
    small = np.array([[4.5, -4.5], [20.0, -4.5], [4.5, -20.0]])  # inside the big one

    def tilted(tri, offset):
        return np.column_stack([tri, 0.1 * tri[:, 0] + 0.05 * tri[:, 1] + offset])

    near, far = tilted(small, 10.0), tilted(big, 4.0)
    vertices = np.vstack([near, far] if order == "near_first" else [far, near])
    faces = np.array([[0, 1, 2], [3, 4, 5]])

    depth = renderer.render(vertices, faces, camera)

    cols, rows = np.meshgrid(np.arange(W), np.arange(H))
    in_small = (cols > 4.5) & (rows > 4.5) & (cols + rows < 24.5)
    in_big = (cols > 1.5) & (rows > 1.5) & (cols + rows < 31.5)
    expected_small = 0.1 * cols - 0.05 * rows + 10.0
    expected_big = 0.1 * cols - 0.05 * rows + 4.0
    np.testing.assert_array_equal(np.isfinite(depth), in_big)
    np.testing.assert_allclose(depth[in_small], expected_small[in_small], rtol=0, atol=TOL_MM)
    rest = in_big & ~in_small
    np.testing.assert_allclose(depth[rest], expected_big[rest], rtol=0, atol=TOL_MM)


# ---------------------------------------------------------------------------------------------
# 4: camera parameters


def disk(centre, radius, n=64) -> tuple[np.ndarray, np.ndarray]:
    """A fan-triangulated regular polygon in the z = 5 plane."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rim = np.column_stack(
        [centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles), np.full(n, 5.0)]
    )
    vertices = np.vstack([[centre[0], centre[1], 5.0], rim])
    faces = np.array([[0, 1 + k, 1 + (k + 1) % n] for k in range(n)])
    return vertices, faces


@pytest.mark.parametrize(
    "camera",
    [
        OrthoCamera(scale=1.0, tx=15.0, ty=20.0),
        OrthoCamera(scale=2.2, tx=4.0, ty=22.0),
        OrthoCamera(scale=1.5, tx=24.0, ty=24.0, rotation=np.radians(40.0)),
        OrthoCamera(scale=0.8, tx=25.3, ty=20.0, rotation=np.radians(-75.0)),
    ],
)
def test_camera_moves_silhouette_as_projected(renderer, camera):
    centre, radius = np.array([6.37, 3.21]), 5.0  # no pixel centre on a rim vertex
    vertices, faces = disk(centre, radius)
    mask = np.isfinite(renderer.render(vertices, faces, camera))
    assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    np.testing.assert_array_equal(renderer.silhouette(vertices, faces, camera), mask)

    rows, cols = np.nonzero(mask)
    expected_col, expected_row = camera.project(centre[None])[0]
    assert abs(cols.mean() - expected_col) < 0.5
    assert abs(rows.mean() - expected_row) < 0.5
    expected_area = np.pi * (radius * camera.scale) ** 2
    assert mask.sum() == pytest.approx(expected_area, rel=0.1)


def test_mesh_outside_image_gives_all_nan(renderer):
    vertices, faces = disk([0.0, 0.0], 3.0)
    depth = renderer.render(vertices, faces, OrthoCamera(scale=1.0, tx=-50.0, ty=10.0))
    assert depth.shape == (H, W) and np.isnan(depth).all()


# ---------------------------------------------------------------------------------------------
# 5: realistic faces, both backends and the F2D photos


@pytest.fixture(scope="module")
def bu_scans(worlds) -> list[tuple[Path, OrthoCamera]]:
    config = SampleConfig(
        bu3dfe_subjects=1, bosphorus_subjects=0, cald3r_subjects=0, mend3s_subjects=0
    )
    out = worlds.sample(config)
    truth = json.loads((out / "ground_truth.json").read_text())["bu3dfe"]
    picked = sorted(truth)[::10][:3]  # three different expressions
    return [
        (
            out / "bu3dfe" / key,
            OrthoCamera(truth[key]["f2d_scale"], truth[key]["f2d_tx"], truth[key]["f2d_ty"]),
        )
        for key in picked
    ]


@pytest.fixture(scope="module")
def face_renderers() -> Iterator[dict[str, DepthRenderer]]:
    renderers = {name: make_renderer(name, 512, 512) for name in BACKENDS}
    yield renderers
    for r in renderers.values():
        r.close()


def photo_foreground(wrl: Path) -> np.ndarray:
    photo = read_rgb(wrl.with_name(wrl.name.replace("_F3D.wrl", "_F2D.bmp")))
    return (photo > 0).any(axis=2)


def test_backends_agree_on_faces_and_match_photo(bu_scans, face_renderers):
    assert len(bu_scans) == 3
    for wrl, camera in bu_scans:
        mesh = read_vrml(wrl)
        depth = {
            name: r.render(mesh.vertices, mesh.faces, camera) for name, r in face_renderers.items()
        }
        a, b = depth["pyrender"], depth["open3d"]
        mask_a, mask_b = np.isfinite(a), np.isfinite(b)
        assert mask_a.sum() > 50_000
        assert (mask_a ^ mask_b).sum() < 1e-3 * mask_a.sum()
        both = mask_a & mask_b
        assert np.median(np.abs(a[both] - b[both])) < 0.1
        z = mesh.vertices[:, 2]
        assert z.min() - 1e-3 <= a[mask_a].min() and a[mask_a].max() <= z.max() + 1e-3

        keep = np.ones((512, 512), bool)
        keep[:, 0] = keep[511, :] = False  # the photos' stray yellow pixels
        foreground = photo_foreground(wrl) & keep
        for mask in (mask_a, mask_b):
            iou = (mask & foreground & keep).sum() / ((mask | foreground) & keep).sum()
            assert iou >= 0.99, f"{wrl.name}: IoU {iou:.4f}"


def test_pyrender_buffer_read_directly_matches_pyrenders_own_path(bu_scans):
    """On OSMesa the depth buffer is read as OpenGL wrote it; pyrender's public path (what an
    EGL framebuffer goes through) linearises it as if perspective and is converted back. Both
    must give the same pixels and the same depth to the buffer's precision: this fails if a
    pyrender release changes the internals the direct read calls."""
    wrl, camera = bu_scans[0]
    mesh = read_vrml(wrl)
    with PyrenderDepthRenderer(512, 512) as renderer:
        assert renderer._own_buffer  # OSMesa here: the direct read is the one in use
        direct = renderer.render(mesh.vertices, mesh.faces, camera)
        silhouette = renderer.silhouette(mesh.vertices, mesh.faces, camera)
        renderer._own_buffer = False
        public = renderer.render(mesh.vertices, mesh.faces, camera)
    np.testing.assert_array_equal(np.isfinite(direct), np.isfinite(public))
    np.testing.assert_array_equal(silhouette, np.isfinite(direct))
    assert np.isfinite(direct).sum() > 50_000
    span = np.nanmax(direct) - np.nanmin(direct)  # float32 steps of pyrender's conversion
    np.testing.assert_allclose(direct, public, rtol=0, atol=1e-6 * span, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# 6-7: bad input, reuse, factory


@pytest.mark.parametrize(
    ("vertices", "faces", "message"),
    [
        (np.zeros((3, 3)), np.zeros((0, 3), np.int64), "mesh has no faces"),
        (
            np.array([[0.0, 0.0, 0.0], [1.0, np.nan, 0.0], [0.0, 1.0, 0.0]]),
            np.array([[0, 1, 2]]),
            "vertices contain non-finite values",
        ),
        (np.ones((10, 3)), np.array([[0, 1, 2], [3, 12, 4]]), "face index 12 out of range for 10"),
        (np.ones((10, 3)), np.array([[0, -1, 2]]), "face index -1 out of range for 10"),
        (np.ones((10, 2)), np.array([[0, 1, 2]]), "vertices must have shape"),
    ],
)
def test_bad_input_raises_value_error(renderer, vertices, faces, message):
    with pytest.raises(ValueError, match=message):
        renderer.render(vertices, faces, OrthoCamera(1.0, 0.0, 0.0))


def test_renderer_reusable_across_mesh_sizes(renderer):
    camera = OrthoCamera(scale=1.0, tx=20.0, ty=16.0)
    small = (quad_mesh(), QUAD_FACES)
    fine = disk([1.0, -2.0], 9.0, n=300)
    stacked = (np.vstack([fine[0], quad_mesh()]), np.vstack([fine[1], QUAD_FACES + 301]))
    meshes = [fine, small, stacked]

    reused = [renderer.render(v, f, camera) for v, f in meshes]
    for (v, f), result in zip(meshes, reused, strict=True):
        with make_renderer(renderer.name, W, H) as fresh:
            np.testing.assert_array_equal(result, fresh.render(v, f, camera))


def test_make_renderer_names_backends():
    with pytest.raises(ValueError, match="vulkan.*pyrender, open3d"):
        make_renderer("vulkan", W, H)
    with make_renderer("pyrender", 8, 6) as r:
        assert isinstance(r, PyrenderDepthRenderer) and r.name == "pyrender"
    with make_renderer("open3d", 8, 6) as r:
        assert isinstance(r, Open3dDepthRenderer) and r.name == "open3d"
