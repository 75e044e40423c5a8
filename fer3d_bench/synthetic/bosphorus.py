"""Fake Bosphorus scans in the native tree: .bnt (3D grid), .png, .lm2 and .lm3 per scan.

The photo is an orthographic frontal view, image column = s*x + tx, row = -s*y + ty in the
written frame. The .bnt grid samples that photo every 6 pixels: grid row r, column c holds the
surface point seen at pixel (row H-1-6r, column 6c+1), so grid row 0 is the bottom of the face.

By default the scans are as irregular as the real files: images of several sizes in both
orientations (one scan per subject at the real 1116 x 1398), `.lm2` points clicked on the image
with annotation noise and `.lm3` points snapped to the grid vertex nearest the click (so the two
lie up to half a lattice diagonal apart), scans lacking a few landmarks, and a few planted
misalignments. Exact mode keeps every image 360 x 480 and every `.lm2` point on its vertex.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.synthetic.common import (
    Options,
    Plant,
    planted_scans,
    rng_for,
    save_rgb,
    uniform,
    write_text,
)
from fer3d_bench.synthetic.face import (
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
STEP = 6
ZMIN = -1.0e9
EXACT_SIZE = (360, 480)  # (W, H) of every image in exact mode, and the camera's reference size
IMAGE_SIZES: tuple[tuple[tuple[int, int], float], ...] = (  # (W, H) and its weight
    ((360, 480), 0.4),
    ((480, 360), 0.2),
    ((432, 540), 0.2),
    ((540, 408), 0.2),
)
REAL_SIZE = (1116, 1398)  # the real file inspected; exactly one scan per subject has it
CLICK_SIGMA_PX = 0.5  # annotation noise of a clicked .lm2 point, per axis
MISSING_PROBABILITY = 0.25  # chance that a scan's landmark files lack some landmarks
MISSING_COUNT = (1, 4)  # how many then (uniform, inclusive); which ones is uniform too
SHIFT_PX = (15.0, 30.0)  # length of an lm2-shifted plant's shift (uniform, uniform direction)
SWAP_MIN_DISPLACEMENT_PX = 2.0 * STEP  # a swapped .lm2 is off by at least two lattice pitches
PLANT_KINDS = ("lm2-shifted", "lm2-swapped")  # planted in turn

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
    """Exact mode: the one scan per subject whose landmark files lack a landmark, and which."""
    rng = rng_for(seed, DATASET, "omitted-landmark", subject)
    kinds = list(SCAN_KINDS)
    return kinds[int(rng.integers(len(kinds)))], int(rng.integers(len(LANDMARKS)))


def kept_landmarks(seed: int, scan: BosphorusScan, exact: bool) -> list[int]:
    """Indices into LANDMARKS that the scan's .lm2 and .lm3 hold, in label order."""
    if exact:
        kind, index = omitted_landmark(seed, scan.subject)
        missing = {index} if scan.kind == kind else set()
    else:
        rng = rng_for(seed, DATASET, "missing-landmarks", scan.stem)
        missing = set()
        if rng.random() < MISSING_PROBABILITY:
            k = int(rng.integers(MISSING_COUNT[0], MISSING_COUNT[1] + 1))
            missing = set(rng.choice(len(LANDMARKS), k, replace=False).tolist())
    return [k for k in range(len(LANDMARKS)) if k not in missing]


def image_size(seed: int, scan: BosphorusScan) -> tuple[int, int]:
    """(W, H) of the scan's image when irregular: drawn from IMAGE_SIZES, or REAL_SIZE for the
    one scan of its subject chosen for it."""
    kinds = list(SCAN_KINDS)
    real = kinds[int(rng_for(seed, DATASET, "real-size", scan.subject).integers(len(kinds)))]
    if scan.kind == real:
        return REAL_SIZE
    weights = [w for _, w in IMAGE_SIZES]
    k = int(rng_for(seed, DATASET, "image-size", scan.stem).choice(len(weights), p=weights))
    return IMAGE_SIZES[k][0]


# ---------------------------------------------------------------------------------------------
# The scene: what a scan's files are drawn from


@dataclass(frozen=True, eq=False)
class Scene:
    """One scan's face, image size and camera: a pure function of (scan, seed, exact), so the
    clicked points of a swap's donor are recomputed without rendering the donor."""

    face: Face
    strength: float
    offset: np.ndarray  # written frame = face frame + offset (mm)
    width: int
    height: int
    camera: tuple[float, float, float]  # s, tx, ty: column = s*x + tx, row = -s*y + ty
    rng: np.random.Generator  # the scan's stream after the camera: background, zeroed points


def scene(scan: BosphorusScan, seed: int, exact: bool) -> Scene:
    _, deformation, (lo, hi) = SCAN_KINDS[scan.kind]
    id_rng = rng_for(seed, DATASET, "identity", scan.subject)
    identity = sample_identity(id_rng, uniform(id_rng, 0.0, 0.75))
    rng = rng_for(seed, DATASET, "scan", scan.stem)
    strength = uniform(rng, lo, hi) if hi > 0 else 0.0
    face = make_face(identity, deformation, strength, rng)
    offset = np.array([uniform(rng, -5, 5), uniform(rng, -5, 5), uniform(rng, -20, 20)])
    width, height = EXACT_SIZE if exact else image_size(seed, scan)
    return Scene(face, strength, offset, width, height, _camera(face, rng, width, height), rng)


def _camera(
    face: Face, rng: np.random.Generator, width: int, height: int
) -> tuple[float, float, float]:
    """Scale and offset, both growing with the image so the face fills every size alike."""
    k = min(width / EXACT_SIZE[0], height / EXACT_SIZE[1])
    s = uniform(rng, 1.85, 2.2) * k
    x0, x1, y0, y1 = face.bounds()
    tx = (width - 1) / 2 + uniform(rng, -8, 8) * k - s * (x0 + x1) / 2
    ty = (height - 1) / 2 + uniform(rng, -8, 8) * k + s * (y0 + y1) / 2
    return s, tx, ty


def clicked_points(sc: Scene, scan: BosphorusScan, seed: int, noise: bool) -> np.ndarray:
    """(22, 2) image column and row of each landmark: where the feature is in the photo, plus
    the annotator's error when clicked by hand."""
    pts = landmarks(sc.face)
    xy = np.array([pts[name] for _, name in LANDMARKS]) + sc.offset[:2]
    s, tx, ty = sc.camera
    true = np.column_stack([s * xy[:, 0] + tx, -s * xy[:, 1] + ty])
    if not noise:
        return true
    return true + rng_for(seed, DATASET, "clicks", scan.stem).normal(
        0.0, CLICK_SIGMA_PX, true.shape
    )


# ---------------------------------------------------------------------------------------------
# Files


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A dark studio background with a soft vertical gradient."""
    base, slope = uniform(rng, 14, 26), uniform(rng, -8, 8)
    column = np.clip(base + slope * np.linspace(-1, 1, height), 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(column[:, None, None], (height, width, 3)))


def _occluder(face: Face, grid: Grid, z: np.ndarray, rgb: np.ndarray) -> None:
    """O_EYE: a hand-like skin patch held in front of the image-left eye."""
    idn = face.identity
    cx, cy = -idn.eye_dx, idn.eye_y
    inside = (np.abs(grid.xs[None, :] - cx) < 20) & (np.abs(grid.ys[:, None] - cy) < 14)
    z[inside] = np.maximum(z[inside], z.max() - 5.0)
    rgb[inside] = (np.asarray(idn.skin) * 230).astype(np.uint8)


def _capture(scan: BosphorusScan, sc: Scene) -> tuple[np.ndarray, ...]:
    """The photo and the .bnt grid's x, y, z; background points have z == ZMIN and x, y equal
    to ZMIN or (for some) 0.0, as in real files."""
    width, height = sc.width, sc.height
    s, tx, ty = sc.camera
    cols, rows = np.arange(width, dtype=float), np.arange(height, dtype=float)
    xs_w, ys_w = (cols - tx) / s, (ty - rows) / s
    grid = Grid.for_photo(xs_w - sc.offset[0], ys_w - sc.offset[1])
    rgb, z_w = _background(sc.rng, width, height), np.full((height, width), ZMIN)
    rs, cs = face_crop(sc.face, grid)
    sub = sub_grid(grid, rs, cs)
    surf = sc.face.render(sub)
    rgb_face, z_face = photo(sc.face, sub, surf, surf.mask), surf.z + sc.offset[2]
    if scan.kind == "O_EYE_0":
        _occluder(sc.face, sub, z_face, rgb_face)
    rgb[rs, cs] = np.where(surf.mask[..., None], rgb_face, rgb[rs, cs])
    z_w[rs, cs] = np.where(surf.mask, z_face, ZMIN)

    # the .bnt grid: pixel (H-1-6r, 6c+1) for grid row r (bottom first), column c
    pr = height - 1 - STEP * np.arange(height // STEP)
    pc = STEP * np.arange(width // STEP) + 1
    gz = z_w[pr[:, None], pc[None, :]]
    valid = gz != ZMIN
    gx = np.broadcast_to(xs_w[pc][None, :], gz.shape).copy()
    gy = np.broadcast_to(ys_w[pr][:, None], gz.shape).copy()
    zeroed = sc.rng.random(gz.shape) < 0.08  # some background points carry 0.0, not zmin
    for arr in (gx, gy):
        arr[~valid] = np.where(zeroed[~valid], 0.0, ZMIN)
    return rgb, gx, gy, gz


def bnt_bytes(name: str, x: np.ndarray, y: np.ndarray, z: np.ndarray, width: int, height: int):
    """The .bnt layout: header, then blocks x, y, z, u, v (row-major, bottom row first)."""
    nrows, ncols = x.shape
    r, c = np.mgrid[0:nrows, 0:ncols]
    u = (STEP * c + 1) / width
    v = (height - 1 - STEP * r) / height
    encoded = name.encode("ascii")
    header = struct.pack("<HHdH", nrows, ncols, ZMIN, len(encoded)) + encoded
    header += struct.pack("<I", nrows * ncols * 5)
    return header + np.stack([x, y, z, u, v]).astype("<f8").tobytes()


def _snap(points: np.ndarray, valid: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid row and column of the valid vertex nearest each image point, by the vertex's image
    position (6c+1, H-1-6r): the 3D landmark snapped to the grid, as the real files show."""
    r_idx, c_idx = np.nonzero(valid)
    vc, vr = STEP * c_idx + 1, height - 1 - STEP * r_idx
    d2 = (vc[None, :] - points[:, :1]) ** 2 + (vr[None, :] - points[:, 1:]) ** 2
    k = d2.argmin(axis=1)
    return r_idx[k], c_idx[k]


def lm3_text(labels: list[str], xyz: np.ndarray) -> str:
    """x y z as repr of the float64, so each point is exactly its .bnt vertex."""
    lines = ["# 3D Landmark File", "", f"{len(labels)} landmarks:"]
    for label, (x, y, z) in zip(labels, xyz.tolist(), strict=True):
        lines += [label, f"{x!r} {y!r} {z!r}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, eq=False)
class Lm2:
    """An .lm2 file: its labels, its points as written (read back from the text), the text."""

    labels: tuple[str, ...]
    points: np.ndarray
    text: str


def lm2_file(labels: list[str] | tuple[str, ...], points: np.ndarray, exact: bool) -> Lm2:
    """Exact mode writes whole pixels with six decimals; real files have six significant
    digits (`78.0899 339.781`), and so does the irregular sample."""
    fmt = "{:.6f} {:.6f}" if exact else "{:.6g} {:.6g}"
    coords = [fmt.format(col, row) for col, row in points.tolist()]
    written = np.array([[float(t) for t in c.split()] for c in coords]).reshape(-1, 2)
    lines = ["# 2D Landmark File", "", f"{len(labels)} landmarks", "", "Labels:", *labels]
    lines += ["", "2D Image coordinates:", *coords]
    return Lm2(tuple(labels), written, "\n".join(lines) + "\n")


def _clicked_lm2(scan: BosphorusScan, seed: int) -> Lm2:
    """The .lm2 an unplanted irregular scan writes (no rendering needed): a swap's donor file."""
    kept = kept_landmarks(seed, scan, exact=False)
    clicks = clicked_points(scene(scan, seed, exact=False), scan, seed, noise=True)
    return lm2_file([LANDMARKS[k][0] for k in kept], clicks[kept], exact=False)


# ---------------------------------------------------------------------------------------------
# Planted misalignments


def plan(seed: int, all_scans: list[BosphorusScan], misaligned: int) -> dict:
    """{scan: Plant} for `misaligned` scans of a mapped class (never an excluded kind), chosen
    by a named RNG over the whole dataset; kinds follow PLANT_KINDS in turn."""
    mapped = [s for s in all_scans if SCAN_KINDS[s.kind][0] is not None]
    chosen = planted_scans(seed, DATASET, mapped, misaligned)
    plants = {}
    for k, scan in enumerate(chosen):
        kind = PLANT_KINDS[k % len(PLANT_KINDS)]
        donors = _donors(scan, mapped, set(chosen)) if kind == "lm2-swapped" else ()
        plants[scan] = Plant(kind, donors)
    return plants


def _donors(scan: BosphorusScan, mapped: list[BosphorusScan], planted: set) -> tuple:
    """Candidates for a swapped .lm2, in the order tried: the same kind of the other subjects
    (from the next subject on), then the subject's own other mapped scans; never a planted one."""
    subjects = sorted({s.subject for s in mapped})
    i = subjects.index(scan.subject)
    same_kind = [BosphorusScan(s, scan.kind) for s in subjects[i + 1 :] + subjects[:i]]
    own = [s for s in mapped if s.subject == scan.subject and s != scan]
    return tuple(s for s in same_kind + own if s not in planted)


def _planted_lm2(
    plant: Plant | None, own: Lm2, clicks: np.ndarray, scan: BosphorusScan, seed: int
) -> tuple[Lm2, dict | None]:
    """The .lm2 written and its "planted" truth; `clicks` are the points of `own`, unrounded.

    A swap takes the first donor whose file lies SWAP_MIN_DISPLACEMENT_PX or more (median over
    the labels both files hold) from this scan's clicks; with no donor that far, the scan's
    .lm2 is shifted instead.
    """
    if plant is None:
        return own, None
    if plant.kind == "lm2-swapped":
        mine = dict(zip(own.labels, clicks, strict=True))
        for donor in plant.donors:
            theirs = _clicked_lm2(donor, seed)
            median = float(np.median(_displacements(theirs, mine)))
            if median >= SWAP_MIN_DISPLACEMENT_PX:
                donor_key = f"{donor.subject}/{donor.stem}"
                truth = {"kind": plant.kind, "donor": donor_key, "median_displacement_px": median}
                return theirs, truth
    rng = rng_for(seed, DATASET, "plant", scan.stem)
    length, angle = uniform(rng, *SHIFT_PX), uniform(rng, 0.0, 2 * np.pi)
    shift = [length * float(np.cos(angle)), length * float(np.sin(angle))]
    return lm2_file(own.labels, clicks + shift, exact=False), {
        "kind": "lm2-shifted",
        "shift_px": shift,
    }


def _displacements(lm2: Lm2, reference: dict[str, np.ndarray]) -> np.ndarray:
    """Distance of each written .lm2 point from the reference point of its label, over the
    labels both hold."""
    shared = [k for k, label in enumerate(lm2.labels) if label in reference]
    ref = np.array([reference[lm2.labels[k]] for k in shared]).reshape(-1, 2)
    return np.hypot(*(lm2.points[shared] - ref).T)


# ---------------------------------------------------------------------------------------------
# One scan


def write_scan(scan: BosphorusScan, root: Path, seed: int, options: Options) -> tuple[str, dict]:
    """Write one scan's four files; return its ground-truth key and entry."""
    sc = scene(scan, seed, options.exact)
    rgb, gx, gy, gz = _capture(scan, sc)
    folder = root / scan.subject
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / scan.stem
    Path(f"{stem}.bnt").write_bytes(bnt_bytes(f"{scan.stem}.png", gx, gy, gz, sc.width, sc.height))
    save_rgb(Path(f"{stem}.png"), rgb, "PNG")

    kept = kept_landmarks(seed, scan, options.exact)
    clicks = clicked_points(sc, scan, seed, noise=not options.exact)[kept]
    rows, cols = _snap(clicks, gz != ZMIN, sc.height)
    vertex_px = np.column_stack([STEP * cols + 1, sc.height - 1 - STEP * rows]).astype(float)
    labels = [LANDMARKS[k][0] for k in kept]
    own = lm2_file(labels, vertex_px if options.exact else clicks, options.exact)
    lm2, planted = _planted_lm2(options.plant, own, clicks, scan, seed)
    xyz = np.column_stack([gx[rows, cols], gy[rows, cols], gz[rows, cols]])
    write_text(Path(f"{stem}.lm3"), lm3_text(labels, xyz))
    write_text(Path(f"{stem}.lm2"), lm2.text)
    gaps = _displacements(lm2, dict(zip(labels, vertex_px, strict=True)))  # to (u*W, v*H)
    s, tx, ty = sc.camera
    return f"{scan.subject}/{scan.stem}.bnt", {
        "subject": scan.subject,
        "class": SCAN_KINDS[scan.kind][0],
        "code": scan.code,
        "strength": sc.strength,
        "scale": s,
        "tx": tx,
        "ty": ty,
        "n_landmarks": len(labels),
        "width": sc.width,
        "height": sc.height,
        "lm2_gap_px_median": float(np.median(gaps)),
        "lm2_gap_px_max": float(gaps.max()),
        "missing_landmarks": [label for label, _ in LANDMARKS if label not in labels],
        "planted": planted,
    }


def irregularities() -> dict:
    """The distributions irregular mode draws from, for the ground truth's readers."""
    return {
        "image_size": {
            "sizes_wh_and_weights": [[w, h, p] for (w, h), p in IMAGE_SIZES],
            "real_size_wh": list(REAL_SIZE),
            "real_size_scans_per_subject": 1,
            "grid": "ncols = W/6, nrows = H/6, u = (6c+1)/W, v = (H-1-6r)/H",
            "scale_px_per_mm": "uniform 1.85-2.2 times min(W/360, H/480)",
        },
        "lm2_click_noise_sigma_px": CLICK_SIGMA_PX,
        "lm3": "the valid .bnt vertex nearest the clicked .lm2 point, by (u*W, v*H)",
        "lm2_number_format": "6 significant digits",
        "missing_landmarks": {
            "probability": MISSING_PROBABILITY,
            "count_uniform": list(MISSING_COUNT),
            "which": "uniform without replacement; both files omit them",
        },
        "planted_kinds_in_turn": list(PLANT_KINDS),
        "planted_among": "scans of a mapped class",
        "lm2_shifted_px_uniform": list(SHIFT_PX),
        "lm2_swapped": (
            "donor: the same kind of the other subjects, then the subject's own other mapped "
            f"scans; the first whose median displacement is >= {SWAP_MIN_DISPLACEMENT_PX} px"
        ),
    }
