"""Dataset files written by hand from the published format facts, never by the generator.

The sample generator and the readers must not agree with each other by sharing code; these
tiny files are a third, independent rendering of docs/formats.md that the reader tests parse.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image

ZMIN = -1e9

# Commas sometimes, sometimes not; points split across lines; two triangles, a quad and a
# pentagon; texture coordinates indexed separately (7 texture points for 8 vertices).
TINY_VRML = """#VRML V2.0 utf8
DEF F0001_AN01WH Transform {
  children [
    Shape {
      appearance Appearance { texture ImageTexture { url "F0001_AN01WH_F3D.bmp" } }
      geometry IndexedFaceSet {
        ccw TRUE solid FALSE convex TRUE creaseAngle 0.5
        coord Coordinate { point [ 0 0 0, 1 0 0, 1 1 0,
           0 1 0, 2 0 0
           2 1 1.5,1.5 2 0 0.5 2 -2e1 ] }
        coordIndex [ 0, 1, 2, -1, 0 2 3 -1
          1,4,5,2,-1, 3 2 5 6 7 -1 ]
        texCoord TextureCoordinate { point [ 0 0, 0.5 0, 0.5 1, 0 1, 1 0, 1 1, 0.5 0.5 ] }
        texCoordIndex [ 0 1 2 -1 0 2 3 -1 6 4 5 2 -1
          3 2 5 6 0 ]
      }
    }
  ]
}
Viewpoint { position 0 0 100 description "front" }
"""

LM3 = """# 3D Landmark File

3 landmarks:
Outer left eyebrow
-40.5 32.25 10.0

Nose tip
0.0 -5.5 101.125
Chin middle
0.5 -80 40
"""

LM2 = """# 2D Landmark File

3 landmarks

Labels:
Outer left eyebrow
Nose tip
Chin middle

2D Image coordinates:
100.0 120.5
181 301
182 402.25
"""


def bnt_bytes(nrows=2, ncols=3, name=b"bs000_N_N_0.png", count=None, planes=None) -> bytes:
    """uint16 nrows, uint16 ncols, float64 zmin, uint16 len, name, uint32 N, N float64."""
    n = nrows * ncols
    if planes is None:
        planes = np.arange(5 * n, dtype=np.float64)
    head = struct.pack("<HHdH", nrows, ncols, ZMIN, len(name)) + name
    values = struct.pack(f"<{len(planes)}d", *planes)
    return head + struct.pack("<I", 5 * n if count is None else count) + values


def image(path: Path, size=(8, 8), value=90, mode="RGB") -> Path:
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    dtype = np.uint16 if mode == "I;16" else np.uint8
    Image.fromarray(np.full(shape, value, dtype=dtype)).save(path)
    return path


def bu3dfe_scan(folder: Path, stem: str, photo: bool = True) -> None:
    """One BU-3DFE scan's F3D.wrl, F3D.bmp, F3D.bnd and (optionally) F2D.bmp."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}_F3D.wrl").write_text(TINY_VRML)
    image(folder / f"{stem}_F3D.bmp")
    (folder / f"{stem}_F3D.bnd").write_text("0\t0\t0\t0\n5\t2\t1\t1.5\n")
    if photo:
        image(folder / f"{stem}_F2D.bmp", size=(16, 16))


def bosphorus_scan(folder: Path, name: str, grid: bytes | None = None) -> None:
    """One Bosphorus scan's .bnt, .png, .lm2 and .lm3."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.bnt").write_bytes(grid or bnt_bytes(name=f"{name}.png".encode()))
    image(folder / f"{name}.png", size=(18, 12))
    (folder / f"{name}.lm2").write_text(LM2)
    (folder / f"{name}.lm3").write_text(LM3)


def rgbd_pair(root: Path, dataset: str, class_dir: str, stem: str, depth_mode="I;16") -> None:
    """One CalD3r & MenD3s RGB crop and its 16-bit depth, in the default layout."""
    for kind in ("RGB", "DEPTH"):
        (root / dataset / class_dir / kind).mkdir(parents=True, exist_ok=True)
    image(root / dataset / class_dir / "RGB" / f"{stem}_Color.png", size=(6, 6))
    depth = root / dataset / class_dir / "DEPTH" / f"{stem}_Depth.png"
    image(depth, size=(6, 6), value=4000 if depth_mode == "I;16" else 40, mode=depth_mode)


# The real Bosphorus scan measured (docs/formats.md): a 1116 x 1398 portrait, a 186 x 233 grid, and
# .lm2 points 0.4-4.2 px from their .lm3 vertex's image position, median 2.6, 7 of 22 above 3.
REAL_SIZE = (1116, 1398)
REAL_GAPS_PX = (0.4, 0.9, 1.3, 1.6, 1.9, 2.1, 2.2, 2.3, 2.4, 2.5, 2.55)
REAL_GAPS_PX += (2.65, 2.7, 2.8, 2.9, 3.1, 3.3, 3.5, 3.7, 3.9, 4.0, 4.2)
BOSPHORUS_LABELS = (
    "Outer left eyebrow", "Middle left eyebrow", "Inner left eyebrow", "Inner right eyebrow",
    "Middle right eyebrow", "Outer right eyebrow", "Outer left eye corner",
    "Inner left eye corner", "Inner right eye corner", "Outer right eye corner",
    "Nose saddle left", "Nose saddle right", "Left nose peak", "Nose tip", "Right nose peak",
    "Left mouth corner", "Upper lip outer middle", "Right mouth corner",
    "Upper lip inner middle", "Lower lip inner middle", "Lower lip outer middle", "Chin middle",
)  # fmt: skip


def real_bosphorus_scan(
    folder: Path,
    name: str,
    size=REAL_SIZE,
    step=6,
    gaps=REAL_GAPS_PX,
    shift=(0.0, 0.0),
    lm2_override=None,
) -> dict:
    """A Bosphorus scan at a real size: grid every `step` pixels (u = (step*c+1)/W,
    v = (H-1-step*r)/H), an elliptic face, 22 .lm3 points on grid vertices and .lm2 points
    `gaps` px from them (diagonal-ish directions), plus `shift`. Returns the .lm2 pixels."""
    width, height = size
    ncols, nrows = width // step, height // step
    r, c = np.mgrid[0:nrows, 0:ncols]
    cols, rows = step * c + 1.0, height - 1.0 - step * r
    scale = 5.8 * min(width / 1116, height / 1398)  # px per mm
    x, y = (cols - width / 2) / scale, (height / 2 - rows) / scale
    face = ((cols - width / 2) / (0.34 * width)) ** 2 + ((rows - height / 2) / (0.36 * height)) ** 2
    valid = face < 1
    z = np.where(valid, 100.0 - (x**2 + y**2) / 300.0, ZMIN)
    x, y = np.where(valid, x, ZMIN), np.where(valid, y, ZMIN)
    planes = np.concatenate([p.ravel() for p in (x, y, z, cols / width, rows / height)])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.bnt").write_bytes(
        bnt_bytes(nrows, ncols, f"{name}.png".encode(), None, planes)
    )
    image(folder / f"{name}.png", size=size, value=70)
    picks = [
        (nrows // 2 + dr, ncols // 2 + dc)
        for dr in (-30, -15, 0, 15, 30)
        for dc in (-20, -10, 0, 10, 20)
    ]
    picks = picks[: len(BOSPHORUS_LABELS)]
    angles = np.radians(45.0 + 90.0 * np.arange(len(picks)) + 7.0 * np.arange(len(picks)) % 30)
    gap = np.resize(np.asarray(gaps, float), len(picks))
    points2 = [
        (cols[p] + g * np.cos(a) + shift[0], rows[p] + g * np.sin(a) + shift[1])
        for p, g, a in zip(picks, gap, angles, strict=True)
    ]
    if lm2_override is not None:
        points2 = lm2_override
    lm3 = ["# 3D Landmark File", "", f"{len(picks)} landmarks:"]
    for label, p in zip(BOSPHORUS_LABELS, picks, strict=False):
        lm3 += [label, " ".join(repr(float(v[p])) for v in (x, y, z))]
    lm2 = ["# 2D Landmark File", "", f"{len(picks)} landmarks", "", "Labels:", *BOSPHORUS_LABELS]
    lm2 += ["", "2D Image coordinates:"] + [f"{float(u)!r} {float(v)!r}" for u, v in points2]
    (folder / f"{name}.lm3").write_text("\n".join(lm3) + "\n")
    (folder / f"{name}.lm2").write_text("\n".join(lm2) + "\n")
    return {"points2": points2, "scale": scale, "valid": int(valid.sum())}
