"""A contact sheet for a person to judge alignment: RGB crops with depth contours on top."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from fer3d_bench.io import save_figure  # noqa: E402
from fer3d_bench.render.depth import decode_depth  # noqa: E402
from fer3d_bench.taxonomy import CLASSES  # noqa: E402


def contact_sheet(out: Path, table: pd.DataFrame, target: Path, per_class: int = 2) -> None:
    """Up to `per_class` rendered samples of each class (first by sample id), 5 mm contours."""
    from fer3d_bench.render.run import FAILED, output_paths

    done = table[table["status"] != FAILED]
    picked = [
        row
        for name in CLASSES
        for _, row in done[done.get("label", pd.Series(dtype=str)) == name]
        .head(per_class)
        .iterrows()
    ]
    if not picked:
        return
    columns = min(len(picked), 2 * per_class)
    rows = int(np.ceil(len(picked) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, row in zip(axes.ravel(), picked, strict=False):
        paths = output_paths(out, row["sample_id"])
        rgb = np.asarray(Image.open(paths["rgb"]).convert("RGB"))
        behind = decode_depth(np.asarray(Image.open(paths["depth"])))
        ax.imshow(rgb)
        if np.isfinite(behind).sum() > 3:
            levels = np.arange(0, np.nanmax(behind) + 5, 5.0)
            ax.contour(np.nan_to_num(behind, nan=-1.0), levels=levels, linewidths=0.5, cmap="cool")
            ax.contour(
                np.isfinite(behind).astype(float), levels=[0.5], colors="yellow", linewidths=0.8
            )
        iou = row.get("iou")
        note = f"IoU {iou:.3f}" if isinstance(iou, float) and np.isfinite(iou) else row["method"]
        ax.set_title(f"{row['sample_id'].split(':', 1)[1]}\n{row['label']}, {note}", fontsize=7)
    save_figure(fig, target)
