"""Writing n files into one folder lists it once, not n times (a render writes three files per
sample into one folder: listing it per file cost n²), and still removes what a dead writer of
this host left there."""

import os
import subprocess
import sys

from fer3d_bench import io
from fer3d_bench.io import _HOST, atomic_path


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_folder_is_swept_once_per_process_and_stale_files_go(tmp_path, monkeypatch):
    stale = tmp_path / f".old.png.tmp-{_HOST}-{_dead_pid()}"  # another file's, writer gone
    stale.write_bytes(b"half")
    alive = tmp_path / f".new.png.tmp-{_HOST}-{os.getppid()}"  # a writer still at work
    alive.write_bytes(b"busy")
    listed = []
    sweep = io._remove_stale
    monkeypatch.setattr(io, "_remove_stale", lambda found: listed.append(1) or sweep(found))
    for k in range(50):
        with atomic_path(tmp_path / f"{k}.png") as tmp:
            tmp.write_bytes(b"x")
    assert len(listed) == 1
    assert not stale.exists() and alive.exists()
    assert len(list(tmp_path.glob("*.png"))) == 50
