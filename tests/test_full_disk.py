"""A full disk (issue 25, part of class 8): each command that writes says so in one line naming
the file, exits 1, and leaves nothing partial under a name a later run trusts (no temporaries,
no half-written output). The disk is a real tiny tmpfs, mounted for the test."""

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.io import NoSpace, atomic_path
from fer3d_bench.report import write_report

RUN_FIXTURE = Path(__file__).parent / "data" / "run-0.7.0"
QUIET = {"FER3D_PROGRESS": "off"}
FILLER = "filler"


@pytest.fixture
def disk(tmp_path):
    """A 1 MiB tmpfs at tmp_path/disk, unmounted after; skipped where none can be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here ({exc}): the full-disk tests need one")
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip()}): needs root or CAP_SYS_ADMIN"
        )
    yield disk
    if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _leave_free(disk: Path, free: int) -> None:
    """Fill the disk until about `free` bytes are left."""
    info = os.statvfs(disk)
    (disk / FILLER).write_bytes(bytes(max(0, info.f_bavail * info.f_frsize - free)))


def _left(disk: Path) -> list[str]:
    """Everything on the disk but the filler, relative, files only."""
    return sorted(
        str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file() and p.name != FILLER
    )


def _one_line(stderr: str, path: Path) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {path}: no space left on the device"), stderr
    return lines[0]


def _no_temporaries(disk: Path) -> None:
    assert not [name for name in _left(disk) if ".tmp-" in name or ".partial-" in name]


def _build_args(roots: dict, out: Path, render_dir: Path) -> list[str]:
    return [
        "build-dataset", "--bu3dfe", str(roots["bu3dfe"]), "--out", str(out),
        "--size", "48", "--render-dir", str(render_dir),
    ]  # fmt: skip


@pytest.fixture
def render_copy(tiny_merged, tmp_path):
    """A copy of the tiny world's BU-3DFE render, so that build-dataset reuses it (fast)."""
    folder, roots, _ = tiny_merged
    copy = tmp_path / "render"
    shutil.copytree(folder / "render" / "bu3dfe", copy / "bu3dfe")
    return roots, copy


def test_build_dataset_refuses_before_writing_when_the_file_cannot_fit(disk, render_copy):
    roots, render_dir = render_copy
    out = disk / "merged.h5"
    result = CliRunner().invoke(main, _build_args(roots, out, render_dir), env=QUIET)
    assert result.exit_code == 1, result.output
    line = _one_line(result.stderr, out)
    assert "the merged file needs up to" in line and "MiB free" in line
    assert _left(disk) == []


HDF5_FILLS_THE_DISK = """
import sys
import fer3d_bench.dataset.build as build
build.require_space = lambda *args, **kwargs: None  # as if the disk filled after the check
from fer3d_bench.cli import main
from fer3d_bench.io import NoSpace, atomic_path
main(sys.argv[1:], prog_name="fer3d-bench")
"""


def test_build_dataset_whose_disk_fills_while_hdf5_writes_exits_1_without_crashing(
    disk, render_copy
):
    """HDF5 cannot be shut down after a failed write (it crashed at exit, status -11): the
    command says so and ends at once, and the temporary file is gone."""
    roots, render_dir = render_copy
    out = disk / "merged.h5"
    _leave_free(disk, 64 * 1024)
    done = subprocess.run(
        [sys.executable, "-c", HDF5_FILLS_THE_DISK, *_build_args(roots, out, render_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, **QUIET},
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    _one_line(done.stderr, out)
    assert _left(disk) == []


def test_render_depth_onto_a_full_disk(disk, tiny_sample):
    _, roots = tiny_sample
    out = disk / "render"
    _leave_free(disk, 96 * 1024)  # room for a few samples, not for all
    args = ["render-depth", str(roots["bu3dfe"]), "--dataset", "bu3dfe", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--size", "48"], env=QUIET)
    assert result.exit_code == 1, result.output
    line = result.stderr.splitlines()
    assert len(line) == 1 and line[0].startswith(f"error: {out}"), result.stderr
    assert "no space left on the device" in line[0]
    _no_temporaries(disk)
    rendered = [name for name in _left(disk) if name.endswith(".json") and "/bu3dfe/" in name]
    for record in rendered:  # every sample it kept is whole: a later run reuses it
        stem = disk / record[: -len(".json")]
        assert Path(f"{stem}_rgb.png").is_file() and Path(f"{stem}_depth.png").is_file()


def test_evaluate_onto_a_full_disk(disk, small):
    run = disk / "run"
    _leave_free(disk, 0)
    args = [
        "evaluate",
        "--dataset", str(small / "merged.h5"),
        "--protocol", "bu3dfe-legacy",
        "--manifests", str(small / "m"),
        "--out", str(run),
        "--preset", "tiny",
        "--epochs", "1",
        "--repetitions", "1",
        "--max-folds", "1",
        "--device", "cpu",
    ]  # fmt: skip
    result = CliRunner().invoke(main, args, env=QUIET)
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {run}"), result.stderr
    assert "no space left on the device" in lines[0]
    _no_temporaries(disk)
    assert not (run / "run.json").exists()  # never half-written


def test_a_checkpoint_that_fills_the_disk_is_named_and_not_kept(disk):
    """torch.save says only "file write failed" (a RuntimeError): a writer's error while the
    disk is full is taken for the full disk, and the temporary goes."""
    torch = pytest.importorskip("torch")
    other = pytest.raises(ValueError, match="not a disk problem")  # with room: passes untouched
    with other, atomic_path(disk / "small.txt"):
        raise ValueError("not a disk problem")
    quota = pytest.raises(NoSpace, match="disk quota")  # the user's quota, not the disk
    with quota, atomic_path(disk / "small.txt"):
        raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))
    target = disk / "checkpoint.pt"
    full = pytest.raises(NoSpace, match=r"checkpoint\.pt: no space left on the device")
    with full, atomic_path(target) as tmp:
        torch.save({"weights": torch.zeros(512, 1024)}, tmp)  # 2 MiB onto 1 MiB
    assert _left(disk) == []


def test_score_onto_a_full_disk(disk, small, tmp_path):
    run = shutil.copytree(RUN_FIXTURE, tmp_path / "run", ignore=shutil.ignore_patterns("*.py*"))
    write_report(run)  # its predictions.csv: the 0.7.0 run was made on the small world
    out = disk / "scored"
    _leave_free(disk, 32 * 1024)
    args = ["score", "--protocol", "bu3dfe-legacy", "--predictions", str(run / "predictions.csv")]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--manifests", str(small / "m")])
    assert result.exit_code == 1, result.output
    _one_line(result.stderr, out)
    assert _left(disk) == [] and not out.exists()
