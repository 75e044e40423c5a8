"""What render-depth reads back from its own output folder, damaged or planted there.

A sample's record edited, truncated or copied from another sample means "render it again",
never its row in the table; a damaged render.json, which says which dataset the folder holds,
is one line naming it; a link planted in place of the folder a dataset's crops go to is refused
before anything is written through it.
"""

import json
import os
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.render.layout import output_paths
from fer3d_bench.render.worker import read_record

CODES = ("NE00", "AN01", "AN02", "AN03", "AN04", "DI01")


def run(*args):
    return CliRunner(env={"FER3D_PROGRESS": "off"}).invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def rendered(tiny_sample, tmp_path_factory):
    """(root, out): six BU-3DFE scans of the tiny sample, rendered at 32 px into `out`."""
    _, roots = tiny_sample
    folder = tmp_path_factory.mktemp("records")
    root = folder / "bu3dfe"
    (root / "F0001").mkdir(parents=True)
    for code in CODES:
        for path in (roots["bu3dfe"] / "F0001").glob(f"F0001_{code}*"):
            shutil.copy(path, root / "F0001" / path.name)
    out = folder / "out"
    result = run("render-depth", root, "--dataset", "bu3dfe", "--out", out, "--size", 32)
    assert result.exit_code == 0, result.output
    return root, out


@pytest.fixture
def copy(rendered, tmp_path):
    """A copy of the rendered folder, free to damage."""
    root, out = rendered
    shutil.copytree(out, tmp_path / "out")
    return root, tmp_path / "out"


def _record(out, code):
    return output_paths(out, f"bu3dfe:F0001_{code}")["record"]


def test_a_damaged_record_means_render_it_again(copy):
    root, out = copy

    def edited(code, **changes):
        record = json.loads(_record(out, code).read_text())
        row = {**record["row"], **changes.pop("row", {})}
        return json.dumps({**record, "row": row, **changes})

    damage = {
        "AN01": "[1, 2, 3]",  # a list where the record is an object
        "AN02": _record(out, "AN02").read_text()[:200],  # truncated
        "AN03": edited("AN03", row={"landmarks": [83]}),  # a list in a cell of the table
        "AN04": edited("AN04", row={"sample_id": "bu3dfe:F0001_NE00"}),  # another sample's row
        "DI01": edited("DI01", files=["rgb", "depth"]),  # a list where an object is
    }
    for code, text in damage.items():
        _record(out, code).write_text(text)
    intact = _record(out, "NE00").stat().st_mtime_ns
    result = run("render-depth", root, "--dataset", "bu3dfe", "--out", out, "--size", 32)
    assert result.exit_code == 0, result.output
    assert _record(out, "NE00").stat().st_mtime_ns == intact  # reused, not rendered again
    for code in damage:  # each rendered again: its record is whole and its own
        assert read_record(out, f"bu3dfe:F0001_{code}")["row"]["sample_id"].endswith(code)
    table = pd.read_csv(out / "alignment.csv")
    assert sorted(table["sample_id"]) == sorted(f"bu3dfe:F0001_{code}" for code in CODES)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[]", "expected a JSON object, found list"),
        ('{"dataset": "bu3dfe", "cou', "unreadable or truncated JSON"),
        ('{"dataset": 5}', "dataset must be a string, found 5"),
        ("{}", "the record lacks 'dataset'"),
    ],
)
def test_a_damaged_summary_is_one_line_naming_it(copy, text, problem):
    root, out = copy
    (out / "render.json").write_text(text)
    before = sorted(p.name for p in out.rglob("*"))
    result = run("render-depth", root, "--dataset", "bu3dfe", "--out", out, "--size", 32)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {out / 'render.json'}: {problem}")
    assert "remove it to go on" in result.stderr
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing written


def test_a_summary_that_is_a_fifo_is_refused_without_blocking(copy):
    root, out = copy
    (out / "render.json").unlink()
    os.mkfifo(out / "render.json")
    result = run("render-depth", root, "--dataset", "bu3dfe", "--out", out, "--size", 32)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {out / 'render.json'}: ")
    assert "not a regular file" in result.stderr


def test_a_link_planted_for_the_dataset_folder_is_refused(rendered, tmp_path):
    root, _ = rendered
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "bu3dfe").symlink_to(outside, target_is_directory=True)
    result = run("render-depth", root, "--dataset", "bu3dfe", "--out", out, "--size", 32)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {out / 'bu3dfe'}: is a symbolic link")
    assert list(outside.iterdir()) == []  # nothing written through it
    assert sorted(p.name for p in out.iterdir()) == ["bu3dfe"]  # nor reports beside it
