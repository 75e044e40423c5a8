"""Where a record came from: the source tree's commit, the software stack, the time.

Versions are read from the installed distributions' metadata, so recording them imports
nothing heavy (no torch on a login node); what only torch can tell (CUDA, the GPU) is added by
the caller that has it loaded.
"""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, when run from one
STACK = ("torch", "timm")


def git_commit(root: Path = SOURCE_ROOT) -> tuple[str, bool]:
    """(commit of the source tree, whether it has uncommitted changes); 'unknown' outside git."""
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, bool(dirty)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def environment() -> dict:
    """Python, platform and the versions of the training stack, without importing it."""
    versions = {}
    for name in STACK:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), **versions}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
