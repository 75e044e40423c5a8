"""Writes: outputs appear complete under their final name, or not at all, and only inside the
folder given (never through a planted link)."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from fer3d_bench.errors import Fer3dError, FileError
from fer3d_bench.processes import HOST, NO_SPACE, open_unshared, process_alive

_HOST = HOST.replace("-", "_")
NEARLY_FULL = 256 * 1024  # free bytes under which a failed write is taken for a full disk


class OutsideFolder(Fer3dError):
    """A path the toolkit was about to write lies outside the folder it was given."""


class NoSpace(FileError):
    """The file system a file was being written to is full (or the user's quota on it is)."""

    def __init__(self, path: Path | str, detail: str = ""):
        self.detail = detail
        super().__init__(path, f"no space left on the device{f' ({detail})' if detail else ''}")

    def __reduce__(self):  # raised in a worker process, it crosses back pickled
        return type(self), (self.path, self.detail)


def full(path: Path | str, error: Exception, consequence: str) -> NoSpace:
    """The NoSpace error of `error` (ENOSPC, EDQUOT, or a writer's own) met writing `path`."""
    quota = isinstance(error, OSError) and error.errno == errno.EDQUOT
    return NoSpace(path, ("the disk quota is exceeded; " if quota else "") + consequence)


def _out_of_space(error: Exception, folder: Path) -> bool:
    """Whether a failed write failed for want of space: ENOSPC or EDQUOT, or any writer's
    error (torch.save raises a RuntimeError of its own) while the file system has under
    `NEARLY_FULL` bytes left; the temporary is still there, holding what did fit."""
    if isinstance(error, OSError) and error.errno in NO_SPACE:
        return True
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < NEARLY_FULL


def require_space(path: Path | str, needed: int, what: str = "it") -> None:
    """Refuse to start writing `path` unless its file system has `needed` bytes free.

    For a large file whose size is known before it is written (the merged HDF5 file): HDF5
    cannot recover from a disk that fills while it writes, so we look before we write.
    """
    path = Path(path)
    info = os.statvfs(path.parent)
    free = info.f_bavail * info.f_frsize
    if free < needed:
        raise NoSpace(path, f"{what} needs up to {_size(needed)}; {_size(free)} free")


def _size(n: int) -> str:
    """'512 bytes', '3.2 MiB', '1.5 GiB'."""
    if n < 1024:
        return f"{n} bytes"
    value, unit = n / 1024, "KiB"
    for larger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"


def inside(folder: Path | str, path: Path | str) -> Path:
    """`path`, checked to lie inside `folder` once both are resolved (symbolic links too).

    Every output of a command given `--out DIR` goes through this, so that a name read from a
    file (a protocol, a variant, a sample id) can never make it write elsewhere.
    """
    root, target = Path(folder).resolve(), Path(path).resolve()
    if target != root and root not in target.parents:
        raise OutsideFolder(f"{path}: refusing to write outside {folder}")
    return Path(path)


def output_folder(root: Path | str, path: Path | str | None = None) -> Path:
    """Make (as needed) and return the folder `path`, which must lie inside the folder `root`.

    `mkdir(exist_ok=True)` happily "uses" a symbolic link planted where a folder of ours
    belongs, and everything we write there lands wherever it points. So each folder between
    `root` and `path` is created one at a time and refused if it is a link (even one pointing
    back inside: a link is not a folder we made); the result is then checked with `inside`.
    `root` itself is the user's choice and may be a link; it is created with its parents.
    `path` defaults to `root`. Raises OutsideFolder or FileError naming the folder.
    """
    root = Path(root)
    path = root if path is None else Path(path)
    try:
        below = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        raise OutsideFolder(f"{path}: refusing to write outside {root}") from None
    _make_folder(root, parents=True)
    folder = root
    for part in below.parts:
        folder = folder / part
        _make_folder(folder, parents=False)
    return inside(root, path)


def _make_folder(folder: Path, *, parents: bool) -> None:
    try:
        folder.mkdir(parents=parents)
        return
    except FileExistsError:
        pass
    except OSError as error:
        if error.errno in NO_SPACE:
            raise full(folder, error, "the folder could not be made") from None
        raise FileError(folder, f"cannot create this folder ({error.strerror})") from None
    if not parents and folder.is_symlink():
        raise OutsideFolder(
            f"{folder}: is a symbolic link (to {os.readlink(folder)}), not a folder; "
            "refusing to write through it"
        )
    if not folder.is_dir():
        raise FileError(folder, "exists and is not a folder")


def open_fd_in_place(path: Path | str, flags: int, mode: int = 0o644) -> int:
    """A descriptor of the regular file `path` (created if missing), opened with `flags`.

    For the few files written in place rather than through `atomic_path` (a rename replaces a
    planted link; writing in place would go through it). Never follows a link, never blocks on
    a FIFO, and refuses a file with more than one hard link (`processes.open_unshared`).
    `flags` must not hold `O_TRUNC`: truncate only after this returns. Raises FileError (or
    NoSpace) naming the file.
    """
    if flags & os.O_TRUNC:
        raise ValueError("truncate after the checks, not when opening")
    try:
        return open_unshared(path, flags, mode)
    except OSError as error:
        if error.errno in NO_SPACE:
            raise full(path, error, "it could not be made") from None
        raise FileError(path, f"cannot be opened for writing ({error.strerror})") from None


def open_in_place(path: Path | str, mode: str = "w", **kwargs) -> IO:
    """`open(path, mode)` for writing in place ("w", "a", with "b" or not), through the checks
    of `open_fd_in_place`: never through a link, never into a file with other hard links."""
    if mode.replace("b", "") not in ("w", "a"):
        raise ValueError(f"open_in_place writes; mode {mode!r}")
    flags = os.O_WRONLY | (os.O_APPEND if "a" in mode else 0)
    fd = open_fd_in_place(path, flags)
    if "w" in mode:
        os.ftruncate(fd, 0)
    return os.fdopen(fd, mode, **kwargs)


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

    The temporary name holds this host and process id (`.NAME.tmp-HOST-PID`); temporary files
    left in the folder by a killed process on this host are removed, so none accumulate: the
    whole folder once per process (`_sweep`), since listing it for every file written would
    make a render of n samples cost n² (three files a sample, 12,000 samples to a folder).
    """
    target = Path(target)
    if not target.parent.is_dir():
        raise Fer3dError(f"{target}: output folder {target.parent} does not exist")
    _sweep(target.parent)
    tmp = target.with_name(f".{target.name}.tmp-{_HOST}-{os.getpid()}")
    tmp.unlink(missing_ok=True)  # an earlier process of this id's, or a planted link
    try:
        yield tmp
        os.replace(tmp, target)
    except NoSpace as error:  # a file of a folder written whole (`score`): name the folder
        raise NoSpace(target, error.detail) from error
    except Fer3dError:
        raise
    except Exception as error:  # most writers' errors do not say which file filled up
        if _out_of_space(error, target.parent):
            raise full(target, error, "nothing was kept") from error
        raise
    finally:
        tmp.unlink(missing_ok=True)


_SWEPT: set[tuple[int, str]] = set()  # (process id, folder) already swept by that process


def _sweep(folder: Path) -> None:
    """Remove every stale temporary file in `folder` (see `remove_stale_temporaries`), once per
    process and folder: a writer that dies later leaves its file to the next run's sweep."""
    key = (os.getpid(), os.path.abspath(folder))  # a forked child sweeps for itself
    if key not in _SWEPT:
        _remove_stale(folder.glob(".*.tmp-*"))
        _SWEPT.add(key)


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete `target`'s temporary files whose writer, a process of this host, is gone."""
    return _remove_stale(target.parent.glob(f".{glob.escape(target.name)}.tmp-*"))


def _remove_stale(candidates: Iterator[Path]) -> list[Path]:
    removed = []
    for tmp in candidates:
        host, _, pid = tmp.name.rpartition(".tmp-")[2].rpartition("-")
        if host in (_HOST, "") and pid.isdigit() and not process_alive(int(pid)):
            if tmp.is_dir() and not tmp.is_symlink():  # a folder written whole (`score`)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed
