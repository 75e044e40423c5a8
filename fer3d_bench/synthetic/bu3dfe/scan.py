"""Which BU-3DFE scans exist (subjects, expression codes, ethnicity), and each one's scene.

A scene (face, mesh, photo camera) is a pure function of (scan, seed, exact), so a photo-swapped
plant can recompute its donor's photo without the donor's files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer3d_bench.synthetic.bu3dfe.mesh import GridMesh, build_mesh
from fer3d_bench.synthetic.bu3dfe.photo import EXACT_OFFSET_PX, OFFSET_PX, draw_camera
from fer3d_bench.synthetic.common import rng_for, uniform
from fer3d_bench.synthetic.face import Face, make_face, sample_identity

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
    camera = draw_camera(mesh, rng, EXACT_OFFSET_PX if exact else OFFSET_PX)
    return Scene(face, strength, offset, mesh, camera, rng)


def stray_stream(seed: int, scan: BuScan) -> np.random.Generator:
    """Irregular mode draws strays from their own stream, so a donor's photo needs no .wrl."""
    return rng_for(seed, DATASET, "strays", scan.stem)
