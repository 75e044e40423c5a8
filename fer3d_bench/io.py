"""Atomic writes: outputs appear complete under their final name, or not at all."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from fer3d_bench.errors import Fer3dError, FileError
from fer3d_bench.processes import HOST, process_alive

_HOST = HOST.replace("-", "_")


class OutsideFolder(Fer3dError):
    """A path the toolkit was about to write lies outside the folder it was given."""


def inside(folder: Path | str, path: Path | str) -> Path:
    """`path`, checked to lie inside `folder` once both are resolved (symbolic links too).

    Every output of a command given `--out DIR` goes through this, so that a name read from a
    file (a protocol, a variant, a sample id) can never make it write elsewhere.
    """
    root, target = Path(folder).resolve(), Path(path).resolve()
    if target != root and root not in target.parents:
        raise OutsideFolder(f"{path}: refusing to write outside {folder}")
    return Path(path)


def regular_file(path: Path | str, *, what: str = "file", max_bytes: int | None = None) -> Path:
    """`path`, checked to be a regular file (a link to one is followed) of at most `max_bytes`.

    Files other people hand us are read only through this first: a FIFO or a device named like
    a checkpoint would block a reader forever, and a size bound keeps a small-looking input from
    taking all memory. Raises FileError naming the file.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileError(path, f"{what} not found") from None
    except OSError as error:
        raise FileError(path, f"{what} cannot be read ({error.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise FileError(path, f"{what} is {kind}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise FileError(
            path, f"{what} is {info.st_size:,} bytes; refusing more than {max_bytes:,} bytes"
        )
    return path


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only on success.

    The temporary name holds this host and process id (`.NAME.tmp-HOST-PID`); temporary files of
    `target` left by a killed process on this host are removed first, so none accumulate.
    """
    target = Path(target)
    if not target.parent.is_dir():
        raise Fer3dError(f"{target}: output folder {target.parent} does not exist")
    remove_stale_temporaries(target)
    tmp = target.with_name(f".{target.name}.tmp-{_HOST}-{os.getpid()}")
    tmp.unlink(missing_ok=True)  # an earlier process of this id's, or a planted link
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete `target`'s temporary files whose writer, a process of this host, is gone."""
    removed = []
    for tmp in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        host, _, pid = tmp.name.rpartition(".tmp-")[2].rpartition("-")
        if host in (_HOST, "") and pid.isdigit() and not process_alive(int(pid)):
            if tmp.is_dir() and not tmp.is_symlink():  # a folder written whole (`score`)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
