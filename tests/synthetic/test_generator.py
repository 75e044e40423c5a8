"""The sample generator's own promises, checked without the project's readers.

Every parser here is written from docs/formats.md independently of `fer3d_bench.formats`, so the
generator is never checked against code it shares with the readers. Two tiny samples: the
default, irregular one (image sizes, clicked landmarks, strays, planted misalignments), and an
exact one for the properties only exact mode promises.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer3d_bench.synthetic import SampleConfig, make_sample
from fer3d_bench.synthetic import generate as generate_module
from fer3d_bench.synthetic.common import rng_for
from fer3d_bench.synthetic.face import (
    CLASSES,
    Face,
    Grid,
    expression,
    jitter_identity,
    photo,
    sample_identity,
)

TINY = SampleConfig(
    seed=3,
    bu3dfe_subjects=2,
    bosphorus_subjects=1,
    cald3r_subjects=1,
    mend3s_subjects=1,
    cald3r_samples_per_class=1,
)
BU_KINDS = ("F3D.wrl", "F3D.bmp", "F3D.bnd", "F2D.bmp")
BOSPHORUS_EXTS = (".bnt", ".png", ".lm2", ".lm3")
YELLOW = np.array([255, 255, 0])
BOSPHORUS_LABELS = [
    "Outer left eyebrow",
    "Middle left eyebrow",
    "Inner left eyebrow",
    "Inner right eyebrow",
    "Middle right eyebrow",
    "Outer right eyebrow",
    "Outer left eye corner",
    "Inner left eye corner",
    "Inner right eye corner",
    "Outer right eye corner",
    "Nose saddle left",
    "Nose saddle right",
    "Left nose peak",
    "Nose tip",
    "Right nose peak",
    "Left mouth corner",
    "Upper lip outer middle",
    "Right mouth corner",
    "Upper lip inner middle",
    "Lower lip inner middle",
    "Lower lip outer middle",
    "Chin middle",
]


LATTICE = 6  # Bosphorus grid pitch in image pixels
SNAP_BOUND = 3 * np.sqrt(2)  # half the lattice diagonal: the farthest a click is from a vertex
CLICK_SIGMA = 0.5  # the generator's stated annotation noise (px per axis)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """The default, irregular sample."""
    out = tmp_path_factory.mktemp("gen") / "sample"
    return out, make_sample(out, TINY, workers=2, progress=False)


@pytest.fixture(scope="module")
def root(sample) -> Path:
    return sample[0]


@pytest.fixture(scope="module")
def truth(root) -> dict:
    return json.loads((root / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def exact_root(tmp_path_factory) -> Path:
    """The exact sample: every file exactly on its own grid, nothing planted."""
    out = tmp_path_factory.mktemp("gen-exact") / "sample"
    config = replace(TINY, exact=True, bu3dfe_subjects=1, cald3r_subjects=0, mend3s_subjects=0)
    make_sample(out, config, workers=2, progress=False)
    return out


@pytest.fixture(scope="module")
def exact_truth(exact_root) -> dict:
    return json.loads((exact_root / "ground_truth.json").read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------
# layout, determinism, atomicity


def test_counts_and_names(sample):
    root, counts = sample
    assert counts == {"bu3dfe": 50, "bosphorus": 21, "cald3r-mend3s": 14}
    assert sorted(p.name for p in (root / "bu3dfe").iterdir()) == ["F0001", "M0001"]
    for subject in ("F0001", "M0001"):
        names = sorted(p.name for p in (root / "bu3dfe" / subject).iterdir())
        wrl = [n for n in names if n.endswith("_F3D.wrl")]
        assert len(wrl) == 25
        codes = {
            re.fullmatch(rf"{subject}_([A-Z]{{2}}\d\d)([A-Z]{{2}})_F3D\.wrl", n)[1] for n in wrl
        }
        assert codes == {"NE00"} | {
            f"{e}{i:02d}" for e in ("AN", "DI", "FE", "HA", "SA", "SU") for i in (1, 2, 3, 4)
        }
        eth = {re.fullmatch(rf"{subject}_[A-Z]{{2}}\d\d([A-Z]{{2}})_F3D\.wrl", n)[1] for n in wrl}
        assert len(eth) == 1 and eth <= {"WH", "AE", "BL", "IN", "LA", "AM"}
        for name in wrl:
            stem = name[: -len("_F3D.wrl")]
            assert all(f"{stem}_{kind}" in names for kind in BU_KINDS)
        raw = [n for n in names if "_RAW." in n]
        assert sorted(r.rsplit(".", 1)[1] for r in raw) == ["pse", "wrl"]
        assert len(names) == 25 * 4 + 2

    bos = sorted(p.name for p in (root / "bosphorus" / "bs000").iterdir())
    assert len(bos) == 21 * 4
    for kind in ("N_N_0", "E_HAPPY_0", "LFAU_12L_0", "CAU_A22A25_0", "YR_R10_0", "IGN_IGN_0"):
        assert all(f"bs000_{kind}{ext}" in bos for ext in BOSPHORUS_EXTS)

    for folder, subject in (("CalD3r", "001"), ("MenD3s", "01")):
        for cls in CLASSES:
            rgb = sorted((root / "cald3r-mend3s" / folder / cls.capitalize() / "RGB").iterdir())
            depth = sorted((root / "cald3r-mend3s" / folder / cls.capitalize() / "DEPTH").iterdir())
            assert len(rgb) == len(depth) == 1
            assert re.fullmatch(rf"F_{subject}_\d{{4}}_{cls}_Color\.png", rgb[0].name)
            assert depth[0].name == rgb[0].name.replace("_Color", "_Depth")


def test_same_seed_same_bytes_whatever_the_workers_and_listing(tmp_path, root, truth, monkeypatch):
    """Fewer scans, in one process, give exactly the same bytes for the scans they share."""
    all_tasks = generate_module._tasks
    monkeypatch.setattr(generate_module, "_tasks", lambda config: all_tasks(config)[::-3])
    again = tmp_path / "again"
    make_sample(again, replace(TINY, mend3s_subjects=0), workers=1, progress=False)
    first, second = _files(root), _files(again)
    assert set(second) <= set(first) and len(second) > 50
    assert [k for k in second if k != "ground_truth.json" and first[k] != second[k]] == []
    truth_again = json.loads(second["ground_truth.json"])
    for dataset in ("bu3dfe", "bosphorus", "cald3r-mend3s"):
        assert truth_again[dataset] == {k: truth[dataset][k] for k in truth_again[dataset]}


def test_seed_changes_the_data(tmp_path):
    config = SampleConfig(
        seed=0,
        bu3dfe_subjects=0,
        bosphorus_subjects=0,
        cald3r_subjects=1,
        mend3s_subjects=0,
        cald3r_samples_per_class=1,
    )
    make_sample(tmp_path / "a", config, workers=1, progress=False)
    make_sample(tmp_path / "b", replace(config, seed=1), workers=1, progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a if k.endswith(".png"))


def test_refuses_a_non_empty_target_and_overwrites_atomically(tmp_path):
    config = SampleConfig(
        bu3dfe_subjects=0,
        bosphorus_subjects=0,
        cald3r_subjects=1,
        mend3s_subjects=0,
        cald3r_samples_per_class=1,
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        make_sample(out, config, workers=1, progress=False)
    assert (out / "keep.txt").read_text() == "precious"
    make_sample(out, config, workers=1, progress=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "ground_truth.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary siblings left


def test_a_failure_leaves_the_target_untouched(tmp_path, monkeypatch):
    config = SampleConfig(
        bu3dfe_subjects=0,
        bosphorus_subjects=0,
        cald3r_subjects=1,
        mend3s_subjects=0,
        cald3r_samples_per_class=1,
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(generate_module._WRITERS, "cald3r-mend3s", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        make_sample(out, config, workers=1, progress=False, overwrite=True)
    assert (out / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---------------------------------------------------------------------------------------------
# ground truth


def test_ground_truth_keys_match_files(root, truth):
    assert truth["classes"] == list(CLASSES)
    assert truth["pixel_convention"].startswith("pixel (row i, col j) is centred at")
    assert truth["generator"]["seed"] == TINY.seed
    assert truth["generator"]["config"]["bu3dfe_subjects"] == 2
    bu = {p.relative_to(root / "bu3dfe").as_posix() for p in (root / "bu3dfe").rglob("*_F3D.wrl")}
    assert set(truth["bu3dfe"]) == bu
    bos = {
        p.relative_to(root / "bosphorus").as_posix() for p in (root / "bosphorus").rglob("*.bnt")
    }
    assert set(truth["bosphorus"]) == bos
    cal = root / "cald3r-mend3s"
    rgb = {p.relative_to(cal).as_posix() for p in cal.rglob("*_Color.png")}
    assert set(truth["cald3r-mend3s"]) == rgb
    for key, entry in truth["cald3r-mend3s"].items():
        assert (cal / entry["depth_file"]).is_file()
        assert entry["depth_unit_mm"] == 0.125
        assert entry["class"] in key and entry["dataset"] in ("cald3r", "mend3s")
    labels = {e["class"] for e in truth["bosphorus"].values()}
    assert labels == set(CLASSES) | {None}
    assert truth["bosphorus"]["bs000/bs000_LFAU_12_0.bnt"]["class"] == "happiness"
    assert truth["bosphorus"]["bs000/bs000_LFAU_12L_0.bnt"]["class"] is None
    assert truth["bosphorus"]["bs000/bs000_LFAU_12_0.bnt"]["code"] == "LFAU_12"
    entry = truth["bu3dfe"][next(k for k in truth["bu3dfe"] if "_SU03" in k)]
    assert entry["class"] == "surprise" and entry["intensity"] == 3
    assert 2.3 <= entry["f2d_scale"] <= 2.9
    config = truth["generator"]["config"]
    assert config["exact"] is False and config["misaligned"] == TINY.misaligned == 2
    stated = truth["irregularities"]
    assert stated["planted_per_dataset"] == TINY.misaligned
    assert stated["bosphorus"]["lm2_click_noise_sigma_px"] == CLICK_SIGMA
    assert stated["bosphorus"]["image_size"]["real_size_wh"] == [1116, 1398]
    assert stated["bu3dfe"]["planted_kinds_in_turn"] == ["photo-rotated", "photo-swapped"]
    for entry in truth["bosphorus"].values():
        assert isinstance(entry["width"], int) and isinstance(entry["height"], int)
        assert isinstance(entry["lm2_gap_px_median"], float)
        assert isinstance(entry["lm2_gap_px_max"], float)
        assert isinstance(entry["missing_landmarks"], list)
        assert entry["planted"] is None or entry["planted"]["kind"] in (
            "lm2-shifted",
            "lm2-swapped",
        )
    for entry in truth["bu3dfe"].values():
        assert isinstance(entry["stray_pixels"], int) and len(entry["centre_offset_px"]) == 2
        assert entry["planted"] is None or entry["planted"]["kind"] in (
            "photo-rotated",
            "photo-swapped",
        )


def test_exact_truth_states_nothing_irregular(exact_truth):
    assert exact_truth["generator"]["config"]["exact"] is True
    assert exact_truth["irregularities"] is None
    for entry in exact_truth["bosphorus"].values():
        assert (entry["width"], entry["height"]) == (360, 480) and entry["planted"] is None
        assert entry["lm2_gap_px_median"] == entry["lm2_gap_px_max"] == 0.0
        assert len(entry["missing_landmarks"]) == 22 - entry["n_landmarks"]
    for entry in exact_truth["bu3dfe"].values():
        assert entry["planted"] is None and 3 <= entry["stray_pixels"] <= 10
        assert max(abs(d) for d in entry["centre_offset_px"]) <= 20 + 1e-9


@pytest.mark.parametrize(
    "bad", [{"misaligned": -1}, {"misaligned": 1.5}, {"misaligned": True}, {"exact": "yes"}]
)
def test_config_refuses_bad_irregularity_settings(bad):
    with pytest.raises(ValueError, match="SampleConfig"):
        SampleConfig(**bad)


# ---------------------------------------------------------------------------------------------
# BU-3DFE


def _vrml_block(text: str, opener: str) -> str:
    start = text.index("[", text.index(opener))
    return text[start + 1 : text.index("]", start)]


def _read_vrml(path: Path):
    text = path.read_text()
    assert text.startswith("#VRML V2.0 utf8")
    points = np.array(_vrml_block(text, "coord Coordinate").replace(",", " ").split(), float)
    tex = np.array(_vrml_block(text, "texCoord TextureCoordinate").replace(",", " ").split(), float)

    def polygons(opener: str) -> list[list[int]]:
        flat = [int(v) for v in _vrml_block(text, opener).replace(",", " ").split()]
        out, cur = [], []
        for v in flat:
            if v == -1:
                out.append(cur)
                cur = []
            else:
                cur.append(v)
        assert cur == []
        return out

    return (
        text,
        points.reshape(-1, 3),
        tex.reshape(-1, 2),
        polygons("coordIndex ["),
        polygons("texCoordIndex ["),
    )


def test_vrml_polygons_texcoords_and_truth_counts(root, truth):
    styles = set()
    for key, entry in list(truth["bu3dfe"].items())[:4]:
        text, v, tex, polys, tpolys = _read_vrml(root / "bu3dfe" / key)
        texture = root / "bu3dfe" / key.replace(".wrl", ".bmp")
        assert 'url "' + texture.name + '"' in text
        assert struct.unpack("<H", texture.read_bytes()[28:30])[0] == 24
        assert "Viewpoint" in text and "ccw TRUE" in text
        assert len(v) == entry["n_vertices"] and 7000 < len(v) < 9000
        assert len(polys) == entry["n_faces_polygons"] and 13000 < len(polys) < 17000
        assert sum(len(p) - 2 for p in polys) == entry["n_faces_triangles"]
        sizes = np.bincount([len(p) for p in polys])
        assert sizes[4] > 200 and sizes[5] >= 2 and sizes.size == 6
        assert len(tex) > len(v) and [len(p) for p in tpolys] == [len(p) for p in polys]
        assert polys != tpolys and max(max(p) for p in tpolys) == len(tex) - 1
        assert set(np.concatenate([np.array(p) for p in polys])) == set(range(len(v)))
        # every fan triangle is counter-clockwise seen from +z, and fans cover the polygon
        for poly in (p for p in polys if len(p) > 3):
            xy = v[poly, :2]
            fan = [abs(_area(xy[[0, k, k + 1]])) for k in range(1, len(poly) - 1)]
            assert min(_area(xy[[0, k, k + 1]]) for k in range(1, len(poly) - 1)) > 0
            assert sum(fan) == pytest.approx(_area(xy), rel=1e-9)
        # texture coordinates of each corner agree with the x, y of its vertex
        corners_v = np.concatenate([np.array(p) for p in polys])
        corners_t = np.concatenate([np.array(p) for p in tpolys])
        uv, xy = tex[corners_t], v[corners_v, :2]
        for k in (0, 1):  # u from x, v from y: one affine map for the whole mesh
            slope, intercept = np.polyfit(xy[:, k], uv[:, k], 1)
            assert slope > 0 and np.abs(slope * xy[:, k] + intercept - uv[:, k]).max() < 1e-5
    extent = v.max(0) - v.min(0)
    assert 130 < extent[0] < 160 and 170 < extent[1] < 205 and 80 < extent[2] < 115
    tip = v[v[:, 2].argmax()]  # the nose tip: largest z, near the middle of the face
    assert abs(tip[0] - (v[:, 0].max() + v[:, 0].min()) / 2) < 10
    for path in (root / "bu3dfe").rglob("*_F3D.wrl"):
        with path.open() as f:
            head = f.read(3000)
        first_point = head.split("point [\n", 1)[1].split("\n", 1)[0]
        styles.add((first_point.count(","), len(first_point.split())))
    assert len(styles) > 1  # comma and line-break styles vary between files


def _area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def test_bnd_points_are_mesh_vertices(root, truth):
    key = next(iter(truth["bu3dfe"]))
    text, v, *_ = _read_vrml(root / "bu3dfe" / key)
    lines = (root / "bu3dfe" / key.replace(".wrl", ".bnd")).read_text().splitlines()
    assert len(lines) == 83
    written = {}
    for chunk in _vrml_block(text, "coord Coordinate").replace(",", "\n").splitlines():
        if chunk.strip():
            written[len(written)] = chunk.split()
    for line in lines:
        index, *xyz = line.split("\t")
        assert xyz == written[int(index)]


def _project(v: np.ndarray, entry: dict) -> tuple[np.ndarray, np.ndarray]:
    """Photo column and row of each vertex under the scan's own (unrotated) F2D camera."""
    s, tx, ty = entry["f2d_scale"], entry["f2d_tx"], entry["f2d_ty"]
    return s * v[:, 0] + tx, -s * v[:, 1] + ty


def _turn(col, row, centre, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions turned `degrees` about `centre`, clockwise on screen (rows point down)."""
    (cc, rc), t = centre, np.radians(degrees)
    dc, dr = col - cc, row - rc
    return cc + np.cos(t) * dc - np.sin(t) * dr, rc + np.sin(t) * dc + np.cos(t) * dr


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def _ring(size: int) -> np.ndarray:
    """The photo's outermost rows and columns, where stray pixels go."""
    ring = np.zeros((size, size), bool)
    ring[[0, -1], :] = ring[:, [0, -1]] = True
    return ring


def _rasterise(col: np.ndarray, row: np.ndarray, polys: list[list[int]], size: int):
    """Pixel centres covered by the fan-triangulated polygons, given each vertex's photo column
    and row (an independent rasteriser)."""
    tris = np.array([(p[0], p[k], p[k + 1]) for p in polys for k in range(1, len(p) - 1)])
    c, r = col[tris], row[tris]  # (n, 3)
    c0, r0 = np.floor(c.min(1)).astype(int), np.floor(r.min(1)).astype(int)
    span = int(max(np.ceil(c.max(1) - c0).max(), np.ceil(r.max(1) - r0).max())) + 1
    covered = np.zeros((size, size), bool)
    for dc in range(span + 1):
        for dr in range(span + 1):
            pc, pr = c0 + dc, r0 + dr
            inside = np.ones(len(tris), bool)
            for a, b in ((0, 1), (1, 2), (2, 0)):
                # image rows point down, so the mesh's counter-clockwise triangles turn clockwise
                edge = (c[:, b] - c[:, a]) * (pr - r[:, a]) - (r[:, b] - r[:, a]) * (pc - c[:, a])
                inside &= edge <= 1e-9
            ok = inside & (pc >= 0) & (pc < size) & (pr >= 0) & (pr < size)
            covered[pr[ok], pc[ok]] = True
    return covered


def test_f2d_photo_silhouette_is_the_projected_mesh(exact_root, exact_truth):
    root, truth = exact_root, exact_truth
    for key in [k for k in truth["bu3dfe"] if "_NE00" in k or "_SU04" in k]:
        entry = truth["bu3dfe"][key]
        path = root / "bu3dfe" / key.replace("_F3D.wrl", "_F2D.bmp")
        raw = path.read_bytes()
        assert raw[:2] == b"BM" and struct.unpack("<H", raw[28:30])[0] == 24
        img = np.array(Image.open(path))
        assert img.shape == (512, 512, 3)
        _, v, _, polys, _ = _read_vrml(root / "bu3dfe" / key)
        s, tx, ty = entry["f2d_scale"], entry["f2d_tx"], entry["f2d_ty"]
        face = img.any(axis=2)
        strays = np.zeros_like(face)
        strays[:, 0] = strays[-1, :] = True
        assert (img[strays & face] == YELLOW).all() and (strays & face).sum() >= 3
        assert (strays & face).sum() == entry["stray_pixels"] and not (
            face & _ring(512) & ~strays
        ).any()
        face &= ~strays
        mesh = _rasterise(*_project(v, entry), polys, 512)
        iou = (face & mesh).sum() / (face | mesh).sum()
        assert iou > 0.999, f"{key}: silhouette IoU {iou:.5f}"
        col, row = np.round(s * v[:, 0] + tx).astype(int), np.round(-s * v[:, 1] + ty).astype(int)
        assert face[row, col].mean() > 0.97
        rows, cols = np.nonzero(face)
        centre = (rows.mean() - 255.5, cols.mean() - 255.5)
        assert max(abs(centre[0]), abs(centre[1])) < 40


def test_f2d_strays_on_every_border_never_on_the_face(root, truth):
    ring, offsets = _ring(512), []
    for key, entry in truth["bu3dfe"].items():
        img = np.array(Image.open(root / "bu3dfe" / key.replace("_F3D.wrl", "_F2D.bmp")))
        lit = img.any(axis=2)
        strays = lit & ring
        assert strays.sum() == entry["stray_pixels"]
        assert (img[strays].max(axis=1) > 40).all()
        for edge in (img[0], img[-1], img[:, 0], img[:, -1]):  # bright ones, not only yellow
            assert (
                edge.any(axis=1).sum() >= 2
                and (edge.any(axis=1) & (edge != YELLOW).any(axis=1)).any()
            )
        offsets.append(entry["centre_offset_px"])
        if entry["planted"] is None and ("_NE00" in key or "_HA04" in key):
            _, v, _, polys, _ = _read_vrml(root / "bu3dfe" / key)
            col, row = _project(v, entry)
            mesh = _rasterise(col, row, polys, 512)
            assert not (mesh & ring).any()  # the face keeps a margin: strays never touch it
            assert _iou(lit & ~ring, mesh) > 0.999, key
            centre = np.array([col.min() + col.max(), row.min() + row.max()]) / 2 - 255.5
            assert centre == pytest.approx(entry["centre_offset_px"], abs=1e-6)
    assert np.abs(offsets).max() > 20  # off centre by more than the exact sample's 20 px


# ---------------------------------------------------------------------------------------------
# Bosphorus


def _read_bnt(path: Path):
    raw = path.read_bytes()
    nrows, ncols, zmin, n_name = struct.unpack_from("<HHdH", raw, 0)
    name = raw[14 : 14 + n_name].decode()
    (n,) = struct.unpack_from("<I", raw, 14 + n_name)
    data = np.frombuffer(raw, "<f8", offset=18 + n_name)
    return nrows, ncols, zmin, name, n, len(raw) - 18 - n_name, data


def _read_lm3(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    assert lines[:2] == ["# 3D Landmark File", ""]
    count = int(re.fullmatch(r"(\d+) landmarks:", lines[2])[1])
    labels = lines[3::2][:count]
    xyz = np.array([[float(t) for t in ln.split()] for ln in lines[4::2][:count]])
    assert len(labels) == len(xyz) == count
    return labels, xyz


def _read_lm2(path: Path) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    assert lines[0] == "# 2D Landmark File"
    count = int(re.fullmatch(r"(\d+) landmarks", lines[2])[1])
    start = lines.index("Labels:") + 1
    labels = lines[start : start + count]
    coords = lines.index("2D Image coordinates:") + 1
    uv = np.array([[float(t) for t in ln.split()] for ln in lines[coords : coords + count]])
    assert len(labels) == len(uv) == count
    return labels, uv


def _read_landmarks(lm3: Path, lm2: Path):
    (labels3, xyz), (labels2, uv) = _read_lm3(lm3), _read_lm2(lm2)
    assert labels2 == labels3
    return labels3, xyz, uv


def test_bnt_header_grid_and_landmarks(exact_root, exact_truth):
    root, truth, counts = exact_root, exact_truth, []
    for key in truth["bosphorus"]:
        path = root / "bosphorus" / key
        nrows, ncols, zmin, name, n, n_bytes, data = _read_bnt(path)
        assert (nrows, ncols, zmin) == (80, 60, -1e9) and name == path.with_suffix(".png").name
        assert n == nrows * ncols * 5 and n_bytes == 8 * n
        x, y, z, u, v = data.reshape(5, nrows, ncols)
        r, c = np.mgrid[0:nrows, 0:ncols]
        assert np.array_equal(u, (6 * c + 1) / 360) and np.array_equal(v, (479 - 6 * r) / 480)
        valid = z != zmin
        assert 1500 < valid.sum() < 4000
        assert set(np.unique(x[~valid])) == {0.0, zmin}
        assert np.array_equal(x[~valid] == 0, y[~valid] == 0)
        img = np.array(Image.open(path.with_suffix(".png")))
        assert img.shape == (480, 360, 3) and img[0, 0].max() < 40
        entry = truth["bosphorus"][key]
        s, tx, ty = entry["scale"], entry["tx"], entry["ty"]
        assert np.allclose(s * x[valid] + tx, (u * 360)[valid]) and np.allclose(
            -s * y[valid] + ty, (v * 480)[valid]
        )
        labels, xyz, uv = _read_landmarks(path.with_suffix(".lm3"), path.with_suffix(".lm2"))
        assert len(labels) == entry["n_landmarks"]
        assert labels == [name for name in BOSPHORUS_LABELS if name in labels]
        flat = np.column_stack([x[valid], y[valid], z[valid]])
        for (px, py, pz), (col, row) in zip(xyz, uv, strict=True):
            hit = np.flatnonzero((flat == (px, py, pz)).all(axis=1))
            assert hit.size == 1, "an .lm3 point is not exactly a valid .bnt vertex"
            rr, cc = r[valid][hit[0]], c[valid][hit[0]]
            assert (col, row) == pytest.approx((u[rr, cc] * 360, v[rr, cc] * 480), abs=1e-6)
        counts.append(len(labels))
    assert sorted(counts)[0] == 21 and counts.count(21) == 1 and set(counts) == {21, 22}


def _bosphorus(root: Path, key: str):
    """One scan as the files hold it: image size, grid, landmarks, and each .lm3 point's
    vertex image position (u*W, v*H); asserts that every .lm3 point is exactly a valid vertex."""
    path = root / "bosphorus" / key
    nrows, ncols, zmin, _, n, n_bytes, data = _read_bnt(path)
    width, height = Image.open(path.with_suffix(".png")).size
    assert n == nrows * ncols * 5 and n_bytes == 8 * n
    x, y, z, u, v = data.reshape(5, nrows, ncols)
    valid = z != zmin
    flat = np.column_stack([x[valid], y[valid], z[valid]])
    labels3, xyz = _read_lm3(path.with_suffix(".lm3"))
    labels2, uv = _read_lm2(path.with_suffix(".lm2"))
    vertex_px = []
    for point in xyz:
        hit = np.flatnonzero((flat == point).all(axis=1))
        assert hit.size == 1, f"{key}: an .lm3 point is not exactly a valid .bnt vertex"
        vertex_px.append((u[valid][hit[0]] * width, v[valid][hit[0]] * height))
    vertices = np.column_stack([u[valid] * width, v[valid] * height])
    return {
        "size": (width, height),
        "grid": (nrows, ncols),
        "xyzuv": (x, y, z, u, v),
        "valid": valid,
        "vertices": vertices,
        "lm3": dict(zip(labels3, np.array(vertex_px), strict=True)),
        "labels3": labels3,
        "labels2": labels2,
        "uv": uv,
    }


def _gaps(scan: dict, uv: np.ndarray | None = None) -> np.ndarray:
    """Distance of each .lm2 point from its label's .lm3 vertex image position, over the labels
    both files hold."""
    uv = scan["uv"] if uv is None else uv
    pairs = [(p, scan["lm3"].get(lab)) for lab, p in zip(scan["labels2"], uv, strict=True)]
    return np.array([np.hypot(*(p - q)) for p, q in pairs if q is not None])


def test_bosphorus_grid_follows_each_image_size(root, truth):
    sizes: dict[tuple[int, int], int] = {}
    for key, entry in truth["bosphorus"].items():
        scan = _bosphorus(root, key)
        (width, height), (nrows, ncols) = scan["size"], scan["grid"]
        assert (width, height) == (entry["width"], entry["height"])
        assert width % LATTICE == height % LATTICE == 0
        assert (ncols, nrows) == (width // LATTICE, height // LATTICE)
        x, y, _, u, v = scan["xyzuv"]
        r, c = np.mgrid[0:nrows, 0:ncols]
        assert np.array_equal(u, (6 * c + 1) / width)
        assert np.array_equal(v, (height - 1 - 6 * r) / height)
        valid, s, tx, ty = scan["valid"], entry["scale"], entry["tx"], entry["ty"]
        assert np.allclose(s * x[valid] + tx, (u * width)[valid])
        assert np.allclose(-s * y[valid] + ty, (v * height)[valid])
        rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
        fill = max((cols[-1] - cols[0]) / ncols, (rows[-1] - rows[0]) / nrows)
        assert 0.6 < fill < 0.95, f"{key}: the face should fill every image size alike"
        sizes[width, height] = sizes.get((width, height), 0) + 1
    assert len(sizes) >= 3 and sizes.get((1116, 1398)) == 1  # one real-size scan per subject
    assert any(w > h for w, h in sizes) and any(w < h for w, h in sizes)


def test_bosphorus_lm2_is_clicked_and_lm3_snapped_to_the_nearest_vertex(root, truth):
    gaps_all, short = [], 0
    for key, entry in truth["bosphorus"].items():
        scan = _bosphorus(root, key)
        labels3 = scan["labels3"]
        assert labels3 == [lab for lab in BOSPHORUS_LABELS if lab not in entry["missing_landmarks"]]
        assert len(labels3) == entry["n_landmarks"]
        short += len(labels3) < 22
        gaps = _gaps(scan)
        assert np.median(gaps) == pytest.approx(entry["lm2_gap_px_median"], abs=1e-9)
        assert gaps.max() == pytest.approx(entry["lm2_gap_px_max"], abs=1e-9)
        if entry["planted"] is not None:
            continue
        assert scan["labels2"] == labels3
        assert gaps.max() <= SNAP_BOUND + 4 * CLICK_SIGMA
        # the .lm3 vertex is the valid vertex nearest the click (the click is written to six
        # significant digits, so a near tie may go either way by a few thousandths of a pixel)
        d = np.hypot(*(scan["vertices"][None, :, :] - scan["uv"][:, None, :]).transpose(2, 0, 1))
        assert np.all(gaps <= d.min(axis=1) + 0.01)
        gaps_all += gaps.tolist()
    assert short >= 1
    assert 1.5 < np.median(gaps_all) < 3.5 and max(gaps_all) > 3.0
    assert 0.05 < np.mean(np.array(gaps_all) > 3.0) < 0.5


def test_planted_scans_are_really_misaligned(root, truth):
    bos = {k: e["planted"] for k, e in truth["bosphorus"].items() if e["planted"]}
    bu = {k: e["planted"] for k, e in truth["bu3dfe"].items() if e["planted"]}
    assert len(bos) == len(bu) == TINY.misaligned
    assert sorted(p["kind"] for p in bos.values()) == ["lm2-shifted", "lm2-swapped"]
    assert sorted(p["kind"] for p in bu.values()) == ["photo-rotated", "photo-swapped"]
    for key, plant in bos.items():
        assert truth["bosphorus"][key]["class"] is not None
        scan = _bosphorus(root, key)
        gaps = _gaps(scan)
        if plant["kind"] == "lm2-shifted":
            shift = np.array(plant["shift_px"])
            assert 15 <= np.hypot(*shift) <= 30
            assert gaps.min() >= np.hypot(*shift) - SNAP_BOUND
            assert _gaps(scan, scan["uv"] - shift).max() <= SNAP_BOUND + 1e-3  # off by its shift
        else:
            donor = root / "bosphorus" / f"{plant['donor']}.lm2"
            assert donor.read_bytes() == (root / "bosphorus" / key).with_suffix(".lm2").read_bytes()
            assert plant["donor"] != key.removesuffix(".bnt")
            assert truth["bosphorus"][f"{plant['donor']}.bnt"]["planted"] is None
            assert plant["median_displacement_px"] >= 2 * LATTICE
            # each click lies within the snap bound of its vertex, so the medians differ by less
            assert abs(np.median(gaps) - plant["median_displacement_px"]) <= SNAP_BOUND
    ring = _ring(512)
    for key, plant in bu.items():
        entry = truth["bu3dfe"][key]
        photo_path = root / "bu3dfe" / key.replace("_F3D.wrl", "_F2D.bmp")
        if plant["kind"] == "photo-swapped":
            donor = plant["donor"]
            assert donor.split("/")[0] != entry["subject"]
            assert donor.split("_")[1][:4] == key.split("_")[1][:4]  # the same expression code
            assert photo_path.read_bytes() == (root / "bu3dfe" / f"{donor}_F2D.bmp").read_bytes()
            continue
        assert 10 <= abs(plant["degrees"]) <= 15
        face = np.array(Image.open(photo_path)).any(axis=2) & ~ring
        _, v, _, polys, _ = _read_vrml(root / "bu3dfe" / key)
        col, row = _project(v, entry)
        centre = ((col.min() + col.max()) / 2, (row.min() + row.max()) / 2)
        assert plant["centre_px"] == pytest.approx(centre, abs=1e-6)
        unrotated = _iou(face, _rasterise(col, row, polys, 512))
        rotated = _iou(face, _rasterise(*_turn(col, row, centre, plant["degrees"]), polys, 512))
        assert unrotated < 0.95 and rotated > 0.995, (unrotated, rotated)


# ---------------------------------------------------------------------------------------------
# CalD3r & MenD3s


def test_depth_is_16_bit_and_aligned_with_rgb(root, truth):
    for key, entry in truth["cald3r-mend3s"].items():
        rgb_image = Image.open(root / "cald3r-mend3s" / key)
        depth_image = Image.open(root / "cald3r-mend3s" / entry["depth_file"])
        assert rgb_image.mode == "RGB" and depth_image.mode == "I;16"
        rgb, depth = np.array(rgb_image), np.array(depth_image)
        assert rgb.shape == (224, 224, 3) and depth.shape == (224, 224)
        assert depth.dtype == np.uint16
        assert np.array_equal(rgb.any(axis=2), depth > 0)
        face = depth[depth > 0]
        assert 0.3 < face.size / depth.size < 0.8
        assert face.min() > 3400 and face.max() < 5200  # 1/8 mm: about 425-650 mm


# ---------------------------------------------------------------------------------------------
# the face model


def _pool(a: np.ndarray, k: int = 8) -> np.ndarray:
    h, w = a.shape[:2]
    return a.reshape(h // k, k, w // k, k, *a.shape[2:]).mean(axis=(1, 3))


def _render(identity, cls: str, strength: float, jitter: str):
    """RGB and depth of a face at a fixed camera, so only the face itself differs."""
    rng = rng_for(0, "test-jitter", jitter)
    face = Face(jitter_identity(identity, rng), expression(cls, strength))
    px = np.arange(224, dtype=float)
    grid = Grid((px - 111.5) / 1.1, (111.5 - px) / 1.1 + 5.0)
    surf = face.render(grid)
    centre = (np.abs(grid.xs) < 40)[None, :] & (np.abs(grid.ys) < 60)[:, None]
    return photo(face, grid, surf, surf.mask).astype(float), surf.z, surf.mask & centre


def _differences(a, b) -> tuple[float, float]:
    """Mean |RGB difference| of 8x8-pooled images, and mean |depth difference| over the
    central face (the steep rim would let tiny size changes dominate)."""
    both = a[2] & b[2]
    return float(np.abs(_pool(a[0]) - _pool(b[0])).mean()), float(np.abs(a[1] - b[1])[both].mean())


@pytest.mark.parametrize("tone", [0.1, 0.9])
def test_expressions_change_rgb_and_depth(tone):
    identity = sample_identity(rng_for(0, "test-identity", tone), tone)
    neutral = _render(identity, "neutral", 0.0, "a")
    jitter = _differences(neutral, _render(identity, "neutral", 0.0, "b"))
    surprise = _differences(neutral, _render(identity, "surprise", 1.0, "b"))
    assert surprise[0] > 1.5 * jitter[0] and surprise[1] > 2.5 * jitter[1]
    for cls in CLASSES:
        if cls == "neutral":
            continue
        weak = _differences(neutral, _render(identity, cls, 0.4, "a"))
        strong = _differences(neutral, _render(identity, cls, 1.0, "a"))
        for k, modality in enumerate(("rgb", "depth")):
            assert 0 < weak[k] < strong[k], f"{cls} {modality}: {weak[k]} vs {strong[k]}"
