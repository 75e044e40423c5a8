"""render-depth on broken samples: marked failed or low-quality with a reason, run goes on."""

import shutil

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.render.run import output_paths
from fer3d_bench.synthetic import SampleConfig

from handmade import ZMIN, bnt_bytes, bosphorus_scan

ONE = SampleConfig(
    seed=9, bu3dfe_subjects=1, bosphorus_subjects=0, cald3r_subjects=0, mend3s_subjects=0
)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def broken_tree(worlds, tmp_path_factory):
    sample = worlds.sample(ONE)  # shared: its files are copied, then broken
    root = tmp_path_factory.mktemp("bad") / "bu"
    (root / "F0001").mkdir(parents=True)
    for code in ("NE00", "AN01", "AN02", "AN03", "AN04"):
        for path in (sample / "bu3dfe" / "F0001").glob(f"F0001_{code}*_F*"):
            shutil.copy(path, root / "F0001" / path.name)
    folder = root / "F0001"
    mesh = next(folder.glob("F0001_AN01*_F3D.wrl"))
    text = mesh.read_text()
    start, end = text.index("coordIndex ["), text.index("]", text.index("coordIndex ["))
    mesh.write_text(text[:start] + "coordIndex [ " + text[end:])
    next(folder.glob("F0001_AN02*_F2D.bmp")).write_bytes(b"BM not really")
    next(folder.glob("F0001_AN03*_F2D.bmp")).unlink()
    photo = next(folder.glob("F0001_AN04*_F2D.bmp"))
    box = np.zeros((512, 512, 3), np.uint8)
    box[100:400, 150:350] = 200  # a rectangle: nothing like the face's silhouette
    from PIL import Image

    Image.fromarray(box).save(photo, format="BMP")
    return root


def test_failures_are_reported_and_the_run_goes_on(broken_tree, tmp_path):
    out = tmp_path / "out"
    result = run("render-depth", broken_tree, "--dataset", "bu3dfe", "--out", out, "--size", 64)
    assert result.exit_code == 1
    assert "3 samples failed to render" in result.output
    table = pd.read_csv(out / "alignment.csv").set_index("sample_id")
    status = table["status"].to_dict()
    assert status == {
        "bu3dfe:F0001_AN01": "failed",
        "bu3dfe:F0001_AN02": "failed",
        "bu3dfe:F0001_AN03": "failed",
        "bu3dfe:F0001_AN04": "low-quality",
        "bu3dfe:F0001_NE00": "ok",
    }
    reasons = table["reason"].to_dict()
    assert "the mesh has no faces" in reasons["bu3dfe:F0001_AN01"]
    assert "F2D.bmp: image does not decode" in reasons["bu3dfe:F0001_AN02"]
    assert "no photo file" in reasons["bu3dfe:F0001_AN03"]
    assert "silhouette IoU" in reasons["bu3dfe:F0001_AN04"]
    assert not output_paths(out, "bu3dfe:F0001_AN01")["rgb"].exists()
    assert output_paths(out, "bu3dfe:F0001_NE00")["depth"].is_file()
    assert not list(out.rglob("*.tmp-*"))
    again = run(
        "render-depth",
        broken_tree,
        "--dataset",
        "bu3dfe",
        "--out",
        out,
        "--size",
        64,
        "--allow-failures",
    )
    assert again.exit_code == 0, again.output  # the flagged sample is kept, not a failure
    assert "low-quality: bu3dfe:F0001_AN04: silhouette IoU" in again.output
    strict = run(
        "render-depth", broken_tree, "--dataset", "bu3dfe", "--out", out, "--size", 64,
        "--allow-failures", "--strict",
    )  # fmt: skip
    assert strict.exit_code == 1 and "1 samples aligned badly (--strict" in strict.output
    table = pd.read_csv(out / "alignment.csv").set_index("sample_id")
    assert table.loc["bu3dfe:F0001_AN04", "flags"] == "silhouette-iou;texture-agreement"
    ratio = table["qa_ratio"]
    assert ratio["bu3dfe:F0001_AN04"] > 1 > ratio["bu3dfe:F0001_NE00"]
    assert (out / "qa_worst.png").is_file()


def test_a_grid_without_face_points_fails_cleanly(tmp_path):
    root = tmp_path / "bos"
    planes = np.zeros(30)
    planes[12:18] = ZMIN  # every z is background
    bosphorus_scan(root / "bs000", "bs000_N_N_0", bnt_bytes(name=b"bs000_N_N_0.png", planes=planes))
    rows, cols = np.mgrid[0:2, 0:3]
    lattice = np.concatenate(  # x, y, z, then u, v on the image's 6-pixel lattice
        [np.zeros(6), np.zeros(6), np.full(6, 10.0), ((6 * cols + 1) / 18).ravel()]
        + [((11 - 6 * rows) / 12).ravel()]
    )
    grid = bnt_bytes(name=b"bs000_E_FEAR_0.png", planes=lattice)
    bosphorus_scan(root / "bs000", "bs000_E_FEAR_0", grid)
    for suffix in (".lm2", ".lm3"):  # the hand-made landmarks belong to another face
        (root / "bs000" / f"bs000_E_FEAR_0{suffix}").unlink()
    out = tmp_path / "out"
    result = run("render-depth", root, "--dataset", "bosphorus", "--out", out, "--size", 32)
    table = pd.read_csv(out / "alignment.csv").set_index("sample_id")
    assert result.exit_code == 1
    assert "no face points" in table.loc["bosphorus:bs000_N_N_0", "reason"]
    assert table.loc["bosphorus:bs000_E_FEAR_0", "status"] == "ok"


def test_output_folder_problems(broken_tree, tmp_path):
    result = run("render-depth", broken_tree, "--dataset", "bu3dfe", "--out", tmp_path / "a" / "b")
    assert result.exit_code == 1 and "parent folder" in result.output
    out = tmp_path / "shared"
    run("render-depth", broken_tree, "--dataset", "bu3dfe", "--out", out, "--size", 32)
    result = run("render-depth", broken_tree, "--dataset", "bosphorus", "--out", out)
    assert result.exit_code == 1 and "already holds a render of bu3dfe" in result.output
