"""render-depth end to end on the generated sample, checked against the generator's truth."""

import json
import shutil
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from truth import planted as planted_ids
from truth import sample_id

from fer3d_bench.formats import read_vrml
from fer3d_bench.render import align, fit
from fer3d_bench.render.backends import make_renderer
from fer3d_bench.render.camera import OrthoCamera
from fer3d_bench.render.layout import output_paths
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.render.overlay import worst_first
from fer3d_bench.render.run import render_dataset
from fer3d_bench.render.worker import Worker

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


def test_every_valid_bu3dfe_sample_aligns_and_every_planted_one_is_flagged(bu3dfe):
    """Against the generator's truth: the hidden camera is recovered wherever the photo is a
    view of its mesh (stray border pixels, off-centre faces and all), and a photo rotated
    against its mesh or taken from another scan is flagged."""
    root, truth, _, table = bu3dfe
    planted = planted_ids(truth, "bu3dfe")
    assert len(table) == 25 and len(planted) == 2
    rows = table.set_index("sample_id")
    for key, expected in truth["bu3dfe"].items():
        row = rows.loc[sample_id("bu3dfe", key)]
        if expected["planted"]:  # rotated photos here: neither outline nor texture fits
            assert row["status"] == "low-quality"
            assert row["flags"] == "silhouette-iou;texture-agreement"
            assert row["iou"] < 0.95 and row["texture_ncc"] < row["texture_ncc_bar"]
            continue
        assert row["status"] == "ok" and row["iou"] >= 0.99
        assert row["texture_ncc_bar"] < row["texture_ncc"] <= 1.0
        assert row["scale"] == pytest.approx(expected["f2d_scale"], rel=0.005)
        assert abs(row["tx"] - expected["f2d_tx"]) < 1.0
        assert abs(row["ty"] - expected["f2d_ty"]) < 1.0
        assert row["rotation_deg"] == 0.0
        assert row["landmarks"] == 83 and row["landmark_depth_mm_median"] < 0.5
    assert sum(e["stray_pixels"] > 0 for e in truth["bu3dfe"].values()) == 25


def test_outputs_are_aligned_crops_with_the_documented_depth(bu3dfe):
    _, _, out, table = bu3dfe
    for sid in table.loc[table["status"] == "ok", "sample_id"][:5]:
        paths = output_paths(out, sid)
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
    assert summary["depth_convention"]["step_mm"] == 0.0025
    assert summary["counts"] == {"low-quality": 2, "ok": 23}
    assert not list(out.rglob("*.tmp-*"))  # nothing half-written is left behind


def test_the_qa_sheet_shows_the_worst_first(bu3dfe):
    _, truth, out, table = bu3dfe
    worst = worst_first(table)
    assert set(worst["sample_id"][:2]) == set(planted_ids(truth, "bu3dfe"))
    assert list(worst["qa_ratio"]) == sorted(worst["qa_ratio"], reverse=True)
    assert worst["qa_figure"].iloc[0].startswith(("IoU 0.", "texture ncc 0."))
    with Image.open(out / "qa_worst.png") as sheet:
        assert sheet.size[0] > 600 and sheet.size[1] > 400


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


def test_bosphorus_clicked_landmarks_pass_and_planted_ones_are_flagged(sample, tmp_path):
    """Images of several sizes, .lm2 points clicked near (not on) their vertex, scans with
    fewer landmarks: all ok; an .lm2 shifted or taken from another scan: flagged."""
    root, truth = sample
    table = render_dataset(root / "bosphorus", "bosphorus", tmp_path / "b", OPTIONS, progress=False)
    mapped = {k: v for k, v in truth["bosphorus"].items() if v["class"] is not None}
    assert len(table) == len(mapped)
    rows = table.set_index("sample_id")
    planted = planted_ids(truth, "bosphorus")
    assert sorted(p["kind"] for p in planted.values()) == ["lm2-shifted", "lm2-swapped"]
    for key, expected in mapped.items():
        row = rows.loc[sample_id("bosphorus", key)]
        assert row["lattice_pitch_px"] == pytest.approx(6.0)
        assert row["landmark_vertex_gap_mm_max"] < 1e-6  # .lm3 points are grid vertices
        assert row["landmark_px_max"] == pytest.approx(expected["lm2_gap_px_max"], abs=1e-3)
        assert row["landmark_px_median"] == pytest.approx(expected["lm2_gap_px_median"], abs=1e-3)
        if expected["planted"]:
            assert row["status"] == "low-quality" and row["flags"] == "landmark-offset"
            continue
        assert row["status"] == "ok", row["reason"]
        assert row["landmarks"] == expected["n_landmarks"]
        assert row["landmark_px_median"] <= row["landmark_tolerance_px"]
    valid = [v for v in mapped.values() if not v["planted"]]
    assert max(v["lm2_gap_px_max"] for v in valid) > 3.0  # the real files' gaps, not zero
    assert len({(v["width"], v["height"]) for v in mapped.values()}) >= 3
    assert any(v["n_landmarks"] < 22 for v in valid)


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


def test_a_photo_of_another_scan_is_flagged_by_its_texture(sample, tmp_path):
    """A swapped F2D photo of the same person in another expression: its outline fits the mesh
    well enough, but the texture says the photo shows another scan."""
    root, truth = sample
    valid = sorted(k for k, v in truth["bu3dfe"].items() if not v["planted"])
    mine, other = (k.split("/")[1][:12] for k in (valid[0], valid[-1]))  # e.g. AN01 vs SU04
    tree = tmp_path / "bu" / "F0001"
    tree.mkdir(parents=True)
    for path in (root / "bu3dfe" / "F0001").glob(f"{mine}_*"):
        shutil.copy(path, tree / path.name)
    shutil.copy(root / "bu3dfe" / "F0001" / f"{other}_F2D.bmp", tree / f"{mine}_F2D.bmp")
    table = render_dataset(tmp_path / "bu", "bu3dfe", tmp_path / "o", OPTIONS, progress=False)
    row = table.iloc[0]
    assert row["status"] == "low-quality" and "texture-agreement" in row["flags"]
    assert "not a view of this mesh" in row["reason"]


def test_fit_recovers_an_in_plane_rotation(sample):
    root, _ = sample
    mesh = read_vrml(next((root / "bu3dfe").rglob("*NE00*_F3D.wrl")))
    truth = OrthoCamera(2.6, 250.0, 262.0, np.radians(4.0))
    renderers = {}

    def renderer_for(width, height):
        if (width, height) not in renderers:
            renderers[width, height] = make_renderer("pyrender", width, height)
        return renderers[width, height]

    silhouette = np.isfinite(renderer_for(512, 512).render(mesh.vertices, mesh.faces, truth))
    photo = np.where(silhouette[..., None], 180, 0).astype(np.uint8).repeat(3, axis=2)
    scan = type("Scan", (), {"mesh": mesh, "photo": photo, "landmarks": None, "texture": None})
    fitted = align.align_bu3dfe(scan, renderer_for, fit_rotation=True)
    plain = align.align_bu3dfe(scan, renderer_for, fit_rotation=False)
    for renderer in renderers.values():
        renderer.close()
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


def test_two_workers_write_what_one_writes(bu3dfe, tmp_path, monkeypatch):
    """With --workers 2 a spawned worker renders beside this process: the same bytes either way.
    This process is slowed down so that the spawned one surely gets samples to render."""
    root, _, out, table = bu3dfe
    real, here = Worker.process, []

    def slow(self, record, folder):
        here.append(record.sample_id)
        time.sleep(0.4)
        return real(self, record, folder)

    monkeypatch.setattr(Worker, "process", slow)
    two = render_dataset(
        root / "bu3dfe", "bu3dfe", tmp_path / "two", OPTIONS, workers=2, progress=False
    )
    assert 0 < len(here) < len(table)  # both processes rendered
    pd.testing.assert_frame_equal(two, table)
    for sid in table["sample_id"]:
        for kind in ("rgb", "depth", "record"):
            a, b = output_paths(out, sid)[kind], output_paths(tmp_path / "two", sid)[kind]
            assert a.read_bytes() == b.read_bytes(), f"{sid} {kind}"
