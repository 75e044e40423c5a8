"""Orthographic depth renderers: pyrender (OpenGL rasteriser) and open3d (CPU ray caster).

Both answer the same question, so either can check the other: for each pixel centre, the mesh
z (mm) of the surface nearest the viewer whose orthographic projection covers it, NaN elsewhere.
A renderer is built once per worker process and reused for thousands of meshes.

Both draw in a shifted pixel frame: `OrthoCamera.to_pixel_frame` minus the image centre in x, y
and minus a viewpoint `z_top` just above the mesh in z. Coordinates near zero keep the float32
arithmetic of OpenGL and Embree precise: on the sample faces the backends agree to 5e-6 mm
(median), and both match analytic planes to 1e-5 mm.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from fer3d_bench.render.camera import OrthoCamera

# PyOpenGL picks its platform at first import: default to CPU offscreen rendering, but keep a
# choice the user made (e.g. `egl` on a GPU machine).
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")

BACKENDS = ("pyrender", "open3d")


@dataclass(frozen=True)
class _Frame:
    """A validated mesh in the shifted pixel frame; the viewer sits at the origin."""

    positions: np.ndarray  # (N, 3) float64: column - cx, -row - cy, z - z_top
    faces: np.ndarray  # (F, 3) int64
    used: np.ndarray  # (N,) bool: vertices some face refers to
    z_top: float  # mesh z of the viewer's plane
    z_span: float  # depth range of the mesh below the viewer
    margin: float  # gap between the viewer and the nearest vertex


def _validate(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape (N, 3), got {vertices.shape}")
    if faces.size == 0:
        raise ValueError("mesh has no faces")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {faces.shape}")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"faces must hold integer indices, got {faces.dtype}")
    if not np.isfinite(vertices).all():
        raise ValueError("vertices contain non-finite values")
    bad = (faces < 0) | (faces >= len(vertices))
    if bad.any():
        index = int(faces.flat[np.flatnonzero(bad)[0]])
        raise ValueError(f"face index {index} out of range for {len(vertices)} vertices")
    return vertices, faces.astype(np.int64, copy=False)


def _frame(
    vertices: np.ndarray, faces: np.ndarray, camera: OrthoCamera, width: int, height: int
) -> _Frame:
    """Validate and move the mesh to the frame both backends draw in."""
    vertices, faces = _validate(vertices, faces)
    used = np.zeros(len(vertices), bool)
    used[faces.ravel()] = True  # stray unused vertices must not widen the depth range
    z_min, z_max = float(vertices[used, 2].min()), float(vertices[used, 2].max())
    span = z_max - z_min
    margin = max(1.0, 0.01 * span)  # mm; keeps every surface strictly inside the clip range
    z_top = z_max + 2 * margin
    shift = np.array([(width - 1) / 2, -(height - 1) / 2, z_top])
    positions = camera.to_pixel_frame(vertices) - shift
    return _Frame(positions, faces, used, z_top, span, margin)


def _facing_viewer(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Faces reordered counter-clockwise as seen from +z, so no back face can be culled."""
    corners = faces.T  # (3, F): gathers from the two coordinate columns, not from (N, 3) rows
    x, y = positions[:, 0][corners], positions[:, 1][corners]
    signed = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
    flip = signed < 0
    oriented = faces.copy()
    oriented[flip, 1], oriented[flip, 2] = faces[flip, 2], faces[flip, 1]
    return oriented


class DepthRenderer(ABC):
    """One image size, many meshes; use as a context manager or call `close()`."""

    name: str

    def __init__(self, width: int, height: int):
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)

    @abstractmethod
    def render(self, vertices: np.ndarray, faces: np.ndarray, camera: OrthoCamera) -> np.ndarray:
        """(H, W) float64: the mesh z (mm) of the surface nearest the viewer (largest z)
        whose orthographic projection covers each pixel centre; NaN where no surface."""

    def silhouette(self, vertices: np.ndarray, faces: np.ndarray, camera: OrthoCamera):
        """(H, W) bool: the pixels whose centre some face covers (where `render` is finite)."""
        return np.isfinite(self.render(vertices, faces, camera))

    def close(self) -> None:  # noqa: B027 - a no-op unless a backend holds resources
        """Free what the backend holds; the renderer is unusable afterwards."""

    def __enter__(self) -> DepthRenderer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PyrenderDepthRenderer(DepthRenderer):
    """OpenGL rasterisation through pyrender (OSMesa on CPU, EGL on GPU).

    OpenGL samples depth exactly at pixel centres (OSMesa; EGL multisamples at edges). Two
    pyrender quirks are handled here: DEPTH_ONLY culls back faces whatever the flags, so every
    triangle is turned to face the viewer; and its depth for an orthographic camera is wrongly
    linearised as if perspective. Where pyrender draws into the context's own buffer (OSMesa),
    the depth buffer is read here as OpenGL wrote it, a window depth linear in the distance for
    an orthographic camera, which skips pyrender's conversion and ours back (1 ms of each 8 of
    a 512x512 render) and is exact to the buffer's precision; with an off-screen framebuffer
    (EGL) pyrender's depth is converted back.
    """

    name = "pyrender"

    def __init__(self, width: int, height: int, before_torch: bool = True):
        super().__init__(width, height)
        pyrender = _import_pyrender(before_torch)
        from OpenGL import GL  # loaded by pyrender already; the direct read calls it

        self._pyrender, self._gl = pyrender, GL
        self._renderer = pyrender.OffscreenRenderer(self.width, self.height)
        self._scene = pyrender.Scene()
        self._camera = pyrender.OrthographicCamera(xmag=self.width / 2, ymag=self.height / 2)
        self._scene.add(self._camera, pose=np.eye(4))  # at the origin, looking down -z
        flags = pyrender.RenderFlags
        self._flags = flags.DEPTH_ONLY | flags.SKIP_CULL_FACES  # culls anyway: see _facing_viewer
        self._own_buffer = not self._renderer._platform.supports_framebuffers()

    def render(self, vertices: np.ndarray, faces: np.ndarray, camera: OrthoCamera) -> np.ndarray:
        frame, window = self._draw(vertices, faces, camera)
        depth = window.astype(np.float64)  # mesh z = z_top - (near + window * (far - near))
        near, far = self._camera.znear, self._camera.zfar
        np.multiply(depth, -(far - near), out=depth)
        np.add(depth, frame.z_top - near, out=depth)
        depth[window == 1.0] = np.nan
        return depth

    def silhouette(self, vertices: np.ndarray, faces: np.ndarray, camera: OrthoCamera):
        return self._draw(vertices, faces, camera)[1] < 1.0  # no depth conversion needed

    def _draw(self, vertices, faces, camera) -> tuple[_Frame, np.ndarray]:
        """The mesh drawn through `camera`: its frame and the window depth, rows top down
        (0 at the near plane, 1 at the far plane and where no surface is)."""
        if self._renderer is None:
            raise RuntimeError("renderer is closed")
        frame = _frame(vertices, faces, camera, self.width, self.height)
        self._camera.znear, self._camera.zfar = frame.margin, frame.z_span + 3 * frame.margin
        node = self._scene.add(self._mesh(frame))
        try:
            if self._own_buffer:
                window = self._draw_and_read()
            else:
                window = _window_depth(
                    self._renderer.render(self._scene, flags=self._flags),
                    self._camera.znear,
                    self._camera.zfar,
                )
        finally:
            self._scene.remove_node(node)  # its GL buffers are freed on the next render
        return frame, window

    def _draw_and_read(self) -> np.ndarray:
        """What `OffscreenRenderer.render` does on a platform without framebuffers, without
        its conversion of the depth buffer (pyrender's `Renderer.read_depth_buf`)."""
        GL = self._gl
        platform, renderer = self._renderer._platform, self._renderer._renderer
        platform.make_current()
        try:
            renderer.viewport_width, renderer.viewport_height = self.width, self.height
            renderer.render(self._scene, self._flags)
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
            GL.glReadBuffer(GL.GL_FRONT)
            data = GL.glReadPixels(
                0, 0, self.width, self.height, GL.GL_DEPTH_COMPONENT, GL.GL_FLOAT
            )
        finally:
            platform.make_uncurrent()
        window = np.frombuffer(data, np.float32).reshape(self.height, self.width)
        return window[::-1]  # OpenGL's rows run bottom up

    def _mesh(self, frame: _Frame):
        """A bare primitive: going through trimesh would cost more than the render itself."""
        pyrender = self._pyrender
        primitive = pyrender.Primitive(
            positions=frame.positions.astype(np.float32),
            indices=_facing_viewer(frame.positions, frame.faces).astype(np.uint32),
            mode=pyrender.constants.GLTF.TRIANGLES,
        )
        return pyrender.Mesh([primitive])

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.delete()
            self._renderer = None


def _import_pyrender(before_torch: bool = True):
    """pyrender, loaded after triton when triton is installed and torch may come later.

    Mesa's OSMesa (llvmpipe, the system libLLVM) and triton (which torch brings, with its own
    LLVM) crash the process with a segmentation fault when triton is loaded second, e.g. by
    `import torchvision` after a render. Loaded first, triton and Mesa work side by side, so a
    process can render and train. A process that only renders (`before_torch=False`, such as a
    render-depth worker) skips that import.
    """
    if before_torch and importlib.util.find_spec("triton") is not None:
        importlib.import_module("triton")
    import pyrender

    return pyrender


def _window_depth(distance: np.ndarray, znear: float, zfar: float) -> np.ndarray:
    """Undo pyrender's perspective linearisation of an orthographic depth buffer: its distance
    D is n f / (f - w (f - n)) for window depth w, so w = (f - n f / D) / (f - n); D = 0 (no
    surface) gives 1."""
    window = distance.astype(np.float64)
    with np.errstate(divide="ignore"):
        np.divide(znear * zfar, window, out=window)
    np.subtract(zfar, window, out=window)
    np.divide(window, zfar - znear, out=window)
    window[distance == 0] = 1.0
    return window


class Open3dDepthRenderer(DepthRenderer):
    """Ray casting with open3d's Embree scene: one ray per pixel centre, straight down -z."""

    name = "open3d"

    def __init__(self, width: int, height: int):
        super().__init__(width, height)
        import open3d

        self._o3d = open3d
        self._rays = self._pixel_rays()

    def _pixel_rays(self):
        """(H, W, 6) rays from the viewer's plane (z = 0) through every pixel centre."""
        cols = np.arange(self.width) - (self.width - 1) / 2
        rows = -np.arange(self.height) + (self.height - 1) / 2
        rays = np.zeros((self.height, self.width, 6), np.float32)
        rays[..., 0] = cols[None, :]
        rays[..., 1] = rows[:, None]
        rays[..., 5] = -1.0
        return rays

    def render(self, vertices: np.ndarray, faces: np.ndarray, camera: OrthoCamera) -> np.ndarray:
        frame = _frame(vertices, faces, camera, self.width, self.height)
        depth = np.full((self.height, self.width), np.nan)
        window = self._window(frame.positions[frame.used])
        if window is None:
            return depth
        rows, cols = window
        scene = self._o3d.t.geometry.RaycastingScene()
        scene.add_triangles(
            self._o3d.core.Tensor(frame.positions.astype(np.float32)),
            self._o3d.core.Tensor(frame.faces.astype(np.uint32)),
        )
        rays = self._o3d.core.Tensor(np.ascontiguousarray(self._rays[rows, cols]))
        t_hit = scene.cast_rays(rays)["t_hit"].numpy()
        depth[rows, cols] = np.where(
            np.isfinite(t_hit), frame.z_top - t_hit.astype(np.float64), np.nan
        )
        return depth

    def _window(self, positions: np.ndarray) -> tuple[slice, slice] | None:
        """The pixel rectangle around the mesh's projection: rays outside it cannot hit."""
        cx, cy = (self.width - 1) / 2, (self.height - 1) / 2
        col_lo, col_hi = positions[:, 0].min() + cx, positions[:, 0].max() + cx
        row_lo, row_hi = cy - positions[:, 1].max(), cy - positions[:, 1].min()
        c0, c1 = max(int(np.floor(col_lo)), 0), min(int(np.ceil(col_hi)), self.width - 1)
        r0, r1 = max(int(np.floor(row_lo)), 0), min(int(np.ceil(row_hi)), self.height - 1)
        if c0 > c1 or r0 > r1:
            return None
        return slice(r0, r1 + 1), slice(c0, c1 + 1)


def load_backend(backend: str, before_torch: bool = True) -> None:
    """Import what `backend` renders with (a second or more), before the first render needs it."""
    if backend == "pyrender":
        _import_pyrender(before_torch)
    elif backend == "open3d":
        importlib.import_module("open3d")


def make_renderer(
    backend: str, width: int, height: int, before_torch: bool = True
) -> DepthRenderer:
    """The renderer named `backend` ("pyrender" or "open3d") for width x height images.

    `before_torch=False` promises that this process will never import torch (pyrender only).
    """
    if backend == "pyrender":
        return PyrenderDepthRenderer(width, height, before_torch)
    if backend == "open3d":
        return Open3dDepthRenderer(width, height)
    raise ValueError(f"unknown depth backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
