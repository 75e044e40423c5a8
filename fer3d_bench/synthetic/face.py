"""The procedural face: a height field z = f(x, y) in millimetres with a matching albedo.

Face frame: +x to the viewer's right, +y up, the face looks toward +z and the nose tip has the
largest z; the nose tip sits near (0, 0). Every quantity is evaluated on an axis-aligned
regular `Grid` (a vector of x and a vector of y), so each feature only touches its own window,
and a frontal orthographic photo is exact per pixel: no rasteriser is needed.

Expressions move the features themselves (brows, lids, lips, cheeks, creases); the height and
the albedo are computed from the same moved features, so every class shows in RGB and in depth.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from fer3d_bench.synthetic.common import uniform

CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")

RGB = tuple[float, float, float]
SKIN_FLOOR = 16  # darkest channel value of a face pixel: a face pixel is never pure black
OUTLINE_POWER = 2.4  # superellipse exponent of the face outline (2 = ellipse)


# ---------------------------------------------------------------------------------------------
# Identity and expression


@dataclass(frozen=True)
class Identity:
    """What stays fixed for one subject (lengths in mm, colours as albedo in [0, 1])."""

    half_width: float
    half_height: float
    centre_y: float
    jaw: float
    head_depth: float
    nose_length: float
    nose_height: float
    nose_width: float
    eye_dx: float
    eye_y: float
    eye_half_width: float
    eye_half_height: float
    brow_gap: float
    brow_thickness: float
    brow_arch: float
    mouth_y: float
    mouth_half_width: float
    upper_lip: float
    lower_lip: float
    chin: float
    cheek: float
    hairline: float
    hair_phase: float
    skin: RGB
    lip: RGB
    brow: RGB
    iris: RGB
    hair: RGB
    skin_waves: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class Expression:
    """Feature displacements at a given intensity (mm unless noted); all zero is neutral."""

    smile: float = 0.0  # mouth corners up (+) or down (-)
    stretch: float = 0.0  # each mouth corner outward
    mouth_open: float = 0.0  # gap between the lips at the middle
    lip_press: float = 0.0  # fraction of lip thickness lost, 0..1
    upper_lip_raise: float = 0.0
    brow_inner: float = 0.0  # raise of the inner brow ends
    brow_outer: float = 0.0  # raise of the outer brow ends
    brow_squeeze: float = 0.0  # inner brow ends toward the midline
    eye_open: float = 0.0  # relative change of the eye opening
    cheek_raise: float = 0.0
    nose_wrinkle: float = 0.0  # 0..1
    forehead_wrinkle: float = 0.0  # 0..1
    frown_lines: float = 0.0  # 0..1, vertical furrows between the brows
    chin_raise: float = 0.0


FULL_EXPRESSIONS: dict[str, Expression] = {
    "anger": Expression(
        brow_inner=-6.0,
        brow_outer=-1.5,
        brow_squeeze=4.5,
        eye_open=-0.3,
        lip_press=0.7,
        stretch=-2.5,
        smile=-1.0,
        frown_lines=1.0,
        chin_raise=1.5,
    ),
    "disgust": Expression(
        nose_wrinkle=1.0,
        upper_lip_raise=5.0,
        brow_inner=-3.0,
        brow_squeeze=2.0,
        eye_open=-0.35,
        cheek_raise=3.0,
        smile=-2.5,
        stretch=1.0,
        frown_lines=0.3,
    ),
    "fear": Expression(
        brow_inner=7.0,
        brow_outer=2.5,
        brow_squeeze=3.5,
        eye_open=0.45,
        mouth_open=7.0,
        stretch=6.0,
        smile=-1.5,
        forehead_wrinkle=0.6,
    ),
    "happiness": Expression(
        smile=8.0, stretch=7.0, cheek_raise=6.0, eye_open=-0.25, mouth_open=3.5
    ),
    "neutral": Expression(),
    "sadness": Expression(
        smile=-5.0,
        stretch=-1.5,
        brow_inner=6.0,
        brow_outer=-2.0,
        brow_squeeze=2.5,
        eye_open=-0.2,
        chin_raise=4.0,
        lip_press=0.2,
    ),
    "surprise": Expression(
        brow_inner=10.0,
        brow_outer=9.0,
        eye_open=0.5,
        mouth_open=20.0,
        stretch=-4.0,
        forehead_wrinkle=1.0,
    ),
}


def expression(cls: str, strength: float) -> Expression:
    """The class's full expression scaled linearly by `strength` in [0, 1]."""
    full = FULL_EXPRESSIONS[cls]
    return Expression(**{f.name: getattr(full, f.name) * strength for f in fields(Expression)})


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(float(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def skin_colour(tone: float) -> RGB:
    """Skin albedo from light (tone 0) through medium to dark (tone 1)."""
    light, medium, dark = (0.93, 0.78, 0.68), (0.78, 0.56, 0.41), (0.38, 0.25, 0.17)
    return _mix(light, medium, tone / 0.5) if tone < 0.5 else _mix(medium, dark, (tone - 0.5) / 0.5)


def sample_identity(rng: np.random.Generator, tone: float) -> Identity:
    """A random subject; `tone` in [0, 1] picks the skin from light to dark."""
    u = lambda lo, hi: uniform(rng, lo, hi)  # noqa: E731
    skin = skin_colour(tone)
    hair_dark = (0.07, 0.06, 0.05)
    hair_tint = [(0.33, 0.21, 0.12), (0.62, 0.48, 0.28), (0.45, 0.18, 0.08), (0.2, 0.14, 0.1)]
    hair = _mix(hair_dark, hair_tint[int(rng.integers(len(hair_tint)))], u(0.0, 1.0 - tone * 0.9))
    irises = [(0.30, 0.19, 0.11), (0.17, 0.11, 0.08), (0.32, 0.42, 0.52), (0.35, 0.38, 0.22)]
    waves = tuple(
        (u(-0.09, 0.09), u(-0.09, 0.09), u(0.0, 2 * np.pi), u(0.01, 0.035)) for _ in range(3)
    )
    return Identity(
        half_width=u(69.0, 75.0),
        half_height=u(88.0, 93.5),
        centre_y=u(6.0, 10.0),
        jaw=u(0.12, 0.38),
        head_depth=u(80.0, 88.0),
        nose_length=u(24.0, 31.0),
        nose_height=u(20.0, 27.0),
        nose_width=u(14.0, 19.0),
        eye_dx=u(29.0, 33.0),
        eye_y=u(29.0, 35.0),
        eye_half_width=u(12.5, 14.5),
        eye_half_height=u(3.8, 5.0),
        brow_gap=u(11.5, 15.0),
        brow_thickness=u(3.5, 6.5),
        brow_arch=u(1.5, 4.5),
        mouth_y=u(-36.0, -28.0),
        mouth_half_width=u(21.0, 26.0),
        upper_lip=u(4.0, 6.5),
        lower_lip=u(5.0, 8.5),
        chin=u(4.0, 8.0),
        cheek=u(3.0, 6.5),
        hairline=u(75.0, 110.0),
        hair_phase=u(0.0, 2 * np.pi),
        skin=skin,
        lip=_mix(skin, (0.62, 0.22, 0.25), u(0.35, 0.6)),
        brow=_mix(hair, (0.05, 0.04, 0.04), u(0.3, 0.7)),
        iris=irises[int(rng.integers(len(irises)))],
        hair=hair,
        skin_waves=waves,
    )


def jitter_identity(identity: Identity, rng: np.random.Generator) -> Identity:
    """Small per-scan changes (positions, sizes, skin brightness) so scans of a subject differ."""
    u = lambda lo, hi: uniform(rng, lo, hi)  # noqa: E731
    shift = ("centre_y", "eye_y", "mouth_y", "brow_gap", "hairline")
    scale = (
        "half_width",
        "half_height",
        "nose_length",
        "nose_height",
        "nose_width",
        "eye_dx",
        "eye_half_width",
        "eye_half_height",
        "brow_thickness",
        "mouth_half_width",
        "upper_lip",
        "lower_lip",
        "chin",
        "cheek",
    )
    changes: dict[str, object] = {n: getattr(identity, n) + u(-0.6, 0.6) for n in shift}
    changes.update({n: getattr(identity, n) * u(0.98, 1.02) for n in scale})
    bright = u(0.96, 1.04)
    changes["skin"] = tuple(min(c * bright, 1.0) for c in identity.skin)
    return replace(identity, **changes)


# ---------------------------------------------------------------------------------------------
# Grids and the evaluated surface


@dataclass(frozen=True, eq=False)
class Window:
    """A rectangular block of a grid, with its coordinates ready for broadcasting."""

    rows: slice
    cols: slice
    x: np.ndarray  # (1, w)
    y: np.ndarray  # (h, 1)


@dataclass(frozen=True, eq=False)
class Grid:
    """Sample positions in the face frame: row i, column j is the point (xs[j], ys[i])."""

    xs: np.ndarray
    ys: np.ndarray

    @classmethod
    def for_photo(cls, xs: np.ndarray, ys: np.ndarray) -> Grid:
        """A float32 grid: images need no more, and it renders about a third faster."""
        return cls(np.asarray(xs, np.float32), np.asarray(ys, np.float32))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ys.size, self.xs.size)

    def window(self, x0: float, x1: float, y0: float, y1: float) -> Window | None:
        cols = np.flatnonzero((self.xs >= x0) & (self.xs <= x1))
        rows = np.flatnonzero((self.ys >= y0) & (self.ys <= y1))
        if cols.size == 0 or rows.size == 0:
            return None
        c, r = slice(cols[0], cols[-1] + 1), slice(rows[0], rows[-1] + 1)
        return Window(r, c, self.xs[c][None, :], self.ys[r][:, None])


@dataclass(frozen=True, eq=False)
class Surface:
    """Height (mm), face-outline mask and albedo (H, W, 3) sampled on a grid."""

    z: np.ndarray
    mask: np.ndarray
    albedo: np.ndarray | None


@dataclass(eq=False)
class _Canvas:
    z: np.ndarray
    mask: np.ndarray
    albedo: np.ndarray | None

    def add(self, w: Window, dz: np.ndarray) -> None:
        self.z[w.rows, w.cols] += dz

    def paint(self, w: Window, colour: RGB, weight: np.ndarray) -> None:
        if self.albedo is None:
            return
        block = self.albedo[w.rows, w.cols]
        wgt = np.broadcast_to(weight, block.shape[:2])[..., None]
        block += (np.asarray(colour, block.dtype) - block) * wgt

    def darken(self, w: Window, amount: np.ndarray) -> None:
        if self.albedo is not None:
            self.albedo[w.rows, w.cols] *= _clip(1.0 - amount, 0.0, 1.0)[..., None]


def _clip(x, low: float, high: float):
    """np.clip without its Python-level overhead (it is called thousands of times per scan)."""
    out = np.maximum(x, low)
    return np.minimum(out, high, out=out) if isinstance(out, np.ndarray) else np.minimum(out, high)


def _soft(d: np.ndarray, width: float = 0.4) -> np.ndarray:
    """Inside-ness from a signed distance in mm (+ inside), with a linear edge `width` wide."""
    return _clip(d * (1.0 / width) + 0.5, 0.0, 1.0)


def _gauss(w: Window, cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-0.5 * ((w.x - cx) / sx) ** 2) * np.exp(-0.5 * ((w.y - cy) / sy) ** 2)


def _add_gauss(cv: _Canvas, grid: Grid, cx: float, cy: float, sx: float, sy: float, amp: float):
    w = grid.window(cx - 3.5 * sx, cx + 3.5 * sx, cy - 3.5 * sy, cy + 3.5 * sy)
    if w is not None:
        cv.add(w, amp * _gauss(w, cx, cy, sx, sy))


def _segment_distance(w: Window, p0: tuple[float, float], p1: tuple[float, float]) -> np.ndarray:
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    t = _clip(((w.x - x0) * dx + (w.y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    return np.hypot(w.x - (x0 + t * dx), w.y - (y0 + t * dy))


def _crease(cv: _Canvas, grid: Grid, p0, p1, depth: float, dark: float, width: float = 0.9):
    """A thin groove in z and a dark line in the albedo along a segment."""
    if depth <= 0 and dark <= 0:
        return
    m = 4 * width + 1
    w = grid.window(
        min(p0[0], p1[0]) - m, max(p0[0], p1[0]) + m, min(p0[1], p1[1]) - m, max(p0[1], p1[1]) + m
    )
    if w is None:
        return
    d = _segment_distance(w, p0, p1)
    cv.add(w, -depth * np.exp(-0.5 * (d / width) ** 2))
    cv.darken(w, dark * np.exp(-0.5 * (d / (0.7 * width)) ** 2))


# ---------------------------------------------------------------------------------------------
# The face


@dataclass(frozen=True)
class Face:
    """One scan's face: a subject, an expression and the light of the photo."""

    identity: Identity
    expr: Expression
    light: tuple[float, float, float] = (0.25, 0.35, 1.0)
    ambient: float = 0.42
    gaze: tuple[float, float] = (0.0, 0.0)

    # -- layout shared by geometry, texture and landmarks ------------------------------------

    @property
    def lower_half_height(self) -> float:
        """The jaw drops when the mouth opens, so the lower half of the outline lengthens."""
        return self.identity.half_height + 0.45 * self.expr.mouth_open

    @property
    def mouth_half(self) -> float:
        return self.identity.mouth_half_width + self.expr.stretch

    def half_sizes(self, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outline half-width and half-height at height dy above the outline centre."""
        idn = self.identity
        half_h = np.where(dy >= 0, idn.half_height, self.lower_half_height)
        below = _clip(-dy / self.lower_half_height, 0.0, 1.0)
        return idn.half_width * (1.0 - idn.jaw * below**2), half_h

    def outline_rho2(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Squared normalised radius of the superellipse outline: <= 1 inside the face."""
        dy = y - self.identity.centre_y
        half_w, half_h = self.half_sizes(dy)
        return (
            np.abs(x) ** OUTLINE_POWER / half_w**OUTLINE_POWER
            + np.abs(dy) ** OUTLINE_POWER / half_h**OUTLINE_POWER
        ) ** (2.0 / OUTLINE_POWER)

    def bounds(self) -> tuple[float, float, float, float]:
        """x0, x1, y0, y1 enclosing the outline."""
        idn = self.identity
        return (
            -idn.half_width,
            idn.half_width,
            idn.centre_y - self.lower_half_height,
            idn.centre_y + idn.half_height,
        )

    def lip_lines(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Mouth line and lip edges (y in mm) at x; `env` is 0 beyond the mouth corners."""
        idn, e = self.identity, self.expr
        t = x / self.mouth_half
        env = np.sqrt(_clip(1.0 - t**2, 0.0, 1.0))
        mid = idn.mouth_y + e.smile * np.minimum(t**2, 1.0)
        thick = 1.0 - e.lip_press
        bow = 0.5 * np.exp(-0.5 * (x / 2.5) ** 2)
        up_in = mid + (0.3 * e.mouth_open + 0.5 * e.upper_lip_raise) * env
        up_out = up_in + (idn.upper_lip * thick - bow) * env**0.6 + 0.6 * e.upper_lip_raise * env
        low_in = mid - 0.7 * e.mouth_open * env
        low_out = low_in - idn.lower_lip * thick * env**0.6
        return {
            "t": t,
            "env": env,
            "mid": mid,
            "up_in": up_in,
            "up_out": up_out,
            "low_in": low_in,
            "low_out": low_out,
        }

    def eye_lids(self, side: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Upper and lower lid y at x for the eye on `side` (-1 image left, +1 right)."""
        idn, e = self.identity, self.expr
        dx = x - side * idn.eye_dx
        sq = _clip(1.0 - (dx / idn.eye_half_width) ** 2, 0.0, 1.0) ** 0.75
        tilt = 0.06 * side * dx
        upper = idn.eye_half_height * (1.0 + e.eye_open)
        lower = max(
            0.8 * idn.eye_half_height * (1.0 + 0.5 * e.eye_open) - 0.12 * e.cheek_raise, 0.4
        )
        return idn.eye_y + tilt + upper * sq, idn.eye_y + tilt - lower * sq, sq

    def brow_ends(self, side: int) -> tuple[float, float, float, float]:
        """xi, yi (inner end) and xo, yo (outer end) of the brow on `side`."""
        idn, e = self.identity, self.expr
        xi = side * max(idn.eye_dx - 20.0 - e.brow_squeeze, 4.5)
        xo = side * (idn.eye_dx + 18.0)
        yi = idn.eye_y + idn.brow_gap + e.brow_inner
        yo = idn.eye_y + idn.brow_gap - 1.5 + e.brow_outer
        return xi, yi, xo, yo

    def brow_line(self, side: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Brow centre y, thickness and position p (0 inner end, 1 outer end) at x."""
        xi, yi, xo, yo = self.brow_ends(side)
        p = (x - xi) / (xo - xi)
        pc = _clip(p, 0.0, 1.0)
        yb = yi + (yo - yi) * pc + self.identity.brow_arch * 4.0 * pc * (1.0 - pc)
        return yb, self.identity.brow_thickness * (1.0 - 0.45 * pc), p

    def nose_points(self) -> dict[str, tuple[float, float]]:
        idn, wr = self.identity, self.expr.nose_wrinkle
        nw = idn.nose_width
        return {
            "saddle": (0.0, idn.nose_length),
            "ala_l": (-0.6 * nw, -3.5 + 2.0 * wr),
            "ala_r": (0.6 * nw, -3.5 + 2.0 * wr),
            "nostril_l": (-0.33 * nw, -6.5 + 1.5 * wr),
            "nostril_r": (0.33 * nw, -6.5 + 1.5 * wr),
        }

    # -- evaluation -------------------------------------------------------------------------

    def render(self, grid: Grid, albedo: bool = True) -> Surface:
        """Height, outline mask and (optionally) albedo of this face on `grid`."""
        h, w = grid.shape
        cv = _Canvas(
            np.zeros((h, w), grid.xs.dtype),
            np.zeros((h, w), bool),
            np.zeros((h, w, 3), grid.xs.dtype) if albedo else None,
        )
        self._base(grid, cv)
        self._nose(grid, cv)
        self._cheeks(grid, cv)
        self._mouth(grid, cv)
        for side in (-1, 1):
            self._eye(grid, cv, side)
            self._brow(grid, cv, side)
        self._wrinkles(grid, cv)
        return Surface(cv.z, cv.mask, cv.albedo)

    def _base(self, grid: Grid, cv: _Canvas) -> None:
        idn = self.identity
        x0, x1, y0, y1 = self.bounds()
        w = grid.window(x0 - 4, x1 + 4, y0 - 4, y1 + 4)
        if w is None:
            return
        p = OUTLINE_POWER
        dy = w.y - idn.centre_y
        half_w, half_h = (a.astype(dy.dtype) for a in self.half_sizes(dy))
        tx = np.abs(w.x) ** p * half_w ** (-p)  # (h, w)
        ty = np.abs(dy) ** p * half_h ** (-p)  # (h, 1)
        cv.mask[w.rows, w.cols] = tx + ty <= 1.0
        q = 1.0 - 1.02 ** (-p) * tx - 1.03 ** (-p) * ty
        cv.add(w, idn.head_depth * np.sqrt(np.maximum(q, 0.0)))
        if cv.albedo is None:
            return
        # sum of amp * cos(kx x + ky y + phase), separated into one small matrix product
        dtype = cv.albedo.dtype
        kx, ky, phase, amp = (
            np.array(v, dtype)[:, None] for v in zip(*idn.skin_waves, strict=True)
        )
        a, b = kx * w.x.ravel(), ky * w.y.ravel() + phase
        left = np.concatenate([amp * np.cos(b), -amp * np.sin(b)]).T
        var = 1.0 + left @ np.concatenate([np.cos(a), np.sin(a)])
        cv.albedo[w.rows, w.cols] = var[..., None] * np.asarray(idn.skin, dtype)
        wh = grid.window(x0 - 4, x1 + 4, idn.hairline - 0.005 * x1**2 - 6, y1 + 4)
        if wh is not None:
            hair_y = idn.hairline - 0.005 * wh.x**2 + 2.5 * np.sin(wh.x / 9.0 + idn.hair_phase)
            cv.paint(wh, idn.hair, 0.95 * _soft(wh.y - hair_y, 2.0))

    def _nose(self, grid: Grid, cv: _Canvas) -> None:
        idn, e = self.identity, self.expr
        length, height = idn.nose_length, idn.nose_height
        w = grid.window(-42, 42, -25, length + 30)  # 4 sigma of the widest ridge
        if w is None:
            return
        t = _clip((length - w.y) / length, 0.0, 1.0)
        ridge = np.where(
            w.y > length,
            0.22 * height * np.exp(-(((w.y - length) / 9.0) ** 2)),
            np.where(
                w.y >= 0, height * (0.22 + 0.78 * t**1.6), height * np.exp(-((w.y / 5.0) ** 2))
            ),
        )
        sigma = 4.0 + 6.0 * t**1.2
        cv.add(w, ridge * np.exp(-0.5 * (w.x / sigma) ** 2))
        _add_gauss(cv, grid, 0.0, 1.5, 5.5, 5.0, 0.15 * height)
        pts = self.nose_points()
        for name in ("ala_l", "ala_r"):
            _add_gauss(cv, grid, *pts[name], 5.0, 4.0, 0.28 * height)
        if cv.albedo is None:
            return
        for name in ("nostril_l", "nostril_r"):
            nx, ny = pts[name]
            wn = grid.window(nx - 5, nx + 5, ny - 4, ny + 4)
            if wn is not None:
                r = np.hypot((wn.x - nx) / (2.8 + 0.4 * e.nose_wrinkle), (wn.y - ny) / 1.4)
                cv.darken(wn, 0.5 * _soft((1.0 - r) * 1.4, 0.6))

    def _cheeks(self, grid: Grid, cv: _Canvas) -> None:
        idn, e = self.identity, self.expr
        corner_y = idn.mouth_y + e.smile
        depth = 0.5 + 0.22 * max(e.smile, 0.0) + 0.2 * e.cheek_raise + 1.3 * e.nose_wrinkle
        for side in (-1, 1):
            cx = side * (idn.eye_dx + 3.0 + 0.3 * e.stretch)
            _add_gauss(
                cv,
                grid,
                cx,
                idn.mouth_y + 24.0 + e.cheek_raise,
                13.0,
                11.0,
                idn.cheek + 0.9 * e.cheek_raise,
            )
            top = (
                side * (0.75 * idn.nose_width + 3.0),
                -2.0 + 0.4 * e.cheek_raise + 1.5 * e.nose_wrinkle,
            )
            bottom = (side * (self.mouth_half + 2.5), corner_y - 3.0)
            _crease(cv, grid, top, bottom, depth, min(0.35, 0.1 * depth), width=1.8)

    def _mouth(self, grid: Grid, cv: _Canvas) -> None:
        idn, e = self.identity, self.expr
        half = self.mouth_half
        _add_gauss(cv, grid, 0.0, idn.mouth_y + 3.0, 24.0, 15.0, 6.0)
        for side in (-1, 1):  # tissue bunched beside the corners: above in a smile, below if down
            corner_y = idn.mouth_y + e.smile
            _add_gauss(
                cv, grid, side * (half + 2.0), corner_y + 2.0, 4.0, 4.0, 0.25 * max(e.smile, 0)
            )
            _add_gauss(
                cv, grid, side * (half + 3.0), corner_y - 4.0, 4.0, 5.0, 0.4 * max(-e.smile, 0)
            )
        _add_gauss(
            cv,
            grid,
            0.0,
            idn.mouth_y - 27.0 - 0.55 * e.mouth_open + 0.5 * e.chin_raise,
            13.0,
            9.0,
            idn.chin + 1.0 * e.chin_raise,
        )
        w = grid.window(
            -half - 3,
            half + 3,
            idn.mouth_y - 20 - e.mouth_open,
            idn.mouth_y + 20 + e.upper_lip_raise + max(e.smile, 0),
        )
        if w is None:
            return
        lines = self.lip_lines(w.x)
        env, inside_x = lines["env"], _soft(half - np.abs(w.x), 0.8)
        for lo, hi, amp in (("up_in", "up_out", 2.6), ("low_out", "low_in", 3.0)):
            centre = 0.5 * (lines[lo] + lines[hi])
            spread = 0.5 * np.abs(lines[hi] - lines[lo]) + 0.8
            bump = np.exp(-0.5 * ((w.y - centre) / spread) ** 2)
            cv.add(w, amp * (1.0 - 0.7 * e.lip_press) * np.sqrt(env) * bump)
        gap = np.minimum(lines["up_in"] - w.y, w.y - lines["low_in"])
        opening = _soft(gap, 0.35) * _soft(half - 1.0 - np.abs(w.x), 0.8)
        opening *= (lines["up_in"] - lines["low_in"]) > 0.3
        cv.add(
            w, -min(0.8 * e.mouth_open + 0.6 * e.upper_lip_raise, 16.0) * _soft(gap, 1.5) * inside_x
        )
        if cv.albedo is None:
            return
        lip = _soft(np.minimum(lines["up_out"] - w.y, w.y - lines["low_out"]), 0.5) * inside_x
        cv.paint(w, idn.lip, 0.9 * lip * (1.0 - opening))
        cv.darken(w, 0.45 * _soft(0.35 - np.abs(w.y - lines["mid"]), 0.3) * inside_x)
        cv.paint(w, (0.16, 0.05, 0.05), opening)
        teeth_h = _clip(0.35 * (lines["up_in"] - lines["low_in"]), 0.0, 4.0)
        teeth = _soft(np.minimum(gap, w.y - (lines["up_in"] - teeth_h)), 0.3)
        cv.paint(w, (0.86, 0.84, 0.78), opening * teeth * _soft(0.7 * half - np.abs(w.x), 2.0))

    def _eye(self, grid: Grid, cv: _Canvas, side: int) -> None:
        idn = self.identity
        ex, ey = side * idn.eye_dx, idn.eye_y
        _add_gauss(cv, grid, ex, ey + 1.5, 13.0, 8.5, -8.0)
        _add_gauss(cv, grid, ex, ey, 8.0, 5.5, 3.2)
        w = grid.window(ex - idn.eye_half_width - 3, ex + idn.eye_half_width + 3, ey - 12, ey + 16)
        if w is None:
            return
        upper, lower, sq = self.eye_lids(side, w.x)
        cv.add(w, 1.2 * sq * np.exp(-0.5 * ((w.y - upper - 3.0) / 1.8) ** 2))
        if cv.albedo is None:
            return
        inside_x = _soft(idn.eye_half_width - np.abs(w.x - ex), 0.5)
        opening = _soft(np.minimum(upper - w.y, w.y - lower), 0.3) * inside_x
        cv.paint(w, (0.88, 0.85, 0.82), opening)
        r = np.hypot(w.x - ex - self.gaze[0], w.y - ey - 0.1 * idn.eye_half_height - self.gaze[1])
        cv.paint(w, idn.iris, opening * _soft(5.0 - r, 0.4))
        cv.paint(w, (0.06, 0.05, 0.05), opening * _soft(1.8 - r, 0.3))
        lash = _soft(0.45 - np.abs(w.y - upper - 0.45), 0.3) * inside_x
        cv.paint(w, (0.1, 0.08, 0.07), 0.85 * lash)
        cv.darken(w, 0.25 * _soft(0.3 - np.abs(w.y - lower + 0.3), 0.3) * inside_x)

    def _brow(self, grid: Grid, cv: _Canvas, side: int) -> None:
        idn = self.identity
        xi, yi, xo, yo = self.brow_ends(side)
        _add_gauss(cv, grid, side * idn.eye_dx, idn.eye_y + idn.brow_gap - 1.0, 16.0, 5.0, 1.8)
        w = grid.window(min(xi, xo) - 10, max(xi, xo) + 10, min(yi, yo) - 12, max(yi, yo) + 14)
        if w is None:
            return
        yb, thick, p = self.brow_line(side, w.x)
        length = abs(xo - xi)
        along = _soft(p * length + 1.0, 2.0) * _soft((1.0 - p) * length, 3.0)
        cv.add(
            w,
            3.0
            * np.exp(-0.5 * ((w.y - yb + 0.5) / 3.5) ** 2)
            * _soft(p * length + 4.0, 6.0)
            * _soft((1.0 - p) * length + 4.0, 6.0),
        )
        cv.paint(w, idn.brow, 0.9 * _soft(thick / 2 - np.abs(w.y - yb), 0.8) * along)

    def _wrinkles(self, grid: Grid, cv: _Canvas) -> None:
        idn, e = self.identity, self.expr
        if e.forehead_wrinkle > 0:
            lift = 0.3 * (e.brow_inner + e.brow_outer)
            w = grid.window(-45, 45, idn.eye_y + idn.brow_gap, idn.eye_y + idn.brow_gap + 45 + lift)
            if w is not None:
                env = _soft(38.0 - np.abs(w.x), 8.0)
                for k in range(3):
                    y_line = (
                        idn.eye_y
                        + idn.brow_gap
                        + 11.0
                        + 7.5 * k
                        + lift
                        + 0.004 * w.x**2
                        + 0.6 * np.sin(w.x / 7.0 + k)
                    )
                    d = w.y - y_line
                    cv.add(w, -0.9 * e.forehead_wrinkle * env * np.exp(-0.5 * (d / 1.0) ** 2))
                    cv.darken(w, 0.2 * e.forehead_wrinkle * env * np.exp(-0.5 * (d / 0.6) ** 2))
        if e.frown_lines > 0:
            for side in (-1, 1):
                top = (side * (4.0 + 0.12 * (idn.brow_gap + 8.0)), idn.eye_y + idn.brow_gap + 8.0)
                _crease(
                    cv,
                    grid,
                    (side * 4.0, idn.eye_y + 2.0),
                    top,
                    2.0 * e.frown_lines,
                    0.3 * e.frown_lines,
                )
            # the nasal root bunches up between lowered brows
            _add_gauss(cv, grid, 0.0, idn.eye_y + 4.0, 7.0, 3.0, 1.5 * e.frown_lines)
        if e.nose_wrinkle > 0:
            length, nw = idn.nose_length, e.nose_wrinkle
            for k in range(3):
                y_k = length - 4.0 - 4.0 * k
                for side in (-1, 1):
                    _crease(cv, grid, (0.0, y_k), (side * 8.0, y_k + 1.2), 1.5 * nw, 0.3 * nw, 0.8)
            for k in range(2):
                for side in (-1, 1):
                    _crease(
                        cv,
                        grid,
                        (side * 6.5, length - 12.0 - 4.0 * k),
                        (side * 14.0, length - 5.0 - 4.0 * k),
                        1.5 * nw,
                        0.3 * nw,
                        0.8,
                    )


# ---------------------------------------------------------------------------------------------
# Photos


def shade(face: Face, grid: Grid, z: np.ndarray) -> np.ndarray:
    """Lambertian shading of the height field, so RGB carries shape cues too."""
    dy = float(grid.ys[1] - grid.ys[0]) if grid.ys.size > 1 else 1.0
    dx = float(grid.xs[1] - grid.xs[0]) if grid.xs.size > 1 else 1.0
    zy, zx = np.gradient(z, dy, dx)
    lx, ly, lz = face.light
    norm = np.sqrt(lx * lx + ly * ly + lz * lz)
    ndl = (-zx * lx - zy * ly + lz) / (norm * np.sqrt(1.0 + zx * zx + zy * zy))
    return face.ambient + (1.0 - face.ambient) * _clip(ndl, 0.0, 1.0)


def face_crop(face: Face, grid: Grid, margin: float = 4.0) -> tuple[slice, slice]:
    """Rows and columns of `grid` that can hold the face, so renders skip the background."""
    x0, x1, y0, y1 = face.bounds()
    w = grid.window(x0 - margin, x1 + margin, y0 - margin, y1 + margin)
    if w is None:
        return slice(0, 0), slice(0, 0)
    return w.rows, w.cols


def sub_grid(grid: Grid, rows: slice, cols: slice) -> Grid:
    return Grid(grid.xs[cols], grid.ys[rows])


def photo(face: Face, grid: Grid, surface: Surface, coverage: np.ndarray) -> np.ndarray:
    """An 8-bit RGB image: shaded albedo where `coverage`, black elsewhere."""
    if surface.albedo is None:
        raise ValueError("photo needs a surface rendered with albedo")
    rgb = surface.albedo * (255.0 * shade(face, grid, surface.z))[..., None]
    rgb += 0.5
    out = _clip(rgb, SKIN_FLOOR, 255).astype(np.uint8)
    out[~coverage] = 0
    return out


def landmarks(face: Face) -> dict[str, tuple[float, float]]:
    """Named feature points (face frame, mm) from the same layout as the geometry."""
    idn, e = face.identity, face.expr
    pts: dict[str, tuple[float, float]] = {}
    for side, tag in ((-1, "l"), (1, "r")):
        ex, ew = side * idn.eye_dx, idn.eye_half_width
        for k, f in enumerate((-1.0, -0.5, 0.0, 0.5, 1.0)):
            x = np.array(ex + f * ew * 0.97)
            upper, lower, _ = face.eye_lids(side, x)
            pts[f"eye_{tag}_up{k}"] = (float(x), float(upper))
            pts[f"eye_{tag}_low{k}"] = (float(x), float(lower))
        pts[f"eye_{tag}_inner"] = pts[f"eye_{tag}_up{4 if side < 0 else 0}"]
        pts[f"eye_{tag}_outer"] = pts[f"eye_{tag}_up{0 if side < 0 else 4}"]
        xi, _, xo, _ = face.brow_ends(side)
        for k, f in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
            x = np.array(xi + f * (xo - xi))
            yb, thick, _ = face.brow_line(side, x)
            pts[f"brow_{tag}_up{k}"] = (float(x), float(yb + thick / 2))
            pts[f"brow_{tag}_low{k}"] = (float(x), float(yb - thick / 2))
            pts[f"brow_{tag}_mid{k}"] = (float(x), float(yb))
    nose = face.nose_points()
    pts.update({f"nose_{k}": v for k, v in nose.items()})
    nw = idn.nose_width
    pts["nose_tip"] = (0.0, 0.0)
    pts["nose_bridge"] = (0.0, 0.5 * idn.nose_length)
    pts["nose_saddle_l"] = (-9.0, idn.eye_y - 3.0)
    pts["nose_saddle_r"] = (9.0, idn.eye_y - 3.0)
    pts["nose_alatop_l"] = (-0.5 * nw, 2.0 + 2.0 * e.nose_wrinkle)
    pts["nose_alatop_r"] = (0.5 * nw, 2.0 + 2.0 * e.nose_wrinkle)
    pts["nose_subnasale"] = (0.0, -8.0)
    for k, t in enumerate((-1.0, -0.66, -0.33, 0.0, 0.33, 0.66, 1.0)):
        x = np.array(t * face.mouth_half * 0.98)
        ln = face.lip_lines(x)
        for part in ("up_out", "up_in", "low_in", "low_out"):
            pts[f"mouth_{part}{k}"] = (float(x), float(ln[part]))
    pts["mouth_corner_l"] = pts["mouth_up_out0"]
    pts["mouth_corner_r"] = pts["mouth_up_out6"]
    chin_y = idn.mouth_y - 27.0 - 0.55 * e.mouth_open + 0.5 * e.chin_raise
    pts["chin"] = (0.0, chin_y - 6.0)
    for k, (x, y) in enumerate(outline_points(face, np.linspace(np.pi * 1.05, np.pi * 1.95, 15))):
        pts[f"contour{k}"] = (x, y)
    return pts


def outline_points(face: Face, angles: np.ndarray, rho: float = 0.985) -> list[tuple[float, float]]:
    """Points just inside the outline along rays from the outline centre (bisection)."""
    cy = face.identity.centre_y
    lo, hi = np.zeros(angles.size), np.full(angles.size, 400.0)
    cos, sin = np.cos(angles), np.sin(angles)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        inside = face.outline_rho2(mid * cos, cy + mid * sin) <= rho**2
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    return [(float(r * c), float(cy + r * s)) for r, c, s in zip(lo, cos, sin, strict=True)]


def make_face(identity: Identity, cls: str, strength: float, rng: np.random.Generator) -> Face:
    """A scan's face: jittered identity, the class expression and a slightly varied light."""
    u = lambda lo, hi: uniform(rng, lo, hi)  # noqa: E731
    return Face(
        identity=jitter_identity(identity, rng),
        expr=expression(cls, strength),
        light=(u(-0.35, 0.35), u(0.1, 0.5), 1.0),
        ambient=u(0.38, 0.48),
        gaze=(u(-1.0, 1.0), u(-0.5, 0.5)),
    )
