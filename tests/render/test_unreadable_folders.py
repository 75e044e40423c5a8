"""A subject folder that cannot be read is never lost without a word: `scan` lists it,
`render-depth` and `build-dataset` fail on it (exit 1, naming it) unless --allow-failures, and
list it either way.

The folder is made really unreadable (mode 000). The tests run as root in CI, and root reads
any folder through two capabilities, CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH; so the block
that runs the command drops them from this thread's effective set (capset(2); they stay
permitted, and are raised again after it). The command runs in this thread (one worker), so
the kernel refuses it the folder as it would any user. Where that cannot be arranged, the
test is skipped, saying why.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil

import h5py
import pandas as pd
import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.sources import BU3DFE

_CAP_VERSION_3 = 0x20080522
_DAC = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _capabilities(libc, header, data, call) -> None:
    if call(ctypes.byref(header), data) != 0:
        error = os.strerror(ctypes.get_errno())
        pytest.skip(f"cannot give up root's override of permissions here ({error})")


@contextlib.contextmanager
def permissions_apply():
    """For the block, this thread reads only what its permissions let it read, root or not."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _Header(_CAP_VERSION_3, 0), (_Data * 2)()
    _capabilities(libc, header, data, libc.capget)
    saved = data[0].effective
    data[0].effective = saved & ~_DAC
    _capabilities(libc, header, data, libc.capset)
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)


@contextlib.contextmanager
def unreadable(folder):
    """`folder` at mode 000 for the block, run under `permissions_apply`; skips the test where
    the folder can still be listed (a file system that ignores modes)."""
    mode = folder.stat().st_mode
    folder.chmod(0)
    try:
        with permissions_apply():
            try:
                os.listdir(folder)
            except PermissionError:
                pass
            else:
                pytest.skip(f"{folder} stays readable at mode 000 here")
            yield
    finally:
        folder.chmod(mode)


@pytest.fixture
def two_subjects(tiny_sample, tmp_path):
    """A BU-3DFE root: F0001 with one scan of the tiny sample, and F0002 a copy of it."""
    _, roots = tiny_sample
    root = tmp_path / "bu3dfe"
    for subject in ("F0001", "F0002"):
        (root / subject).mkdir(parents=True)
        for path in (roots["bu3dfe"] / "F0001").glob("F0001_NE00*"):
            shutil.copy(path, root / subject / path.name.replace("F0001", subject))
    return root


def run(*args):
    return CliRunner(env={"FER3D_PROGRESS": "off"}).invoke(main, [str(a) for a in args])


def test_scan_lists_an_unreadable_folder(two_subjects):
    with unreadable(two_subjects / "F0002"):
        result = BU3DFE(two_subjects).scan()
    assert [s.sample_id for s in result.samples] == ["bu3dfe:F0001_NE00"]
    assert [(s.path.name, s.reason) for s in result.unreadable] == [
        ("F0002", "folder cannot be read (Permission denied)")
    ]
    assert result.unreadable[0] in result.skipped


def test_render_and_build_fail_on_an_unreadable_folder_unless_allowed(two_subjects, tmp_path):
    """render-depth, then build-dataset on its render folder (the sample is rendered once)."""
    folder, render, merged = two_subjects / "F0002", tmp_path / "render", tmp_path / "merged.h5"
    out = render / "bu3dfe"  # where build-dataset --render-dir looks for this dataset
    args = ["render-depth", two_subjects, "--dataset", "bu3dfe", "--out", out, "--size", 32]
    build = ["build-dataset", "--bu3dfe", two_subjects, "--out", merged, "--size", 32]
    with unreadable(folder):
        render.mkdir()
        refused = run(*args)
        allowed = run(*args, "--allow-failures")
        build_refused = run(*build, "--render-dir", render)
        assert not merged.exists()
        build_allowed = run(*build, "--render-dir", render, "--allow-failures")
    lost = f"bu3dfe:F0002: {folder}: folder cannot be read (Permission denied)"

    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert refused.stderr.count("\n") == 1  # one line
    assert refused.stderr.startswith(f"Error: 1 samples failed to render, first {lost} (see")
    assert allowed.exit_code == 0, allowed.output
    assert f"failed: {lost}" in allowed.stdout
    table = pd.read_csv(out / "alignment.csv").set_index("sample_id")
    assert list(table.index) == ["bu3dfe:F0001_NE00", "bu3dfe:F0002"]
    assert list(table["status"] == "failed") == [False, True]

    assert build_refused.exit_code == 1 and "Traceback" not in build_refused.output
    assert "bu3dfe: 1 samples could not be read or rendered" in build_refused.stderr
    assert lost in build_refused.stderr
    assert build_allowed.exit_code == 0, build_allowed.output
    assert f"left out (failed to render): {lost}" in build_allowed.stdout
    with h5py.File(merged) as h5:
        assert [s.decode() for s in h5["sample_id"][:]] == ["bu3dfe:F0001_NE00"]
