"""The sample generator's own promises, checked without the project's readers.

Every parser here is written from FORMATS.md independently of `fer3d_bench.formats`, so the
generator is never checked against code it shares with the readers.
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

from fer3d_bench.sample import SampleConfig, make_sample
from fer3d_bench.sample import generate as generate_module
from fer3d_bench.sample.common import rng_for
from fer3d_bench.sample.face import (
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


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("gen") / "sample"
    return out, make_sample(out, TINY, workers=2, progress=False)


@pytest.fixture(scope="module")
def root(sample) -> Path:
    return sample[0]


@pytest.fixture(scope="module")
def truth(root) -> dict:
    return json.loads((root / "ground_truth.json").read_text())


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


def _rasterise(v: np.ndarray, polys: list[list[int]], s: float, tx: float, ty: float, size: int):
    """Pixel centres covered by the fan-triangulated polygons (an independent rasteriser)."""
    tris = np.array([(p[0], p[k], p[k + 1]) for p in polys for k in range(1, len(p) - 1)])
    col, row = s * v[:, 0] + tx, -s * v[:, 1] + ty
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


def test_f2d_photo_silhouette_is_the_projected_mesh(root, truth):
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
        face &= ~strays
        mesh = _rasterise(v, polys, s, tx, ty, 512)
        iou = (face & mesh).sum() / (face | mesh).sum()
        assert iou > 0.999, f"{key}: silhouette IoU {iou:.5f}"
        col, row = np.round(s * v[:, 0] + tx).astype(int), np.round(-s * v[:, 1] + ty).astype(int)
        assert face[row, col].mean() > 0.97
        rows, cols = np.nonzero(face)
        centre = (rows.mean() - 255.5, cols.mean() - 255.5)
        assert max(abs(centre[0]), abs(centre[1])) < 40


# ---------------------------------------------------------------------------------------------
# Bosphorus


def _read_bnt(path: Path):
    raw = path.read_bytes()
    nrows, ncols, zmin, n_name = struct.unpack_from("<HHdH", raw, 0)
    name = raw[14 : 14 + n_name].decode()
    (n,) = struct.unpack_from("<I", raw, 14 + n_name)
    data = np.frombuffer(raw, "<f8", offset=18 + n_name)
    return nrows, ncols, zmin, name, n, len(raw) - 18 - n_name, data


def _read_landmarks(lm3: Path, lm2: Path):
    lines3 = lm3.read_text().splitlines()
    assert lines3[:2] == ["# 3D Landmark File", ""]
    count = int(re.fullmatch(r"(\d+) landmarks:", lines3[2])[1])
    labels3 = lines3[3::2][:count]
    xyz = np.array([[float(t) for t in ln.split()] for ln in lines3[4::2][:count]])
    lines2 = lm2.read_text().splitlines()
    assert lines2[0] == "# 2D Landmark File" and lines2[2] == f"{count} landmarks"
    start = lines2.index("Labels:") + 1
    labels2 = lines2[start : start + count]
    coords = lines2.index("2D Image coordinates:") + 1
    uv = np.array([[float(t) for t in ln.split()] for ln in lines2[coords : coords + count]])
    assert labels2 == labels3 and len(xyz) == len(uv) == count
    return labels3, xyz, uv


def test_bnt_header_grid_and_landmarks(root, truth):
    counts = []
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
