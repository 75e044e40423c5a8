"""Planted links never lead a write outside the folder given (issue 25, class 1): a symbolic
link in place of a folder we write into, a link or a hard link in place of a file we write in
place. Each command refuses with one line naming the link, and the outside stays as it was."""

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.errors import FileError
from fer3d_bench.io import OutsideFolder, open_fd_in_place, open_in_place, output_folder
from fer3d_bench.processes import LOCK_FILE, folder_lock

RUN_FIXTURE = Path(__file__).parent / "data" / "run-0.7.0"
OWN = "the user's own file\n"
QUIET = {"FER3D_PROGRESS": "off"}


def _outside(tmp_path: Path) -> tuple[Path, Path]:
    """(a folder outside the one given, a file of the user's in it)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text(OWN)
    return outside, victim


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _refused(result, *needles: str) -> str:
    """The command failed with exactly one line on stderr, `error: ...` holding each needle."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# the shared writer: output_folder, open_in_place


def test_output_folder_makes_nested_folders_and_accepts_a_link_as_the_folder_given(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    given = tmp_path / "given"
    given.symlink_to(real)  # the user's own choice of where their output goes
    assert output_folder(given, given / "a" / "b") == given / "a" / "b"
    assert (real / "a" / "b").is_dir()
    assert output_folder(tmp_path / "new" / "root") == tmp_path / "new" / "root"
    assert (tmp_path / "new" / "root").is_dir()


@pytest.mark.parametrize("points", ["outside", "inside"])
def test_output_folder_refuses_a_link_in_place_of_a_folder_of_ours(tmp_path, points):
    outside, _ = _outside(tmp_path)
    root = tmp_path / "root"
    (root / "elsewhere").mkdir(parents=True)
    (root / "a").symlink_to(outside if points == "outside" else root / "elsewhere")
    before = _listing(outside)
    with pytest.raises(OutsideFolder, match=r"a: is a symbolic link .*refusing to write through"):
        output_folder(root, root / "a" / "b")
    assert _listing(outside) == before
    assert not (root / "elsewhere" / "b").exists()


def test_output_folder_refuses_a_path_that_climbs_out_or_a_file_in_the_way(tmp_path):
    root = tmp_path / "root"
    with pytest.raises(OutsideFolder, match="refusing to write outside"):
        output_folder(root, root / ".." / "escape")
    assert not (tmp_path / "escape").exists()
    root.mkdir()
    (root / "file").write_text("x")
    with pytest.raises(FileError, match="exists and is not a folder"):
        output_folder(root, root / "file" / "sub")


def test_open_in_place_never_writes_through_a_link_or_a_hard_link(tmp_path):
    _, victim = _outside(tmp_path)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "soft").symlink_to(victim)
    os.link(victim, folder / "hard")
    for name, problem in (("soft", "is a symbolic link"), ("hard", "has 2 hard links")):
        for mode in ("w", "a", "wb"):
            with pytest.raises(FileError, match=problem):
                open_in_place(folder / name, mode)
    assert victim.read_text() == OWN  # never emptied, never appended to
    with open_in_place(folder / "log", "a") as log:
        log.write("one\n")
    with open_in_place(folder / "log", "a") as log:
        log.write("two\n")
    assert (folder / "log").read_text() == "one\ntwo\n"
    with open_in_place(folder / "log", "w") as log:
        log.write("new\n")
    assert (folder / "log").read_text() == "new\n"


def test_open_in_place_refuses_a_fifo_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileError, match="not a regular file"):  # and does not wait for a reader
        open_fd_in_place(fifo, os.O_WRONLY)
    with pytest.raises(ValueError, match="truncate after"):
        open_fd_in_place(tmp_path / "x", os.O_WRONLY | os.O_TRUNC)


# the fold lock


def test_a_hard_linked_or_special_lock_file_is_refused_and_never_emptied(tmp_path):
    _, victim = _outside(tmp_path)
    fold = tmp_path / "fold"
    fold.mkdir()
    os.link(victim, fold / LOCK_FILE)
    hard = pytest.raises(FileError, match=r"\.lock: the folder's lock file has 2 hard links")
    with hard, folder_lock(fold):
        pass
    assert victim.read_text() == OWN
    (fold / LOCK_FILE).unlink()
    os.mkfifo(fold / LOCK_FILE)
    with pytest.raises(FileError, match="lock file is not a regular file"), folder_lock(fold):
        pass
    (fold / LOCK_FILE).unlink()
    with folder_lock(fold):  # its own lock file: taken, written, emptied on release
        assert (fold / LOCK_FILE).read_text().startswith("{")
    assert (fold / LOCK_FILE).read_text() == ""


# through the commands


def test_report_refuses_a_link_planted_as_the_run_figures_folder(tmp_path):
    outside, _ = _outside(tmp_path)
    run = shutil.copytree(RUN_FIXTURE, tmp_path / "run", ignore=shutil.ignore_patterns("*.py*"))
    (run / "figures").symlink_to(outside)
    before = _listing(outside)
    result = CliRunner().invoke(main, ["report", str(run)])
    _refused(result, f"{run / 'figures'}: is a symbolic link", "refusing to write through it")
    assert _listing(outside) == before  # no confusion, curves or t-SNE PNG landed there


def test_build_dataset_refuses_a_link_planted_as_a_dataset_render_folder(tiny_sample, tmp_path):
    _, roots = tiny_sample
    outside, _ = _outside(tmp_path)
    render_dir = tmp_path / "render"
    render_dir.mkdir()
    (render_dir / "bu3dfe").symlink_to(outside)
    before = _listing(outside)
    args = ["build-dataset", "--bu3dfe", str(roots["bu3dfe"]), "--out", str(tmp_path / "m.h5")]
    result = CliRunner().invoke(main, [*args, "--size", "48", "--render-dir", str(render_dir)])
    _refused(result, f"{render_dir / 'bu3dfe'}: is a symbolic link")
    assert _listing(outside) == before  # no crop, record or alignment.csv
    assert not (tmp_path / "m.h5").exists()


def _evaluate(small: Path, out: Path) -> list[str]:
    return [
        "evaluate",
        "--dataset", str(small / "merged.h5"),
        "--protocol", "bu3dfe-legacy",
        "--manifests", str(small / "m"),
        "--out", str(out),
        "--preset", "tiny",
        "--epochs", "1",
        "--repetitions", "1",
        "--max-folds", "1",
        "--device", "cpu",
    ]  # fmt: skip


def test_evaluate_refuses_a_hard_linked_lock_and_a_linked_protocol_folder(small, tmp_path):
    outside, victim = _outside(tmp_path)
    run = tmp_path / "run"
    fold = run / "bu3dfe-legacy" / "0" / "0"
    fold.mkdir(parents=True)
    os.link(victim, fold / LOCK_FILE)
    result = CliRunner().invoke(main, _evaluate(small, run), env=QUIET)
    _refused(result, f"{fold / LOCK_FILE}: the folder's lock file has 2 hard links")
    assert victim.read_text() == OWN
    assert not (fold / "checkpoint.pt").exists()

    shutil.rmtree(run / "bu3dfe-legacy")
    (run / "bu3dfe-legacy").symlink_to(outside)
    before = _listing(outside)
    result = CliRunner().invoke(main, _evaluate(small, run), env=QUIET)
    _refused(result, f"{run / 'bu3dfe-legacy'}", "refusing to write outside")
    assert _listing(outside) == before
    # a link that leads back inside the run is no folder of ours either
    (run / "bu3dfe-legacy").unlink()
    (run / "elsewhere").mkdir()
    (run / "bu3dfe-legacy").symlink_to(run / "elsewhere")
    result = CliRunner().invoke(main, _evaluate(small, run), env=QUIET)
    _refused(result, f"{run / 'bu3dfe-legacy'}: is a symbolic link")
    assert list((run / "elsewhere").iterdir()) == []


def test_train_refuses_a_hard_linked_lock_in_its_folder(small, tmp_path):
    _, victim = _outside(tmp_path)
    out = tmp_path / "fold"
    out.mkdir()
    os.link(victim, out / LOCK_FILE)
    manifest = small / "m" / "bu3dfe-legacy" / "1.0.0.json"
    args = ["train", "--dataset", str(small / "merged.h5"), "--manifest", str(manifest)]
    args += ["--out", str(out), "--preset", "tiny", "--epochs", "1", "--device", "cpu"]
    result = CliRunner().invoke(main, args, env=QUIET)
    _refused(result, f"{out / LOCK_FILE}: the folder's lock file has 2 hard links")
    assert victim.read_text() == OWN
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
