"""What a render-depth run is asked for; light to import, so the command line can show it.

Each number has its range here, once: the command line's option types are made from `RANGES`,
and `RenderOptions` checks the same ranges for callers of the Python API, so a crop of 0 pixels
or a margin of NaN is refused where it is given instead of failing every sample later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from fer3d_bench.errors import ConfigError
from fer3d_bench.render.backends import BACKENDS
from fer3d_bench.render.bars import ANNOTATION_ALLOWANCE_PX, MIN_SILHOUETTE_IOU

# field -> (command-line option, type, lowest, highest (None: no bound), what it is).
# A crop below 16 px holds no face worth training on, and above 2048 px one sample's pair takes
# 20 MB of the merged file; a margin beyond 1 leaves the face a third of the crop; an IoU bar is
# a fraction; the landmark allowance is a distance in pixels.
RANGES: dict[str, tuple[str, type, float, float | None, str]] = {
    "size": ("--size", int, 16, 2048, "crop side in pixels"),
    "margin": ("--margin", float, 0.0, 1.0, "crop margin"),
    "min_iou": ("--min-iou", float, 0.0, 1.0, "silhouette IoU bar"),
    "landmark_allowance_px": ("--landmark-allowance", float, 0.0, None, "allowance in pixels"),
}


@dataclass(frozen=True)
class RenderOptions:
    size: int = 260
    margin: float = 0.1
    backend: str = "pyrender"
    fit_rotation: bool = False
    min_iou: float = MIN_SILHOUETTE_IOU
    landmark_allowance_px: float = ANNOTATION_ALLOWANCE_PX

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in RANGES:
                problem = range_problem(field.name, value)
            elif field.name == "backend":
                ok = value in BACKENDS
                problem = None if ok else f"must be one of {', '.join(BACKENDS)}"
            else:
                problem = None if isinstance(value, bool) else "must be true or false"
            if problem:
                raise ConfigError(f"render option {field.name} = {value!r}: {problem}")


def range_problem(name: str, value: object) -> str | None:
    """What is wrong with `value` for the numeric render option `name`, or None."""
    _, kind, low, high, _ = RANGES[name]
    whole = isinstance(value, int) and not isinstance(value, bool)
    if kind is int and not whole:
        return "must be a whole number"
    if not whole and not (isinstance(value, float) and math.isfinite(value)):
        return "must be a finite number"
    if value < low or (high is not None and value > high):
        return f"must be {_span(low, high)}"
    return None


def _span(low: float, high: float | None) -> str:
    return f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"
