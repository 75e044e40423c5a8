"""Fake Bosphorus scans in the native tree: .bnt (3D grid), .png, .lm2 and .lm3 per scan.

The photo is an orthographic frontal view, image column = s*x + tx, row = -s*y + ty in the
written frame. The .bnt grid samples that photo every 6 pixels: grid row r, column c holds the
surface point seen at pixel (row H-1-6r, column 6c+1), so grid row 0 is the bottom of the face.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.sample.common import rng_for, save_rgb, uniform, write_text
from fer3d_bench.sample.face import (
    Face,
    Grid,
    face_crop,
    landmarks,
    make_face,
    photo,
    sample_identity,
    sub_grid,
)

DATASET = "bosphorus"
WIDTH, HEIGHT, STEP = 360, 480, 6
ZMIN = -1.0e9

# code -> (class label or None when the scan kind is excluded, deformation used, strength range)
SCAN_KINDS: dict[str, tuple[str | None, str, tuple[float, float]]] = {
    "N_N_0": ("neutral", "neutral", (0.0, 0.0)),
    "N_N_1": ("neutral", "neutral", (0.0, 0.0)),
    "E_ANGER_0": ("anger", "anger", (0.85, 1.0)),
    "E_DISGUST_0": ("disgust", "disgust", (0.85, 1.0)),
    "E_FEAR_0": ("fear", "fear", (0.85, 1.0)),
    "E_HAPPY_0": ("happiness", "happiness", (0.85, 1.0)),
    "E_SADNESS_0": ("sadness", "sadness", (0.85, 1.0)),
    "E_SURPRISE_0": ("surprise", "surprise", (0.85, 1.0)),
    "LFAU_24_0": ("anger", "anger", (0.7, 0.9)),
    "LFAU_9_0": ("disgust", "disgust", (0.7, 0.9)),
    "LFAU_12_0": ("happiness", "happiness", (0.7, 0.9)),
    "LFAU_15_0": ("sadness", "sadness", (0.7, 0.9)),
    "UFAU_2_0": ("surprise", "surprise", (0.7, 0.9)),
    "UFAU_1_0": ("fear", "fear", (0.7, 0.9)),
    "LFAU_10_0": (None, "disgust", (0.4, 0.6)),
    "LFAU_12L_0": (None, "happiness", (0.5, 0.7)),
    "CAU_A22A25_0": (None, "surprise", (0.5, 0.7)),
    "YR_R10_0": (None, "neutral", (0.0, 0.0)),
    "PR_SU_0": (None, "neutral", (0.0, 0.0)),
    "O_EYE_0": (None, "neutral", (0.0, 0.0)),
    "IGN_IGN_0": (None, "neutral", (0.0, 0.0)),
}

LANDMARKS: tuple[tuple[str, str], ...] = (  # Bosphorus label, face point ("left" = image left)
    ("Outer left eyebrow", "brow_l_mid4"),
    ("Middle left eyebrow", "brow_l_mid2"),
    ("Inner left eyebrow", "brow_l_mid0"),
    ("Inner right eyebrow", "brow_r_mid0"),
    ("Middle right eyebrow", "brow_r_mid2"),
    ("Outer right eyebrow", "brow_r_mid4"),
    ("Outer left eye corner", "eye_l_outer"),
    ("Inner left eye corner", "eye_l_inner"),
    ("Inner right eye corner", "eye_r_inner"),
    ("Outer right eye corner", "eye_r_outer"),
    ("Nose saddle left", "nose_saddle_l"),
    ("Nose saddle right", "nose_saddle_r"),
    ("Left nose peak", "nose_ala_l"),
    ("Nose tip", "nose_tip"),
    ("Right nose peak", "nose_ala_r"),
    ("Left mouth corner", "mouth_corner_l"),
    ("Upper lip outer middle", "mouth_up_out3"),
    ("Right mouth corner", "mouth_corner_r"),
    ("Upper lip inner middle", "mouth_up_in3"),
    ("Lower lip inner middle", "mouth_low_in3"),
    ("Lower lip outer middle", "mouth_low_out3"),
    ("Chin middle", "chin"),
)


@dataclass(frozen=True)
class BosphorusScan:
    subject: str
    kind: str  # e.g. "LFAU_12_0"

    @property
    def stem(self) -> str:
        return f"{self.subject}_{self.kind}"

    @property
    def code(self) -> str:
        """The scan code without its trailing repetition number, e.g. "LFAU_12"."""
        return self.kind.rsplit("_", 1)[0]


def scans(n_subjects: int) -> list[BosphorusScan]:
    return [BosphorusScan(f"bs{i:03d}", kind) for i in range(n_subjects) for kind in SCAN_KINDS]


def omitted_landmark(seed: int, subject: str) -> tuple[str, int]:
    """The one scan per subject whose landmark files lack a landmark, and which landmark."""
    rng = rng_for(seed, DATASET, "omitted-landmark", subject)
    kinds = list(SCAN_KINDS)
    return kinds[int(rng.integers(len(kinds)))], int(rng.integers(len(LANDMARKS)))


def _camera(face: Face, rng: np.random.Generator) -> tuple[float, float, float]:
    s = uniform(rng, 1.85, 2.2)
    x0, x1, y0, y1 = face.bounds()
    tx = (WIDTH - 1) / 2 + uniform(rng, -8, 8) - s * (x0 + x1) / 2
    ty = (HEIGHT - 1) / 2 + uniform(rng, -8, 8) + s * (y0 + y1) / 2
    return s, tx, ty


def _background(rng: np.random.Generator) -> np.ndarray:
    """A dark studio background with a soft vertical gradient."""
    base, slope = uniform(rng, 14, 26), uniform(rng, -8, 8)
    column = np.clip(base + slope * np.linspace(-1, 1, HEIGHT), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(column[:, None, None], (HEIGHT, WIDTH, 3)))


def _occluder(face: Face, grid: Grid, z: np.ndarray, rgb: np.ndarray) -> None:
    """O_EYE: a hand-like skin patch held in front of the image-left eye."""
    idn = face.identity
    cx, cy = -idn.eye_dx, idn.eye_y
    inside = (np.abs(grid.xs[None, :] - cx) < 20) & (np.abs(grid.ys[:, None] - cy) < 14)
    z[inside] = np.maximum(z[inside], z.max() - 5.0)
    rgb[inside] = (np.asarray(idn.skin) * 230).astype(np.uint8)


def bnt_bytes(name: str, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> bytes:
    """The .bnt layout: header, then blocks x, y, z, u, v (row-major, bottom row first)."""
    nrows, ncols = x.shape
    r, c = np.mgrid[0:nrows, 0:ncols]
    u = (STEP * c + 1) / WIDTH
    v = (HEIGHT - 1 - STEP * r) / HEIGHT
    encoded = name.encode("ascii")
    header = struct.pack("<HHdH", nrows, ncols, ZMIN, len(encoded)) + encoded
    header += struct.pack("<I", nrows * ncols * 5)
    return header + np.stack([x, y, z, u, v]).astype("<f8").tobytes()


def _landmark_texts(points: list[tuple[str, tuple[float, float, float], tuple[int, int]]]):
    lm3 = ["# 3D Landmark File", "", f"{len(points)} landmarks:"]
    for label, (x, y, z), _ in points:
        lm3 += [label, f"{x!r} {y!r} {z!r}"]
    lm2 = ["# 2D Landmark File", "", f"{len(points)} landmarks", "", "Labels:"]
    lm2 += [label for label, _, _ in points]
    lm2 += ["", "2D Image coordinates:"]
    lm2 += [f"{col:.6f} {row:.6f}" for _, _, (col, row) in points]
    return "\n".join(lm3) + "\n", "\n".join(lm2) + "\n"


def write_scan(scan: BosphorusScan, root: Path, seed: int) -> tuple[str, dict]:
    """Write one scan's four files; return its ground-truth key and entry."""
    label, deformation, (lo, hi) = SCAN_KINDS[scan.kind]
    id_rng = rng_for(seed, DATASET, "identity", scan.subject)
    identity = sample_identity(id_rng, uniform(id_rng, 0.0, 0.75))
    rng = rng_for(seed, DATASET, "scan", scan.stem)
    strength = uniform(rng, lo, hi) if hi > 0 else 0.0
    face = make_face(identity, deformation, strength, rng)
    offset = np.array([uniform(rng, -5, 5), uniform(rng, -5, 5), uniform(rng, -20, 20)])
    s, tx, ty = _camera(face, rng)

    cols, rows = np.arange(WIDTH, dtype=float), np.arange(HEIGHT, dtype=float)
    xs_w, ys_w = (cols - tx) / s, (ty - rows) / s
    grid = Grid.for_photo(xs_w - offset[0], ys_w - offset[1])
    rgb, z_w = _background(rng), np.full((HEIGHT, WIDTH), ZMIN)
    rs, cs = face_crop(face, grid)
    sub = sub_grid(grid, rs, cs)
    surf = face.render(sub)
    rgb_face, z_face = photo(face, sub, surf, surf.mask), surf.z + offset[2]
    if scan.kind == "O_EYE_0":
        _occluder(face, sub, z_face, rgb_face)
    rgb[rs, cs] = np.where(surf.mask[..., None], rgb_face, rgb[rs, cs])
    z_w[rs, cs] = np.where(surf.mask, z_face, ZMIN)

    # the .bnt grid: pixel (HEIGHT-1-6r, 6c+1) for grid row r (bottom first), column c
    pr = HEIGHT - 1 - STEP * np.arange(HEIGHT // STEP)
    pc = STEP * np.arange(WIDTH // STEP) + 1
    gz = z_w[pr[:, None], pc[None, :]]
    valid = gz != ZMIN
    gx = np.broadcast_to(xs_w[pc][None, :], gz.shape).copy()
    gy = np.broadcast_to(ys_w[pr][:, None], gz.shape).copy()
    zeroed = rng.random(gz.shape) < 0.08  # some background points carry 0.0, not zmin
    for arr in (gx, gy):
        arr[~valid] = np.where(zeroed[~valid], 0.0, ZMIN)

    folder = root / scan.subject
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / scan.stem
    Path(f"{stem}.bnt").write_bytes(bnt_bytes(f"{scan.stem}.png", gx, gy, gz))
    save_rgb(Path(f"{stem}.png"), rgb, "PNG")

    points = _landmarks(face, offset, gx, gy, gz, valid)
    skip_kind, skip_index = omitted_landmark(seed, scan.subject)
    if scan.kind == skip_kind:
        points.pop(skip_index)
    lm3, lm2 = _landmark_texts(points)
    write_text(Path(f"{stem}.lm3"), lm3)
    write_text(Path(f"{stem}.lm2"), lm2)
    return f"{scan.subject}/{scan.stem}.bnt", {
        "subject": scan.subject,
        "class": label,
        "code": scan.code,
        "strength": strength,
        "scale": s,
        "tx": tx,
        "ty": ty,
        "n_landmarks": len(points),
    }


def _landmarks(face: Face, offset, gx, gy, gz, valid):
    """Each landmark snapped to the nearest valid grid vertex: (label, xyz, (column, row))."""
    pts = landmarks(face)
    r_idx, c_idx = np.nonzero(valid)
    vx, vy = gx[r_idx, c_idx], gy[r_idx, c_idx]
    out = []
    for label, name in LANDMARKS:
        x, y = pts[name][0] + offset[0], pts[name][1] + offset[1]
        k = int(((vx - x) ** 2 + (vy - y) ** 2).argmin())
        r, c = int(r_idx[k]), int(c_idx[k])
        xyz = (float(gx[r, c]), float(gy[r, c]), float(gz[r, c]))
        out.append((label, xyz, (STEP * c + 1, HEIGHT - 1 - STEP * r)))
    return out
