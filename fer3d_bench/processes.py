"""Processes: whether one is alive, worker processes that end with their parent, folder locks.

A lock is an advisory `flock` on a file in the folder it guards. The kernel releases it when
its holder exits in any way (a crash or `kill -9` too), so a lock file left by a killed process
is stale by construction: the next process takes it at once and is told whose it was. The file
records its holder (host, pid, time) for the message a second process gets. On NFS, Linux maps
`flock` onto the server's byte-range locks, so the jobs of a Slurm array on several nodes
exclude each other too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import multiprocessing
import os
import socket
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fer3d_bench.errors import Fer3dError, FileError

HOST = socket.gethostname().split(".")[0] or "host"
LOCK_FILE = ".lock"
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)  # a full file system, or the user's quota on it
_held: dict[Path, int] = {}  # lock file -> how many times this process holds it


def process_alive(pid: int) -> bool:
    """Whether a process of this host with this id exists (signal 0 probes without sending)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def allocated_cpus() -> int:
    """The CPUs this process was given: its Slurm allocation (`SLURM_CPUS_PER_TASK`), else its
    CPU affinity, whichever is smaller. Where Slurm pins nothing (`task/none`) the affinity is
    the whole node, and only the variable tells a job its share.
    """
    cpus = len(os.sched_getaffinity(0))
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cpus, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else cpus


def exit_with_parent() -> None:
    """A pool worker's initializer: end this process when the process that started it ends.

    A pool's workers otherwise outlive a parent killed with `kill -9` (their task queue never
    closes), rendering or training for nobody. multiprocessing gives each child a sentinel of
    its parent that becomes ready when the parent is gone, however it ended, even before this
    runs; a daemon thread waits on it.
    """
    parent = multiprocessing.parent_process()
    if parent is None:  # not started by multiprocessing: nothing to follow
        return

    def follow() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=follow, name="exit-with-parent", daemon=True).start()


class FolderBusy(Fer3dError):
    """Another living process holds the lock of a folder."""

    def __init__(self, folder: Path, holder: dict):
        self.folder, self.holder = folder, holder
        super().__init__(f"{folder} is in use by {describe(holder)}")


@dataclass(frozen=True)
class Lock:
    """A lock held by this process; `stale` is the record of a dead holder it replaced."""

    path: Path
    stale: dict | None = None


def describe(holder: dict) -> str:
    """'pid 123 on node7 since 2026-12-02T10:00:00Z' (or what is known of it)."""
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"


def open_unshared(path: Path | str, flags: int, mode: int = 0o644) -> int:
    """A descriptor of the regular file `path` (created if missing), opened with `flags`, for
    writing in place: never through a symbolic link (`O_NOFOLLOW`), never blocking on a FIFO,
    and never into a file with another hard link (emptying it would empty that other name too,
    which may be any file of the user's). FileError for such a file; any other OSError as the
    system raised it. `io.open_fd_in_place` is the one to call; the lock file is opened here
    directly, below io, which imports this module.
    """
    path = Path(path)
    with contextlib.suppress(FileNotFoundError):  # the open's own checks cover a race
        if not stat.S_ISREG(os.lstat(path).st_mode) and not path.is_symlink():
            raise FileError(path, "is not a regular file; refusing to write to it")
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise FileError(path, "is a symbolic link; refusing to write through it") from None
        raise
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is not a regular file; refusing to write to it"
    elif info.st_nlink > 1:
        problem = (
            f"has {info.st_nlink} hard links (another name shares its content); "
            "refusing to write to it"
        )
    if problem:
        os.close(fd)
        raise FileError(path, problem)
    os.set_blocking(fd, True)
    return fd


@contextlib.contextmanager
def folder_lock(folder: Path | str, wait: bool = False) -> Iterator[Lock]:
    """Hold `folder`'s lock for the block; FolderBusy if another process holds it.

    With `wait`, blocks until the holder lets go instead. Re-entrant within one process (a fold
    job locks its folder, then the trainer it calls locks it again).
    """
    path = Path(folder) / LOCK_FILE
    key = path.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield Lock(path)
        finally:
            _held[key] -= 1
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    # The lock file is emptied and written in place, so a planted `.lock` that is a link to a
    # file of the user's, a hard link to one (it would be emptied through the shared inode) or
    # not a regular file is refused, never written: it is not ours to replace either.
    try:
        fd = open_unshared(path, os.O_RDWR)
    except FileError as exc:
        raise FileError(path, f"the folder's lock file {exc.problem}") from None
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise  # the command's one line about the full disk: os.open's error names the file
        raise Fer3dError(f"{path}: cannot open the folder's lock file ({exc.strerror})") from None
    try:
        stale = _take(fd, path, wait)
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        holder = {"host": HOST, "pid": os.getpid(), "since": since}
        try:
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError as exc:  # os.pwrite's error does not say which file: name it
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        _held[key] = 1
        try:
            yield Lock(path, stale)
        finally:
            del _held[key]
            os.ftruncate(fd, 0)  # an empty lock file: nobody holds it, and nobody died in it
    finally:
        os.close(fd)  # releases the flock


def _take(fd: int, path: Path, wait: bool) -> dict | None:
    """Take the flock; the record of a dead holder it replaces, if the file holds one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not wait:
            raise FolderBusy(path.parent, _holder(fd)) from None
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:  # a file system without locks (Lustre mounted noflock, some FUSE)
        warnings.warn(
            f"{path.parent}: this file system cannot lock ({exc.strerror}); make sure no other "
            "process works in this folder at the same time",
            stacklevel=4,
        )
    return _holder(fd) or None


def _holder(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {"host": "?", "pid": "?", "since": "? (unreadable lock file)"}
