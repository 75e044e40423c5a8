"""Bosphorus indexing, the AU table at work, and loading, on a tree built by hand."""

import numpy as np
import pytest

from fer3d_bench.errors import FormatError
from fer3d_bench.sources import Bosphorus
from fer3d_bench.taxonomy import load_label_map

from handmade import bnt_bytes, bosphorus_scan

SCANS = [
    "bs000_N_N_0",
    "bs000_LFAU_12_0",
    "bs000_UFAU_1_0",
    "bs000_E_HAPPY_0",
    "bs000_CAU_A22A25_0",
    "bs000_LFAU_12L_0",
    "bs000_LFAU_10_0",
    "bs000_YR_R10_0",
    "bs000_O_EYE_0",
    "bs000_IGN_X_0",
]


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "BosphorusDB"
    for name in SCANS:
        bosphorus_scan(root / "bs000", name)
    (root / "bs000" / "bs000_E_SADNESS_0.bnt").write_bytes(bnt_bytes())  # no image
    (root / "bs000" / "bs000_N_N_1.obj").write_text("v 0 0 0\n")
    (root / "bs001").mkdir()
    (root / "bs001" / "bs000_E_FEAR_0.png").write_bytes(b"")
    return root


def test_mapped_scans_become_samples(tree):
    result = Bosphorus(tree).scan()
    labels = {s.sample_id: s.label for s in result.samples}
    assert labels == {
        "bosphorus:bs000_E_HAPPY_0": "happiness",
        "bosphorus:bs000_LFAU_12_0": "happiness",
        "bosphorus:bs000_N_N_0": "neutral",
        "bosphorus:bs000_UFAU_1_0": "fear",
    }
    sample = result.samples[0]
    assert sample.subject == "bosphorus:bs000" and sample.intensity == -1 and sample.sex is None
    assert set(sample.files) == {"grid", "image", "lm2", "lm3"}


def test_excluded_kinds_are_counted_with_reasons(tree):
    excluded = {e.code: e.reason for e in Bosphorus(tree).scan().excluded}
    assert excluded == {
        "CAU_A22A25": "combined action units",
        "LFAU_12L": "suffixed action-unit variant (not mapped by default)",
        "LFAU_10": "action unit not in the AU-to-category table",
        "YR_R10": "yaw rotation",
        "O_EYE": "occlusion",
        "IGN_X": "marked IGN (ignore) in the database",
    }


def test_override_maps_an_excluded_variant(tree, tmp_path):
    override = tmp_path / "map.toml"
    override.write_text('[bosphorus.codes]\nLFAU_12L = "happiness"\n')
    result = Bosphorus(tree, load_label_map(override)).scan()
    assert "bosphorus:bs000_LFAU_12L_0" in {s.sample_id for s in result.samples}


def test_skipped_files(tree):
    skipped = {s.path.name: s.reason for s in Bosphorus(tree).scan().skipped}
    assert "no image file" in skipped["bs000_E_SADNESS_0.bnt"]
    assert "unknown extension" in skipped["bs000_N_N_1.obj"]
    assert "lies in folder 'bs001'" in skipped["bs000_E_FEAR_0.png"]


def test_load_and_mislabelled_grid(tree):
    source = Bosphorus(tree)
    samples = {s.sample_id: s for s in source.scan().samples}
    scan = source.load(samples["bosphorus:bs000_N_N_0"])
    assert scan.grid.z.shape == (2, 3)
    assert scan.image.shape == (12, 18, 3)
    assert scan.lm3.labels == scan.lm2.labels and len(scan.lm3.labels) == 3
    np.testing.assert_array_equal(scan.lm2.points[0], [100, 120.5])
    # the .bnt of E_HAPPY claims the neutral scan's image: a mislabelled file
    (tree / "bs000" / "bs000_E_HAPPY_0.bnt").write_bytes(bnt_bytes(name=b"bs000_N_N_0.png"))
    with pytest.raises(FormatError, match="grid names image 'bs000_N_N_0.png'"):
        source.load(samples["bosphorus:bs000_E_HAPPY_0"])


def test_check_skips_a_truncated_grid_and_goes_on(tree):
    path = tree / "bs000" / "bs000_UFAU_1_0.bnt"
    path.write_bytes(path.read_bytes()[:-3])
    result = Bosphorus(tree).scan(check=True)
    assert len(result.samples) == 3
    assert any("truncated" in s.reason and s.path == path for s in result.skipped)


def test_an_excluded_kind_is_counted_even_without_its_siblings(tree):
    (tree / "bs000" / "bs000_YR_R10_0.png").unlink()  # a rotation scan, now without its image
    (tree / "bs000" / "bs000_O_EYE_0.bnt").unlink()  # an occlusion scan without its grid
    result = Bosphorus(tree).scan()
    excluded = {e.code: e for e in result.excluded}
    assert excluded["YR_R10"].reason == "yaw rotation"
    assert excluded["YR_R10"].path.name == "bs000_YR_R10_0.bnt"
    assert excluded["O_EYE"].reason == "occlusion" and excluded["O_EYE"].path.suffix != ".bnt"
    skipped = {s.path.name for s in result.skipped}
    assert not any(name.startswith(("bs000_YR_R10_0", "bs000_O_EYE_0")) for name in skipped)
    assert result.incomplete == [("bosphorus:bs000_E_SADNESS_0", result.incomplete[0][1])]


def test_an_unreadable_subject_folder_is_reported(tree, monkeypatch):
    """The tests run as root, who reads every folder: the refusal is simulated at os.scandir."""
    import os

    (tree / "bs002").mkdir()
    bosphorus_scan(tree / "bs002", "bs002_N_N_0")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("bs002"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = Bosphorus(tree).scan()
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert reasons["bs002"] == "folder cannot be read (Permission denied)"
    assert "bosphorus:bs000_N_N_0" in {s.sample_id for s in result.samples}
