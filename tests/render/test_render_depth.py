"""render-depth end to end on the generated sample, checked against the generator's truth."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fer3d_bench.formats import read_vrml
from fer3d_bench.render import align, fit
from fer3d_bench.render.backends import make_renderer
from fer3d_bench.render.camera import OrthoCamera
from fer3d_bench.render.run import RenderOptions, output_paths, render_dataset
from fer3d_bench.sources import BU3DFE

OPTIONS = RenderOptions(size=96)


@pytest.fixture(scope="module")
def sample(tiny_sample):
    """The session's tiny sample: one subject per dataset (read only here)."""
    out = tiny_sample[0] / "sample"
    return out, json.loads((out / "ground_truth.json").read_text())


@pytest.fixture(scope="module")
def bu3dfe(sample, tmp_path_factory):
    root, truth = sample
    out = tmp_path_factory.mktemp("bu3dfe-out") / "r"
    table = render_dataset(root / "bu3dfe", "bu3dfe", out, OPTIONS, progress=False)
    return root, truth, out, table


def test_every_bu3dfe_sample_aligns_with_the_hidden_camera(bu3dfe):
    root, truth, _, table = bu3dfe
    assert len(table) == 25 and (table["status"] == "ok").all()
    assert table["iou"].min() >= 0.99
    source = BU3DFE(root / "bu3dfe")
    for record in source.scan().samples:
        expected = truth["bu3dfe"][record.files["mesh"].relative_to(root / "bu3dfe").as_posix()]
        row = table.set_index("sample_id").loc[record.sample_id]
        assert row["scale"] == pytest.approx(expected["f2d_scale"], rel=0.005)
        assert abs(row["tx"] - expected["f2d_tx"]) < 1.0
        assert abs(row["ty"] - expected["f2d_ty"]) < 1.0
        assert row["rotation_deg"] == 0.0
        assert row["landmarks"] == 83 and row["landmark_depth_mm_median"] < 0.5


def test_outputs_are_aligned_crops_with_the_documented_depth(bu3dfe):
    _, _, out, table = bu3dfe
    for sample_id in table["sample_id"][:5]:
        paths = output_paths(out, sample_id)
        rgb = np.asarray(Image.open(paths["rgb"]))
        depth = np.asarray(Image.open(paths["depth"]))
        assert rgb.shape == (96, 96, 3) and depth.shape == (96, 96) and depth.dtype == np.uint16
        assert depth.max() == 65535 and depth.min() == 0
        photo_face, depth_face = rgb.max(axis=2) > 8, depth > 0
        assert fit.silhouette_iou(photo_face, depth_face) > 0.95
        np.testing.assert_allclose(  # same place: centroids agree to a fraction of a pixel
            fit.mask_moments(photo_face).centroid, fit.mask_moments(depth_face).centroid, atol=0.3
        )
    assert (out / "alignment.csv").is_file() and (out / "render.json").is_file()
    sheet = Image.open(out / "overlay.png")
    assert sheet.size[0] > 300 and sheet.size[1] > 300
    summary = json.loads((out / "render.json").read_text())
    assert summary["depth_convention"]["step_mm"] == 0.0025 and summary["counts"] == {"ok": 25}
    assert not list(out.rglob("*.tmp-*"))  # nothing half-written is left behind


def test_rerun_skips_done_samples_and_redoes_damaged_ones(bu3dfe):
    root, _, out, table = bu3dfe
    paths = output_paths(out, table["sample_id"][3])
    paths["depth"].write_bytes(b"broken")
    others = output_paths(out, table["sample_id"][4])["rgb"]
    before = others.stat().st_mtime_ns
    again = render_dataset(root / "bu3dfe", "bu3dfe", out, OPTIONS, progress=False)
    assert others.stat().st_mtime_ns == before  # untouched
    assert np.asarray(Image.open(paths["depth"])).dtype == np.uint16  # rendered anew
    pd.testing.assert_frame_equal(again, table)


def test_bosphorus_landmarks_sit_on_their_pixels(sample, tmp_path):
    root, truth = sample
    table = render_dataset(root / "bosphorus", "bosphorus", tmp_path / "b", OPTIONS, progress=False)
    mapped = [v for v in truth["bosphorus"].values() if v["class"] is not None]
    assert len(table) == len(mapped) and (table["status"] == "ok").all()
    assert table["landmark_px_max"].max() <= 1.0
    assert table["landmark_vertex_gap_mm_max"].max() < 1e-6
    assert table["landmark_depth_mm_max"].max() < 1e-6
    assert (table["landmarks"] >= 21).all()


def test_cald3r_mend3s_depth_is_normalised_the_same_way(sample, tmp_path):
    root, _ = sample
    table = render_dataset(
        root / "cald3r-mend3s", "cald3r-mend3s", tmp_path / "c", OPTIONS, progress=False
    )
    assert len(table) == 14 and (table["status"] == "ok").all() and table["iou"].min() > 0.99
    depth = np.asarray(Image.open(output_paths(tmp_path / "c", table["sample_id"][0])["depth"]))
    assert depth.max() == 65535
    behind_mm = (65535 - depth[depth > 0].astype(float)) * 0.0025
    assert 40 < behind_mm.max() < 160  # a face's relief, not the 500 mm camera distance


def test_fit_recovers_an_in_plane_rotation(sample):
    root, _ = sample
    mesh = read_vrml(next((root / "bu3dfe").rglob("*NE00*_F3D.wrl")))
    truth = OrthoCamera(2.6, 250.0, 262.0, np.radians(4.0))
    with make_renderer("pyrender", 512, 512) as renderer:
        silhouette = np.isfinite(renderer.render(mesh.vertices, mesh.faces, truth))
        photo = np.where(silhouette[..., None], 180, 0).astype(np.uint8).repeat(3, axis=2)
        scan = type("Scan", (), {"mesh": mesh, "photo": photo, "landmarks": None})
        fitted = align.align_bu3dfe(scan, renderer, fit_rotation=True)
        plain = align.align_bu3dfe(scan, renderer, fit_rotation=False)
    assert fitted.quality["rotation_deg"] == pytest.approx(4.0, abs=0.2)
    assert fitted.quality["scale"] == pytest.approx(2.6, rel=0.003)
    assert fitted.quality["iou"] > 0.99 > plain.quality["iou"]


def test_open3d_backend_gives_the_same_alignment(sample, tmp_path):
    root, _ = sample
    options = RenderOptions(size=96, backend="open3d")
    subset = tmp_path / "bu"
    (subset / "F0001").mkdir(parents=True)
    for path in sorted((root / "bu3dfe" / "F0001").glob("F0001_HA04*")):
        (subset / "F0001" / path.name).symlink_to(path)
    o3d = render_dataset(subset, "bu3dfe", tmp_path / "o", options, progress=False)
    gl = render_dataset(subset, "bu3dfe", tmp_path / "g", RenderOptions(size=96), progress=False)
    assert o3d["iou"][0] > 0.99
    assert o3d["scale"][0] == pytest.approx(gl["scale"][0], rel=1e-3)
    a = np.asarray(Image.open(output_paths(tmp_path / "o", o3d["sample_id"][0])["depth"]))
    b = np.asarray(Image.open(output_paths(tmp_path / "g", gl["sample_id"][0])["depth"]))
    assert ((a > 0) != (b > 0)).mean() < 0.005
