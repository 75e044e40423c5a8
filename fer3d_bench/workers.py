"""How many worker processes a command starts: the number asked for, capped by the CPUs this
process may use and by the memory available, with a sentence that says so when it caps.

Each worker is a whole interpreter with its libraries (a renderer with OpenGL and a scan in
memory, or torch and a model), so `--workers 64` on two CPUs does not finish sooner: it makes
64 processes take turns on two CPUs and fill the memory until the machine swaps or kills one.
Used by render-depth, build-dataset, make-sample and evaluate's process pool (`--jobs`).
"""

from __future__ import annotations

import math
from pathlib import Path

from fer3d_bench.processes import allocated_cpus

GIB = 2**30
# Peak memory of one render worker. Measured (VmHWM) after rendering every scan of the tiny
# generated sample at the default 260 px: 175 MB once started (renderer loaded), peaks of
# 260 MB (BU-3DFE), 336 MB (Bosphorus) and 181 MB (CalD3r & MenD3s). Real Bosphorus photos hold
# about 9 times the pixels of the generated ones, so a worker is counted at 1 GiB.
RENDER_WORKER_BYTES = GIB
# Peak memory of one fold job: torch and timm alone take 0.5 GB; a step of the `tiny` preset on
# the CPU peaked at 0.8 GB. This is a floor, not a size: the paper preset trained on the CPU
# peaked at 7 GB, and on a GPU the host keeps less. The CPU cap is what matters for folds.
FOLD_WORKER_BYTES = GIB

_CGROUP = Path("/sys/fs/cgroup")
_OWN_CGROUP = Path("/proc/self/cgroup")
_MEMINFO = Path("/proc/meminfo")


def cap_workers(asked: int, per_worker: int, option: str = "--workers") -> tuple[int, str | None]:
    """The number of workers to start for `asked`, and the sentence to print when it is fewer
    ("--workers 64: using 2 (2 CPUs available)"), else None. Never less than one."""
    cpus = available_cpus()
    memory = available_memory()
    by_memory = max(1, memory // per_worker) if memory is not None else asked
    count = max(1, min(asked, cpus, by_memory))
    if count >= asked:
        return asked, None
    if cpus <= by_memory:
        why = f"{cpus} CPU{'s' if cpus > 1 else ''} available"
    else:
        why = (
            f"{memory / GIB:.1f} GiB of memory available, about {per_worker / GIB:.1f} GiB "
            "per worker"
        )
    return count, f"{option} {asked}: using {count} ({why})"


def available_cpus() -> int:
    """The CPUs this process may use: its affinity and Slurm share (`allocated_cpus`), and the
    CPU quota of its cgroup (a container limited to 2 CPUs still sees every CPU of the host)."""
    cpus = allocated_cpus()
    quota = _cpu_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def available_memory() -> int | None:
    """Bytes this process may still take: the kernel's MemAvailable, or less where its cgroup's
    limit leaves less (a container sees the host's memory in /proc/meminfo). None if unknown."""
    known = [value for value in (_meminfo_available(), _cgroup_memory_left()) if value is not None]
    return min(known) if known else None


def _meminfo_available() -> int | None:
    for line in (_read(_MEMINFO) or "").splitlines():
        name, _, value = line.partition(":")
        if name == "MemAvailable" and value.split()[0].isdigit():
            return int(value.split()[0]) * 1024  # kB
    return None


def _cpu_quota() -> float | None:
    """CPUs' worth of time the cgroup allows (cgroup v2 cpu.max, v1 cfs quota), or None."""
    text = _cgroup_file("cpu", "cpu.max")
    if text:
        quota, _, period = text.partition(" ")
        return _ratio(quota, period)
    quota = _cgroup_file("cpu", "cpu.cfs_quota_us")
    period = _cgroup_file("cpu", "cpu.cfs_period_us")
    return _ratio(quota, period) if quota and period else None


def _ratio(quota: str, period: str) -> float | None:
    if not quota.isdigit() or not period.strip().isdigit() or int(period) == 0:
        return None  # "max" (v2) or -1 (v1): no quota
    return int(quota) / int(period)


def _cgroup_memory_left() -> int | None:
    """The cgroup's memory limit less what it uses, not counting page cache it can drop."""
    v2 = _cgroup_file("memory", "memory.max")
    limit = v2 if v2 is not None else _cgroup_file("memory", "memory.limit_in_bytes")
    usage = _cgroup_file("memory", "memory.current" if v2 is not None else "memory.usage_in_bytes")
    if not (limit and limit.isdigit() and usage and usage.isdigit()):
        return None
    stat = _cgroup_file("memory", "memory.stat") or ""
    cache = 0
    for line in stat.splitlines():
        name, _, value = line.partition(" ")
        if name == ("inactive_file" if v2 is not None else "total_inactive_file"):
            cache = int(value) if value.isdigit() else 0
    return max(0, int(limit) - max(0, int(usage) - cache))


def _cgroup_file(controller: str, name: str) -> str | None:
    """The stripped text of `name` in this process's cgroup of `controller`, or None.

    /proc/self/cgroup names the group ("0::/path" for cgroup v2, "4:memory:/path" for v1); a
    container with its own cgroup namespace sees its group as the root of the mount.
    """
    for line in (_read(_OWN_CGROUP) or "").splitlines():
        _, controllers, group = line.split(":", 2) if line.count(":") >= 2 else ("", "?", "")
        if controllers == "":
            base = _CGROUP
        elif controller in controllers.split(","):
            base = _CGROUP / controllers
        else:
            continue
        for folder in (base / group.lstrip("/"), base):
            text = _read(folder / name)
            if text is not None:
                return text.strip()
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
