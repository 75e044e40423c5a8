"""Fake CalD3r & MenD3s samples: aligned 224x224 RGB and 16-bit depth crops per sample.

Layout: <root>/{CalD3r|MenD3s}/<Class>/{RGB|DEPTH}/<sex>_<subject>_<code>_<label>_{Color|Depth}.png.
Depth is the distance from the camera in units of 1/8 mm (the SR300's usual unit), 0 where
there is no face; the RGB crop has a black background and the same pixel grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer3d_bench.synthetic.common import Options, rng_for, save_depth16, save_rgb, uniform
from fer3d_bench.synthetic.face import (
    CLASSES,
    Grid,
    face_crop,
    make_face,
    photo,
    sample_identity,
    sub_grid,
)

DATASET = "cald3r-mend3s"
SIZE = 224
DEPTH_UNIT_MM = 0.125
SUBSETS = {"cald3r": ("CalD3r", 3), "mend3s": ("MenD3s", 2)}  # folder, subject digits


@dataclass(frozen=True)
class Cald3rSample:
    subset: str  # "cald3r" | "mend3s"
    subject: str  # zero-padded
    sex: str
    code: str  # 4-digit running number per subject
    cls: str

    @property
    def stem(self) -> str:
        return f"{self.sex}_{self.subject}_{self.code}_{self.cls}"

    def path(self, modality: str) -> str:
        """Path relative to the dataset root; modality "RGB" or "DEPTH"."""
        suffix = "Color" if modality == "RGB" else "Depth"
        folder = SUBSETS[self.subset][0]
        return f"{folder}/{self.cls.capitalize()}/{modality}/{self.stem}_{suffix}.png"


def samples(subset: str, n_subjects: int, per_class: int) -> list[Cald3rSample]:
    """Half female (F gets the odd one), codes running over classes then repetitions."""
    digits = SUBSETS[subset][1]
    out = []
    for k in range(n_subjects):
        sex = "F" if k < (n_subjects + 1) // 2 else "M"
        subject = f"{k + 1:0{digits}d}"
        codes = iter(range(1, len(CLASSES) * per_class + 1))
        for cls in CLASSES:
            out += [
                Cald3rSample(subset, subject, sex, f"{next(codes):04d}", cls)
                for _ in range(per_class)
            ]
    return out


def write_sample(sample: Cald3rSample, root: Path, seed: int, options: Options) -> tuple[str, dict]:
    """Write one sample's RGB and depth crops; return its ground-truth key and entry.

    `options` is taken so every writer has one signature: these crops carry sensor noise in
    either mode, and nothing is planted in them.
    """
    id_rng = rng_for(seed, DATASET, "identity", sample.subset, sample.subject)
    identity = sample_identity(id_rng, uniform(id_rng, 0.0, 0.85))
    rng = rng_for(seed, DATASET, "sample", sample.subset, sample.stem)
    strength = 0.0 if sample.cls == "neutral" else uniform(rng, 0.4, 1.0)
    face = make_face(identity, sample.cls, strength, rng)

    x0, x1, y0, y1 = face.bounds()
    s = 206.0 / (y1 - y0) * uniform(rng, 0.94, 1.04)  # px per mm: the face fills the crop
    tx = (SIZE - 1) / 2 + uniform(rng, -5, 5) - s * (x0 + x1) / 2
    ty = (SIZE - 1) / 2 + uniform(rng, -5, 5) + s * (y0 + y1) / 2
    px = np.arange(SIZE, dtype=float)
    grid = Grid.for_photo((px - tx) / s, (ty - px) / s)
    rs, cs = face_crop(face, grid)
    sub = sub_grid(grid, rs, cs)
    surf = face.render(sub)

    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    sensor = photo(face, sub, surf, surf.mask) + rng.normal(0.0, 2.0, (*surf.z.shape, 3))
    rgb[rs, cs] = np.where(surf.mask[..., None], np.clip(np.round(sensor), 16, 255), 0)

    tip_distance = uniform(rng, 450.0, 500.0)  # mm from the camera to the nose tip
    distance = tip_distance + (surf.z.max() - surf.z) + rng.normal(0, 0.4, surf.z.shape)
    depth = np.zeros((SIZE, SIZE), np.uint16)
    depth[rs, cs] = np.where(surf.mask, np.round(distance / DEPTH_UNIT_MM), 0).astype(np.uint16)

    rgb_path, depth_path = sample.path("RGB"), sample.path("DEPTH")
    for rel in (rgb_path, depth_path):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
    save_rgb(root / rgb_path, rgb, "PNG")
    save_depth16(root / depth_path, depth)
    return rgb_path, {
        "dataset": sample.subset,
        "subject": sample.subject,
        "sex": sample.sex,
        "class": sample.cls,
        "code": sample.code,
        "depth_file": depth_path,
        "depth_unit_mm": DEPTH_UNIT_MM,
        "strength": strength,
        "scale": s,
        "tx": tx,
        "ty": ty,
    }
