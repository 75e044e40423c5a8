"""Pictures for a person to judge alignment: RGB crops with depth contours on top.

Two sheets: a contact sheet (the first samples of each class) and a QA sheet (the worst-aligned
samples, each titled with the figure that ranks it), drawn from render-depth's PNGs or, by
`inspect`, from a merged HDF5 file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from fer3d_bench.plots import save_figure
from fer3d_bench.render.depth import decode_depth
from fer3d_bench.render.layout import OK, output_paths
from fer3d_bench.taxonomy import CLASSES

QA_COUNT = 8  # samples on a QA sheet (per dataset)
CONTOUR_MM = 5.0  # depth contour spacing


@dataclass(frozen=True)
class Panel:
    rgb: np.ndarray  # (S, S, 3) uint8
    depth: np.ndarray  # (S, S) uint16, the render-depth convention
    title: str


def draw_panels(panels: list[Panel], target: Path, columns: int = 4, heading: str = "") -> Path:
    """RGB with depth contours every CONTOUR_MM and the face outline, one panel per sample."""
    columns = max(1, min(len(panels), columns))
    rows = max(1, int(np.ceil(len(panels) / columns)))
    top = 0.35 if heading else 0.0  # inches for the heading
    size = (2.4 * columns, 2.9 * rows + top)
    fig = Figure(figsize=size)
    axes = fig.subplots(rows, columns, squeeze=False)
    # a fixed layout, titles as plain text: tight_layout and axes titles each cost a full draw
    fig.subplots_adjust(0.01, 0.01, 0.99, 1 - (top + 0.45) / size[1], 0.04, 0.45 / 2.45)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, panel in zip(axes.ravel(), panels, strict=False):
        behind = decode_depth(panel.depth)
        ax.imshow(panel.rgb, interpolation="nearest")  # the pixels as they are
        if np.isfinite(behind).sum() > 3:
            # isolines from every other pixel (a quarter of the work, finer than the panel is
            # shown); the face outline, which shows the alignment, from every pixel
            levels = np.arange(0, np.nanmax(behind) + CONTOUR_MM, CONTOUR_MM)
            half = np.nan_to_num(behind[::2, ::2], nan=-1.0)
            rows, cols = np.arange(0, behind.shape[0], 2), np.arange(0, behind.shape[1], 2)
            ax.contour(cols, rows, half, levels=levels, linewidths=0.5, cmap="cool")
            ax.contour(
                np.isfinite(behind).astype(float), levels=[0.5], colors="yellow", linewidths=0.8
            )
        ax.text(0.5, 1.02, panel.title, fontsize=7, ha="center", va="bottom",
                transform=ax.transAxes)  # fmt: skip
    if heading:
        fig.text(0.5, 1 - 0.1 / size[1], heading, fontsize=9, ha="center", va="top")
    return save_figure(fig, target, tight=False)


def worst_first(table: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered from the worst-aligned down: by the ratio of the deciding figure to its bar
    (flagged samples first), then by sample id. A row without that figure (a file from before
    it was recorded) ranks by its status alone."""
    flagged = table["status"].ne(OK)
    if "qa_ratio" in table:
        ratio = pd.to_numeric(table["qa_ratio"], errors="coerce")
    else:
        ratio = pd.Series(np.nan, index=table.index)
    rank = ratio.where(ratio.notna(), np.where(flagged, np.inf, -np.inf))
    order = pd.DataFrame({"rank": -rank, "sample_id": table["sample_id"]})
    return table.loc[order.sort_values(["rank", "sample_id"], kind="stable").index]


def qa_title(row) -> str:
    name = str(row["sample_id"]).split(":", 1)[1]
    figure = row.get("qa_figure") or ""
    if not isinstance(figure, str):  # NaN from a CSV cell
        figure = ""
    return f"{name}\n{row['status']}: {figure}" if figure else f"{name}\n{row['status']}"


def _read_panel(out: Path, row, title: str) -> Panel:
    paths = output_paths(out, row["sample_id"])
    rgb = np.asarray(Image.open(paths["rgb"]).convert("RGB"))
    return Panel(rgb, np.asarray(Image.open(paths["depth"])), title)


def contact_sheet(out: Path, table: pd.DataFrame, target: Path, per_class: int = 2) -> None:
    """Up to `per_class` rendered samples of each class (first by sample id)."""
    labels = table["label"] if "label" in table else pd.Series("", index=table.index)
    panels = []
    for name in CLASSES:
        for _, row in table[labels == name].head(per_class).iterrows():
            panels.append(_contact_panel(out, row))
    if panels:
        draw_panels(panels, target, columns=2 * per_class)


def _contact_panel(out: Path, row) -> Panel:
    iou = row.get("iou")
    note = f"IoU {iou:.3f}" if isinstance(iou, float) and np.isfinite(iou) else row["method"]
    name = row["sample_id"].split(":", 1)[1]
    return _read_panel(out, row, f"{name}\n{row['label']}, {note}")


def qa_sheet(out: Path, table: pd.DataFrame, target: Path, count: int = QA_COUNT) -> None:
    """The `count` worst-aligned rendered samples, each titled with its deciding figure."""
    worst = worst_first(table).head(count)
    panels = [_read_panel(out, row, qa_title(row)) for _, row in worst.iterrows()]
    flagged = int(table["status"].ne(OK).sum())
    heading = f"{len(panels)} worst-aligned of {len(table)} ({flagged} flagged low-quality)"
    if panels:
        draw_panels(panels, target, heading=heading)
