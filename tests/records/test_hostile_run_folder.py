"""Names read from a run folder someone else wrote become paths: none may lead outside it."""

import json
import shutil
from pathlib import Path

import pytest

from fer3d_bench.io import OutsideFolder, inside
from fer3d_bench.names import UnsafeName, checked_name, checked_version
from fer3d_bench.records.run import read_run_info
from fer3d_bench.report import write_report

FIXTURE = Path(__file__).parents[1] / "data" / "run-0.7.0"


@pytest.fixture
def run(tmp_path):
    return shutil.copytree(FIXTURE, tmp_path / "box" / "run", ignore=shutil.ignore_patterns("*.py"))


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_result_whose_protocol_climbs_out_is_refused_and_nothing_is_written_outside(run):
    result = next(run.rglob("result.json"))
    _edit(result, lambda d: d["job"].update(protocol="../../escape"))
    before = sorted(p.name for p in run.parent.iterdir())
    with pytest.raises(UnsafeName, match=r"protocol '\.\./\.\./escape' is not allowed") as error:
        write_report(run)
    assert str(result) in str(error.value)
    assert sorted(p.name for p in run.parent.iterdir()) == before


def test_a_run_json_with_an_unsafe_variant_or_version_is_refused(run):
    _edit(run / "run.json", lambda d: d["variants"].update({"../x": d["variants"]["full"]}))
    with pytest.raises(UnsafeName, match="variant or protocol name"):
        read_run_info(run / "run.json")
    _edit(run / "run.json", lambda d: d["variants"].pop("../x"))
    _edit(run / "run.json", lambda d: d["protocols"]["bu3dfe-legacy"].update(version="1/../2"))
    with pytest.raises(UnsafeName, match="version"):
        read_run_info(run / "run.json")


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "", "A", "x" * 65, "a\\b", "é"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(UnsafeName):
        checked_name(name, "protocol")


def test_safe_names_and_versions_pass():
    assert checked_name("bu3dfe-legacy", "protocol") == "bu3dfe-legacy"
    assert checked_name("rgb_only", "variant") == "rgb_only"
    assert checked_version("1.10.0", "version") == "1.10.0"
    for bad in ("1.0", "01.0.0", "1.0.0-rc1", "../1.0.0", 1):
        with pytest.raises(UnsafeName):
            checked_version(bad, "version")


def test_inside_follows_symbolic_links(tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    (box / "link").symlink_to(tmp_path)  # a link planted in the folder, pointing out of it
    assert inside(box, box / "a" / "b.json") == box / "a" / "b.json"
    for escape in (box / ".." / "x", box / "link" / "x", tmp_path / "x"):
        with pytest.raises(OutsideFolder):
            inside(box, escape)
