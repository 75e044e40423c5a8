"""The one error the weights room raises for a file it cannot use (no torch here: `known`
raises it on a login node)."""

from __future__ import annotations

from fer3d_bench.errors import FileError


class WeightsError(FileError):
    """A weights file cannot be used as it stands: missing, damaged, a pickle without trust,
    of another model, or made for another backbone. "PATH: problem", `.path` the file."""
