"""Figures saved as every output is: atomically, as PNG, without the software stamp; and the one
colour and marker each class has in every figure.

Figures are `matplotlib.figure.Figure` objects, never pyplot's: saving one as PNG draws it on
the Agg canvas, so importing this library leaves the user's backend as it was.
"""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from fer3d_bench.io import atomic_path
from fer3d_bench.taxonomy import CLASSES

# with the colours, for grey-scale prints: one per class of the taxonomy, in its fixed order
CLASS_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
OTHER_MARKER = "*"  # a name outside the taxonomy


def class_style(name: str) -> tuple[tuple[float, float, float, float], str]:
    """(RGBA colour, marker) of a class, the same in every figure whatever classes it shows.

    Keyed by the class's place in the taxonomy's fixed order (`taxonomy.CLASSES`), never by its
    place in one figure's list of classes, so that anger is the same blue in two plots of
    different class subsets. A name outside the taxonomy gets one of tab20's light shades,
    chosen by a checksum of the name (stable from run to run, unlike `hash`), and a star.
    """
    if name in CLASSES:
        k = CLASSES.index(name)
        return matplotlib.colormaps["tab10"](k), CLASS_MARKERS[k]
    shade = 2 * (zlib.crc32(name.encode("utf-8")) % 10) + 1
    return matplotlib.colormaps["tab20"](shade), OTHER_MARKER


def save_figure(fig: Figure, target: Path, tight: bool = True) -> Path:
    """A matplotlib figure as PNG, atomically, without the software stamp.

    `tight=False` keeps the figure's own layout: tight_layout draws the whole figure once more.
    A figure that pyplot made (it can only if pyplot is loaded) is closed after, so that pyplot
    lets it go; a plain Figure needs no closing.
    """
    if tight:
        fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=90, metadata={"Software": None})
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    return Path(target)
