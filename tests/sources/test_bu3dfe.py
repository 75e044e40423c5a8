"""BU-3DFE indexing and loading on a tree built by hand."""

import pytest

from fer3d_bench.errors import DatasetNotFoundError
from fer3d_bench.sources import BU3DFE

from handmade import bu3dfe_scan


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "BU3DFE"
    bu3dfe_scan(root / "F0001", "F0001_NE00WH")
    bu3dfe_scan(root / "F0001", "F0001_AN04WH")
    bu3dfe_scan(root / "M0002", "M0002_HA01BL")
    (root / "F0001" / "F0001_NE00WH_RAW.wrl").write_text("#VRML V2.0 utf8\n")
    (root / "F0001" / "F0001_NE00WH_RAW.pse").write_text("0 0\n")
    bu3dfe_scan(root / "F0001", "F0001_SU02WH", photo=False)  # incomplete
    bu3dfe_scan(root / "F0001", "F0001_XX01WH")  # unknown code
    bu3dfe_scan(root / "F0001", "F0001_SA05WH")  # intensity out of range
    bu3dfe_scan(root / "F0001", "F0001_NE01WH")  # neutral with an intensity
    bu3dfe_scan(root / "F0001", "M0003_DI02WH")  # wrong folder
    (root / "F0001" / "Thumbs.db").write_bytes(b"\0")
    return root


def test_index_finds_samples_with_ids_labels_and_files(tree):
    result = BU3DFE(tree).scan()
    ids = [s.sample_id for s in result.samples]
    assert ids == ["bu3dfe:F0001_AN04", "bu3dfe:F0001_NE00", "bu3dfe:M0002_HA01"]
    anger = result.samples[0]
    assert (anger.subject, anger.label, anger.intensity, anger.sex) == (
        "bu3dfe:F0001",
        "anger",
        4,
        "F",
    )
    assert set(anger.files) == {"mesh", "texture", "landmarks", "photo"}
    assert anger.files["photo"].name == "F0001_AN04WH_F2D.bmp"
    assert result.samples[1].intensity == 0 and result.samples[1].label == "neutral"
    assert result.samples[2].sex == "M"
    assert result.ignored == {"RAW.wrl": 1, "RAW.pse": 1}


def test_every_unusable_file_is_listed_with_its_reason(tree):
    skipped = {s.path.name: s.reason for s in BU3DFE(tree).scan().skipped}
    assert "no photo file" in skipped["F0001_SU02WH_F3D.wrl"]
    assert "unknown expression code 'XX'" in skipped["F0001_XX01WH_F3D.wrl"]
    assert "intensity 05 is not valid for SA (expected 01-04)" in skipped["F0001_SA05WH_F2D.bmp"]
    assert "intensity 01 is not valid for NE (expected 00)" in skipped["F0001_NE01WH_F3D.bnd"]
    assert "names subject M0003 but lies in folder 'F0001'" in skipped["M0003_DI02WH_F3D.wrl"]
    assert "fits no BU-3DFE pattern" in skipped["Thumbs.db"]
    assert len(skipped) == 3 + 4 + 4 + 4 + 4 + 1


def test_index_does_not_depend_on_listing_order(tree, monkeypatch):
    source = BU3DFE(tree)
    first = source.scan()
    monkeypatch.setattr(BU3DFE, "files", lambda self, result: sorted(tree.rglob("*.*"))[::-1])
    again = source.scan()
    assert [s.sample_id for s in again.samples] == [s.sample_id for s in first.samples]


def test_load_returns_mesh_photo_texture_landmarks(tree):
    source = BU3DFE(tree)
    scan = source.load(source.scan().samples[0])
    assert scan.mesh.faces.shape == (7, 3)
    assert scan.photo.shape == (16, 16, 3)
    assert scan.texture.shape == (8, 8, 3)
    assert scan.landmarks.indices.tolist() == [0, 5]


def test_check_skips_samples_whose_files_do_not_parse(tree):
    (tree / "F0001" / "F0001_AN04WH_F3D.wrl").write_text("#VRML V2.0 utf8\nShape {}\n")
    (tree / "M0002" / "M0002_HA01BL_F3D.bnd").write_text("99\t0\t0\t0\n")
    result = BU3DFE(tree).scan(check=True)
    assert [s.sample_id for s in result.samples] == ["bu3dfe:F0001_NE00"]
    reasons = {s.path.name: s.reason for s in result.skipped}
    assert "bu3dfe:F0001_AN04: no IndexedFaceSet" in reasons["F0001_AN04WH_F3D.wrl"]
    assert "index 99 is out of range for a mesh of 8" in reasons["M0002_HA01BL_F3D.bnd"]


def test_missing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        BU3DFE(tmp_path / "nowhere")
