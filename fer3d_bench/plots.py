"""Figures saved as every output is: atomically, as PNG, without the software stamp."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fer3d_bench.io import atomic_path  # noqa: E402


def save_figure(fig, target: Path, tight: bool = True) -> Path:
    """A matplotlib figure as PNG, atomically, without the software stamp; then closed.

    `tight=False` keeps the figure's own layout: tight_layout draws the whole figure once more.
    """
    if tight:
        fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return Path(target)
