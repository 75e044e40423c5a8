"""The Bosphorus landmark check, on scans written by hand at the sizes real files have.

The bar follows from the grid: a 3D landmark snaps to the nearest grid vertex, so its 2D
point can lie up to half a lattice cell's diagonal away (4.24 px at a 6 px pitch), plus the
annotators' allowance. The real scan measured (1116 x 1398, gaps 0.4-4.2 px, median 2.6) must
pass; a shifted or foreign .lm2 must not.
"""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.render import align
from fer3d_bench.sources import Bosphorus

from handmade import BOSPHORUS_LABELS, REAL_GAPS_PX, real_bosphorus_scan


def _aligned(root, name):
    source = Bosphorus(root)
    record = next(s for s in source.scan().samples if s.sample_id.endswith(name))
    return align.align_bosphorus(source.load(record))


def test_a_real_sized_scan_with_real_gaps_is_ok(tmp_path):
    real_bosphorus_scan(tmp_path / "bs000", "bs000_N_N_0")
    aligned = _aligned(tmp_path, "bs000_N_N_0")
    assert aligned.failed == []
    q = aligned.quality
    assert aligned.z.shape == (1398, 1116)
    assert q["lattice_pitch_px"] == pytest.approx(6.0) and q["lattice_residual_px"] < 1e-6
    assert q["landmarks"] == 22
    assert q["landmark_px_max"] == pytest.approx(max(REAL_GAPS_PX), abs=1e-6)
    assert q["landmark_px_median"] == pytest.approx(2.6, abs=1e-6)
    assert q["landmark_tolerance_px"] == pytest.approx(3 * np.sqrt(2) + 2.0)
    assert q["landmark_vertex_gap_mm_max"] == 0.0


def test_a_landscape_scan_and_a_coarser_lattice_scale_the_bar(tmp_path):
    real_bosphorus_scan(tmp_path / "bs000", "bs000_N_N_0", size=(1398, 1116))
    assert _aligned(tmp_path, "bs000_N_N_0").failed == []
    # a grid every 12 px snaps landmarks up to 8.5 px away: gaps of 7 px are then expected
    real_bosphorus_scan(tmp_path / "bs001", "bs001_N_N_0", step=12, gaps=(7.0,) * 22)
    coarse = _aligned(tmp_path, "bs001_N_N_0")
    assert coarse.failed == []
    assert coarse.quality["landmark_tolerance_px"] == pytest.approx(6 * np.sqrt(2) + 2.0)
    # the same 7 px gaps on a 6 px lattice cannot come from snapping
    real_bosphorus_scan(tmp_path / "bs002", "bs002_N_N_0", gaps=(7.0,) * 22)
    assert [c.name for c in _aligned(tmp_path, "bs002_N_N_0").failed] == ["landmark-offset"]


def test_a_shifted_or_foreign_lm2_is_flagged_with_its_reason(tmp_path):
    real_bosphorus_scan(tmp_path / "bs000", "bs000_N_N_0", shift=(20.0, 0.0))
    shifted = _aligned(tmp_path, "bs000_N_N_0")
    assert [c.name for c in shifted.failed] == ["landmark-offset"]
    assert "does not fit this scan's image" in shifted.failed[0].message
    assert shifted.quality["landmark_px_median"] > 15
    # the .lm2 of another scan: the same labels, clicked on a face placed elsewhere
    other = real_bosphorus_scan(tmp_path / "bs001", "bs001_N_N_0", shift=(-35.0, 48.0))
    real_bosphorus_scan(tmp_path / "bs000", "bs000_E_HAPPY_0", lm2_override=other["points2"])
    foreign = _aligned(tmp_path, "bs000_E_HAPPY_0")
    assert [c.name for c in foreign.failed] == ["landmark-offset"]


def test_non_finite_or_unmatched_landmarks_are_named_problems(tmp_path):
    real_bosphorus_scan(tmp_path / "bs000", "bs000_N_N_0")
    lm2 = tmp_path / "bs000" / "bs000_N_N_0.lm2"
    lines = lm2.read_text().splitlines()
    nose = lines.index("2D Image coordinates:") + 14  # the 14th point: "Nose tip"
    lines[nose] = "nan 812.5"
    lm2.write_text("\n".join(lines) + "\n")
    broken = _aligned(tmp_path, "bs000_N_N_0")
    assert [c.name for c in broken.failed] == ["landmark-nonfinite"]
    assert "'Nose tip'" in broken.failed[0].message
    assert broken.quality["landmarks"] == 21  # the others are still checked
    lines[nose] = "600.0 812.5"
    lm2.write_text("\n".join(lines) + "\n")
    lm3 = tmp_path / "bs000" / "bs000_N_N_0.lm3"
    original = lm3.read_text()
    lm3.write_text(original.replace("Chin middle", "Chin").replace("Nose tip", "NOSE TIP"))
    partial = _aligned(tmp_path, "bs000_N_N_0")  # the 20 labels that match are checked
    assert partial.failed == [] and partial.quality["landmarks"] == 20
    renamed = [f"X {line}" if line in BOSPHORUS_LABELS else line for line in original.split("\n")]
    lm3.write_text("\n".join(renamed))
    unmatched = _aligned(tmp_path, "bs000_N_N_0")
    assert [c.name for c in unmatched.failed] == ["landmark-labels"]


def test_render_depth_accepts_real_scans_and_flags_the_shifted_one(tmp_path):
    real_bosphorus_scan(tmp_path / "bos" / "bs000", "bs000_N_N_0")
    real_bosphorus_scan(tmp_path / "bos" / "bs000", "bs000_E_FEAR_0", shift=(0.0, -20.0))
    out = tmp_path / "out"
    args = ["render-depth", str(tmp_path / "bos"), "--dataset", "bosphorus", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--size", "32"], catch_exceptions=False)
    assert result.exit_code == 0, result.output  # flagged samples are kept, not failures
    assert "low-quality: bosphorus:bs000_E_FEAR_0: median .lm2 gap" in result.output
    table = pd.read_csv(out / "alignment.csv").set_index("sample_id")
    assert table.loc["bosphorus:bs000_N_N_0", "status"] == "ok"
    assert table.loc["bosphorus:bs000_E_FEAR_0", "flags"] == "landmark-offset"
    strict = CliRunner().invoke(main, [*args, "--size", "32", "--strict"])
    assert strict.exit_code == 1
