"""Nothing below a dataset root is passed over without a word: a link to a folder (never
followed), a link to nothing and a FIFO are listed as skipped and as unreadable, so that
render-depth and build-dataset count them as failures. A link to a regular file is read.
(A folder that cannot be listed: tests/render/test_unreadable_folders.py, with a real one.)"""

import os

from fer3d_bench.sources import BU3DFE, Bosphorus

from handmade import bosphorus_scan, bu3dfe_scan


def test_links_and_special_files_are_listed_as_unreadable(tmp_path):
    root = tmp_path / "BU3DFE"
    bu3dfe_scan(root / "F0001", "F0001_NE00WH")
    elsewhere = tmp_path / "elsewhere" / "F0002"
    bu3dfe_scan(elsewhere, "F0002_NE00WH")
    (root / "F0002").symlink_to(elsewhere, target_is_directory=True)
    (root / "F0001" / "F0001_AN01WH_F3D.wrl").symlink_to(tmp_path / "gone.wrl")
    os.mkfifo(root / "F0001" / "F0001_AN02WH_F3D.wrl")
    result = BU3DFE(root).scan()
    assert [s.sample_id for s in result.samples] == ["bu3dfe:F0001_NE00"]
    reasons = {s.path.relative_to(root).as_posix(): s.reason for s in result.unreadable}
    assert reasons == {
        "F0001/F0001_AN01WH_F3D.wrl": f"a link to nothing that can be read ({tmp_path}/gone.wrl)",
        "F0001/F0001_AN02WH_F3D.wrl": "not a regular file (a FIFO, socket or device); not read",
        "F0002": f"a link to a folder ({elsewhere}); links are not followed: put the folder "
        "itself here",
    }
    assert set(result.unreadable) <= set(result.skipped)


def test_a_link_to_a_file_is_read_and_nothing_is_unreadable(tmp_path):
    root = tmp_path / "bos"
    bosphorus_scan(tmp_path / "store", "bs000_N_N_0")
    (root / "bs000").mkdir(parents=True)
    for path in (tmp_path / "store").iterdir():
        (root / "bs000" / path.name).symlink_to(path)
    result = Bosphorus(root).scan(check=True)
    assert [s.sample_id for s in result.samples] == ["bosphorus:bs000_N_N_0"]
    assert result.unreadable == [] and result.skipped == []
