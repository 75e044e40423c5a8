"""Planted misalignments: BU-3DFE scans whose photo is wrong on purpose (turned in its plane,
or another subject's), so the alignment checks have something to find and the tests can score
them against the ground truth; also what irregular mode draws, for the truth's readers.
"""

from __future__ import annotations

import numpy as np

from fer3d_bench.synthetic.bu3dfe.mesh import texture_image
from fer3d_bench.synthetic.bu3dfe.photo import (
    EXACT_OFFSET_PX,
    OFFSET_PX,
    PHOTO_MARGIN,
    STRAY_BRIGHT,
    STRAYS_PER_BORDER,
    f2d_photo,
    face_centre,
)
from fer3d_bench.synthetic.bu3dfe.scan import DATASET, BuScan, Scene, scene, stray_stream
from fer3d_bench.synthetic.common import Plant, planted_scans, rng_for, uniform

ROTATION_DEGREES = (10.0, 15.0)  # in-plane turn of a photo-rotated plant (uniform, either sign)
PLANT_KINDS = ("photo-rotated", "photo-swapped")  # planted in turn


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


def _irregular_photo(scan: BuScan, seed: int) -> tuple[np.ndarray, int]:
    """The F2D photo an unplanted irregular scan writes: what a photo-swapped plant copies."""
    sc = scene(scan, seed, exact=False)
    texture = texture_image(sc.face, sc.mesh, sc.offset)
    return f2d_photo(sc.mesh, texture, sc.camera, stray_stream(seed, scan), exact=False)


def planted_photo(scan: BuScan, sc: Scene, texture: np.ndarray, seed: int, plant: Plant):
    """The photo of a planted scan, its stray count and its "planted" truth."""
    if plant.kind == "photo-swapped":
        (donor,) = plant.donors
        photo_rgb, strays = _irregular_photo(donor, seed)
        return photo_rgb, strays, {"kind": plant.kind, "donor": f"{donor.subject}/{donor.stem}"}
    rng = rng_for(seed, DATASET, "plant", scan.stem)
    degrees = uniform(rng, *ROTATION_DEGREES) * (1.0 if rng.random() < 0.5 else -1.0)
    stray_rng = stray_stream(seed, scan)
    photo_rgb, strays = f2d_photo(
        sc.mesh, texture, sc.camera, stray_rng, exact=False, degrees=degrees
    )
    centre = list(face_centre(sc.mesh, sc.camera))
    return photo_rgb, strays, {"kind": plant.kind, "degrees": degrees, "centre_px": centre}


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
