"""Figures saved as every output is: atomically, as PNG, without the software stamp.

Figures are `matplotlib.figure.Figure` objects, never pyplot's: saving one as PNG draws it on
the Agg canvas, so importing this library leaves the user's backend as it was.
"""

from __future__ import annotations

import sys
from pathlib import Path

from matplotlib.figure import Figure

from fer3d_bench.io import atomic_path


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
