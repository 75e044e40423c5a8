"""The files of one BU-3DFE scan: F3D.wrl, F3D.bnd, F3D.bmp, F2D.bmp and a few RAW stubs.

The VRML text varies its separators, line breaks and indents from scan to scan, so the readers
meet every layout the real files use; the .bnd repeats the .wrl's vertex strings exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer3d_bench.synthetic.bu3dfe.mesh import GridMesh, texture_image
from fer3d_bench.synthetic.bu3dfe.misalign import planted_photo
from fer3d_bench.synthetic.bu3dfe.photo import PHOTO_SIZE, f2d_photo, face_centre
from fer3d_bench.synthetic.bu3dfe.scan import BuScan, scene, stray_stream
from fer3d_bench.synthetic.common import Options, save_rgb, write_text
from fer3d_bench.synthetic.face import Face, landmarks

VERTEX_FMT = "%.6f %.6f %.6f"  # the .bnd repeats these exact strings


def _section(
    pieces: list[str], values: list, style: str, rng: np.random.Generator, indent: str
) -> str:
    """Items (printf pieces filled from `values`) with the commas and line breaks of `style`."""
    if style == "comma_lines":
        text = (",\n" + indent).join(pieces)
    elif style == "bare_lines":
        text = ("\n" + indent).join(pieces)
    else:
        k = int(rng.integers(3, 9))
        text = (",\n" + indent).join(", ".join(pieces[i : i + k]) for i in range(0, len(pieces), k))
    trailing = "," if style != "bare_lines" and rng.random() < 0.5 else ""
    return indent + text % tuple(values) + trailing


def _index_pieces(sizes: np.ndarray, style: str) -> list[str]:
    sep = " " if style == "bare_lines" else ", "
    fmt = {n: sep.join(["%d"] * n + ["-1"]) for n in (3, 4, 5)}
    return [fmt[n] for n in sizes.tolist()]


def vrml_text(stem: str, mesh: GridMesh, rng: np.random.Generator) -> str:
    styles = ("comma_lines", "packed", "bare_lines")
    pick = lambda: styles[int(rng.integers(3))]  # noqa: E731
    ind = "\t\t\t\t\t" if rng.random() < 0.5 else "          "
    s_pt, s_ci, s_tc, s_ti = pick(), pick(), pick(), pick()
    points = _section(
        [VERTEX_FMT] * len(mesh.vertices), mesh.vertices.ravel().tolist(), s_pt, rng, ind
    )
    coord_index = _section(
        _index_pieces(mesh.sizes, s_ci), mesh.vertex_ids.tolist(), s_ci, rng, ind
    )
    tex_points = _section(
        ["%.6f %.6f"] * len(mesh.texcoords), mesh.texcoords.ravel().tolist(), s_tc, rng, ind
    )
    tex_index = _section(_index_pieces(mesh.sizes, s_ti), mesh.tex_ids.tolist(), s_ti, rng, ind)
    flags = (
        "ccw TRUE solid FALSE convex TRUE creaseAngle 0.5"
        if rng.random() < 0.5
        else "ccw TRUE\n      solid FALSE\n      convex TRUE\n      creaseAngle 0.5"
    )
    return "\n".join(
        [
            "#VRML V2.0 utf8",
            "",
            f"# fer3d-bench procedural sample: {stem}",
            f"DEF {stem} Transform {{",
            "  children [",
            "    Shape {",
            "      appearance Appearance {",
            f'        texture ImageTexture {{ url "{stem}.bmp" }}',
            "      }",
            "      geometry IndexedFaceSet {",
            f"      {flags}",
            "      coord Coordinate {",
            "        point [",
            points,
            "        ]",
            "      }",
            "      coordIndex [",
            coord_index,
            "      ]",
            "      texCoord TextureCoordinate {",
            "        point [",
            tex_points,
            "        ]",
            "      }",
            "      texCoordIndex [",
            tex_index,
            "      ]",
            "      }",
            "    }",
            "  ]",
            "}",
            'Viewpoint { position 0 0 500 fieldOfView 0.5 description "front" }',
            'Viewpoint { position 350 0 350 orientation 0 1 0 0.785 description "right" }',
            'Viewpoint { position -350 0 350 orientation 0 1 0 -0.785 description "left" }',
            "",
        ]
    )


# 83 landmarks: left eye 0-7, right eye 8-15, left brow 16-25, right brow 26-35, nose 36-47,
# mouth 48-67, contour 68-82 ("left" = image left, smaller x).
def _eye(tag: str) -> list[str]:
    first, last = (0, 4) if tag == "l" else (4, 0)
    step = 1 if first < last else -1
    ups = [f"eye_{tag}_up{k}" for k in range(first, last + step, step)]
    lows = [f"eye_{tag}_low{k}" for k in range(last - step, first, -step)]
    return ups + lows


LANDMARK_ORDER = (
    _eye("l")
    + _eye("r")
    + [f"brow_l_up{k}" for k in range(5)]
    + [f"brow_l_low{k}" for k in range(4, -1, -1)]
    + [f"brow_r_up{k}" for k in range(5)]
    + [f"brow_r_low{k}" for k in range(4, -1, -1)]
    + [
        "nose_saddle_l",
        "nose_bridge",
        "nose_saddle_r",
        "nose_alatop_l",
        "nose_ala_l",
        "nose_nostril_l",
        "nose_subnasale",
        "nose_nostril_r",
        "nose_ala_r",
        "nose_alatop_r",
        "nose_tip",
        "nose_saddle",
    ]
    + [f"mouth_up_out{k}" for k in range(7)]
    + [f"mouth_low_out{k}" for k in range(5, 0, -1)]
    + [
        "mouth_up_in0",
        "mouth_up_in2",
        "mouth_up_in3",
        "mouth_up_in4",
        "mouth_up_in6",
        "mouth_low_in4",
        "mouth_low_in3",
        "mouth_low_in2",
    ]
    + [f"contour{k}" for k in range(15)]
)
assert len(LANDMARK_ORDER) == 83


def bnd_text(face: Face, mesh: GridMesh, offset: np.ndarray) -> str:
    """83 lines `index<TAB>x<TAB>y<TAB>z`: the mesh vertex nearest to each feature point."""
    pts = landmarks(face)
    xy = np.array([pts[name] for name in LANDMARK_ORDER]) + offset[:2]
    nearest = mesh.nearest_vertices(xy)
    fmt = "%d\t" + VERTEX_FMT.replace(" ", "\t") + "\n"
    return "".join(fmt % (i, *mesh.vertices[i].tolist()) for i in nearest.tolist())


def write_scan(scan: BuScan, root: Path, seed: int, options: Options) -> tuple[str, dict]:
    """Write one scan's files; return its ground-truth key and entry."""
    sc = scene(scan, seed, options.exact)
    folder = root / scan.subject
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / scan.stem
    write_text(Path(f"{stem}_F3D.wrl"), vrml_text(f"{scan.stem}_F3D", sc.mesh, sc.rng))
    write_text(Path(f"{stem}_F3D.bnd"), bnd_text(sc.face, sc.mesh, sc.offset))
    texture = texture_image(sc.face, sc.mesh, sc.offset)
    save_rgb(Path(f"{stem}_F3D.bmp"), texture, "BMP")
    planted = None
    if options.plant is not None:
        photo_rgb, strays, planted = planted_photo(scan, sc, texture, seed, options.plant)
    else:
        stray_rng = sc.rng if options.exact else stray_stream(seed, scan)
        photo_rgb, strays = f2d_photo(sc.mesh, texture, sc.camera, stray_rng, options.exact)
    save_rgb(Path(f"{stem}_F2D.bmp"), photo_rgb, "BMP")
    if scan.raw:
        _write_raw(stem)
    centre = (PHOTO_SIZE - 1) / 2
    col, row = face_centre(sc.mesh, sc.camera)
    key = f"{scan.subject}/{scan.stem}_F3D.wrl"
    return key, {
        "subject": scan.subject,
        "sex": scan.subject[0],
        "class": scan.cls,
        "intensity": scan.level,
        "strength": sc.strength,
        "f2d_scale": sc.camera[0],
        "f2d_tx": sc.camera[1],
        "f2d_ty": sc.camera[2],
        "n_vertices": len(sc.mesh.vertices),
        "n_faces_polygons": len(sc.mesh.sizes),
        "n_faces_triangles": sc.mesh.n_triangles,
        "centre_offset_px": [col - centre, row - centre],
        "stray_pixels": strays,
        "planted": planted,
    }


def _write_raw(stem: Path) -> None:
    """Stubs: the readers must skip RAW files, so their content does not matter."""
    write_text(
        Path(f"{stem}_RAW.wrl"),
        "#VRML V2.0 utf8\n# fer3d-bench sample: uncropped RAW scan stub (not a real mesh)\n",
    )
    write_text(Path(f"{stem}_RAW.pse"), "0 0.0 0.0\n1 0.0 0.0\n")
