"""Generator -> readers round trip: the readers recover what the generator says it wrote.

The generator and the readers share no format code, so agreement here is evidence that both
follow the published format facts; `ground_truth.json` is read only by these tests.
"""

import json

import numpy as np
import pytest

from fer3d_bench.sources import BU3DFE, Bosphorus, CalD3rMenD3s
from fer3d_bench.sources.summary import sample_table


@pytest.fixture(scope="module")
def sample(tiny_sample):
    base, _ = tiny_sample
    out = base / "sample"
    truth = json.loads((out / "ground_truth.json").read_text())
    counts = {name: len(truth[name]) for name in ("bu3dfe", "bosphorus", "cald3r-mend3s")}
    return out, counts, truth


def _rel(path, root):
    return path.relative_to(root).as_posix()


def test_bu3dfe_index_matches_truth(sample):
    out, counts, truth = sample
    result = BU3DFE(out / "bu3dfe").scan()
    assert len(result.samples) == counts["bu3dfe"] == 25
    assert not result.skipped and not result.excluded
    by_mesh = {_rel(s.files["mesh"], out / "bu3dfe"): s for s in result.samples}
    assert set(by_mesh) == set(truth["bu3dfe"])
    for key, record in by_mesh.items():
        expected = truth["bu3dfe"][key]
        assert record.label == expected["class"]
        assert record.intensity == expected["intensity"]
        assert record.sex == expected["sex"] == record.subject[len("bu3dfe:")]
        assert set(record.files) == {"mesh", "texture", "landmarks", "photo"}
    per_subject = sample_table(result).groupby("subject")["label"].value_counts()
    assert (per_subject.xs("neutral", level="label") == 1).all()
    assert (per_subject.drop("neutral", level="label") == 4).all()


def test_bu3dfe_meshes_photos_and_landmarks(sample):
    out, _, truth = sample
    source = BU3DFE(out / "bu3dfe")
    polygon_sizes = set()
    for record in source.scan().samples[::6]:
        expected = truth["bu3dfe"][_rel(record.files["mesh"], out / "bu3dfe")]
        scan = source.load(record)
        mesh = scan.mesh
        polygon_sizes |= set(mesh.polygon_sizes)
        assert len(mesh.vertices) == expected["n_vertices"]
        assert sum(mesh.polygon_sizes.values()) == expected["n_faces_polygons"]
        assert len(mesh.faces) == expected["n_faces_triangles"]
        assert len(mesh.texcoords) > len(mesh.vertices)  # separate texture indexing
        assert not np.array_equal(mesh.tex_faces, mesh.faces)
        assert mesh.texture_url == record.files["texture"].name
        assert scan.photo.shape == (512, 512, 3)
        # published format facts: +y up, the face looks toward +z, extent in millimetres
        extent = np.ptp(mesh.vertices, axis=0)
        assert 100 < extent[0] < 200 and 130 < extent[1] < 230 and 50 < extent[2] < 160
        nose = mesh.vertices[scan.landmarks.indices[36:48]]
        assert nose[:, 2].max() > np.percentile(mesh.vertices[:, 2], 95)
        assert len(scan.landmarks.indices) == 83
        np.testing.assert_allclose(
            scan.landmarks.points, mesh.vertices[scan.landmarks.indices], atol=1e-4
        )
        # the hidden orthographic camera puts every inner mesh vertex on a face pixel of the
        # photo (vertices on the mesh border lie on the silhouette itself and may round out)
        s, tx, ty = expected["f2d_scale"], expected["f2d_tx"], expected["f2d_ty"]
        inner = mesh.vertices[~_border_vertices(mesh.faces, len(mesh.vertices))]
        cols = np.rint(s * inner[:, 0] + tx).astype(int)
        rows = np.rint(-s * inner[:, 1] + ty).astype(int)
        assert ((cols > 0) & (cols < 511) & (rows > 0) & (rows < 511)).all()
        face = scan.photo.sum(axis=2) > 0
        assert face[rows, cols].mean() > 0.999
    assert {3, 4, 5} <= polygon_sizes


def _border_vertices(faces, n):
    """Vertices on an edge that only one triangle uses."""
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    border = np.zeros(n, dtype=bool)
    border[unique[counts == 1].ravel()] = True
    return border


def test_bosphorus_round_trip(sample):
    out, counts, truth = sample
    source = Bosphorus(out / "bosphorus")
    result = source.scan(check=True)
    assert not result.skipped
    mapped = {k: v for k, v in truth["bosphorus"].items() if v["class"] is not None}
    assert len(result.samples) == len(mapped)
    assert len(result.samples) + len(result.excluded) == counts["bosphorus"]
    for record in result.samples:
        expected = mapped[_rel(record.files["grid"], out / "bosphorus")]
        assert record.label == expected["class"] and record.code == expected["code"]
    excluded_keys = {_rel(e.path, out / "bosphorus") for e in result.excluded}
    assert excluded_keys == {k for k, v in truth["bosphorus"].items() if v["class"] is None}
    for record in result.samples:
        expected = mapped[_rel(record.files["grid"], out / "bosphorus")]
        scan = source.load(record)
        grid, image = scan.grid, scan.image
        height, width = image.shape[:2]
        assert (width, height) == (expected["width"], expected["height"])
        assert (grid.nrows, grid.ncols) == (height // 6, width // 6)
        rows, cols = np.mgrid[0 : grid.nrows, 0 : grid.ncols]
        np.testing.assert_allclose(grid.u * width, 6 * cols + 1, atol=1e-6)
        np.testing.assert_allclose(grid.v * height, height - 1 - 6 * rows, atol=1e-6)
        assert 0 < grid.valid.sum() < grid.valid.size
        # each .lm3 point is a grid vertex; its .lm2 point was clicked near that vertex's image
        # position (a planted .lm2 far from it)
        points = np.stack([grid.x, grid.y, grid.z], axis=-1)[grid.valid]
        uv = np.stack([grid.u * width, grid.v * height], axis=-1)[grid.valid]
        lm2 = scan.lm2.by_label()
        gaps = []
        for label, p3 in scan.lm3.by_label().items():
            nearest = np.argmin(np.linalg.norm(points - p3, axis=1))
            assert np.linalg.norm(points[nearest] - p3) < 1e-6
            if label in lm2:
                gaps.append(np.linalg.norm(uv[nearest] - lm2[label]))
        assert max(gaps) == pytest.approx(expected["lm2_gap_px_max"], abs=1e-3)
        if not expected["planted"]:
            assert scan.lm3.labels == scan.lm2.labels and len(gaps) == expected["n_landmarks"]
            assert max(gaps) < 3 * np.sqrt(2) + 4 * 0.5
        face_rows = height - 1 - 6 * rows[grid.valid]
        face_cols = 6 * cols[grid.valid] + 1
        assert (image[face_rows, face_cols].sum(axis=1) > 0).mean() > 0.99


def test_cald3r_mend3s_round_trip(sample):
    out, counts, truth = sample
    source = CalD3rMenD3s(out / "cald3r-mend3s")
    result = source.scan(check=True)
    assert not result.skipped
    assert len(result.samples) == counts["cald3r-mend3s"] == len(truth["cald3r-mend3s"]) == 14
    for record in result.samples:
        expected = truth["cald3r-mend3s"][_rel(record.files["rgb"], out / "cald3r-mend3s")]
        assert record.dataset == expected["dataset"]
        assert record.label == expected["class"]
        assert record.subject == f"{expected['dataset']}:{expected['subject']}"
        assert _rel(record.files["depth"], out / "cald3r-mend3s") == expected["depth_file"]
    pair = source.load(result.samples[0])
    assert pair.rgb.shape == (224, 224, 3) and pair.depth.dtype == np.uint16
    face = pair.depth > 0
    assert 0.1 < face.mean() < 0.9
    distance_mm = pair.depth[face] * pair.depth_unit_mm
    assert 300 < np.median(distance_mm) < 800
    assert (pair.rgb[~face].sum(axis=1) == 0).mean() > 0.95  # black background
