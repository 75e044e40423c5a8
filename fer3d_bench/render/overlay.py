"""Pictures for a person to judge alignment: RGB crops with depth contours on top.

Two sheets: a contact sheet (the first samples of each class) and a QA sheet (the worst-aligned
samples, each titled with the figure that ranks it), drawn from render-depth's PNGs or, by
`inspect`, from a merged HDF5 file.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
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
    # what the ranking figure compares, drawn on the panel: name -> (N, 2) crop pixels (x, y)
    marks: dict[str, np.ndarray] = field(default_factory=dict)


# how each kind of mark is drawn: (marker, colour)
MARK_STYLES = {".lm2": ("+", "lime"), ".lm3 vertex": ("x", "red")}
MARK_LEGEND = {
    ".lm2": ".lm2 points (clicked on the image)",
    ".lm3 vertex": ".lm3 points' nearest grid vertices, projected",
}
CONTOUR_CMAP = "cool"
HEADING_PT = 9
BAR_IN = 0.75  # inches at the right for the depth colour bar


def panel_figure(panels: list[Panel], columns: int = 4, heading: str = "") -> Figure:
    """RGB with depth contours every CONTOUR_MM (one colour scale for all panels, shown by the
    colour bar), the face outline, and each panel's marks; the heading wrapped to fit."""
    columns = max(1, min(len(panels), columns))
    rows = max(1, int(np.ceil(len(panels) / columns)))
    width = max(2.4 * columns, 3.6) + BAR_IN  # one panel still leaves room for its heading
    lines = textwrap.wrap(heading, max(20, int((width - 0.2) * 72 / (HEADING_PT * 0.55))))
    top = (0.2 + 0.17 * len(lines)) if lines else 0.0  # inches for the heading
    legend = 0.25 if any(panel.marks for panel in panels) else 0.0
    size = (width, 2.9 * rows + top + legend)
    fig = Figure(figsize=size)
    right = 1 - BAR_IN / width
    grid_left = (1 - (2.4 * columns + BAR_IN) / width) / 2 if columns == 1 else 0.01
    axes = fig.subplots(rows, columns, squeeze=False)
    # a fixed layout, titles as plain text: tight_layout and axes titles each cost a full draw
    fig.subplots_adjust(
        grid_left, (0.01 + legend) / size[1], right, 1 - (top + 0.45) / size[1], 0.04, 0.45 / 2.45
    )
    for ax in axes.ravel():
        ax.axis("off")
    depths = [decode_depth(panel.depth) for panel in panels]
    deepest = max([float(np.nanmax(d)) for d in depths if np.isfinite(d).any()], default=0.0)
    norm = Normalize(0.0, max(deepest, CONTOUR_MM))
    for ax, panel, behind in zip(axes.ravel(), panels, depths, strict=False):
        ax.imshow(panel.rgb, interpolation="nearest")  # the pixels as they are
        if np.isfinite(behind).sum() > 3:
            # isolines from every other pixel (a quarter of the work, finer than the panel is
            # shown); the face outline, which shows the alignment, from every pixel
            levels = np.arange(0, np.nanmax(behind) + CONTOUR_MM, CONTOUR_MM)
            half = np.nan_to_num(behind[::2, ::2], nan=-1.0)
            rows_, cols = np.arange(0, behind.shape[0], 2), np.arange(0, behind.shape[1], 2)
            ax.contour(cols, rows_, half, levels=levels, linewidths=0.5, cmap=CONTOUR_CMAP,
                       norm=norm)  # fmt: skip
            ax.contour(
                np.isfinite(behind).astype(float), levels=[0.5], colors="yellow", linewidths=0.8
            )
        for name, points in panel.marks.items():
            marker, colour = MARK_STYLES.get(name, ("o", "white"))
            points = np.asarray(points, dtype=float).reshape(-1, 2)
            ax.scatter(points[:, 0], points[:, 1], s=14, marker=marker, c=colour,
                       linewidths=0.9, label=name)  # fmt: skip
        ax.set_xlim(-0.5, panel.rgb.shape[1] - 0.5)
        ax.set_ylim(panel.rgb.shape[0] - 0.5, -0.5)
        ax.text(0.5, 1.02, panel.title, fontsize=7, ha="center", va="bottom",
                transform=ax.transAxes)  # fmt: skip
    bar_axes = fig.add_axes((right + 0.15 / width, 0.15, 0.12 / width, 0.6))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=CONTOUR_CMAP), cax=bar_axes)
    bar.set_label("contours: mm behind the nearest face point", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    if legend:
        handles = [
            Line2D([], [], marker=MARK_STYLES[name][0], color=MARK_STYLES[name][1], ls="")
            for name in MARK_STYLES
        ]
        labels = [MARK_LEGEND[name] for name in MARK_STYLES]
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    if lines:
        fig.text(0.5, 1 - 0.1 / size[1], "\n".join(lines), fontsize=HEADING_PT, ha="center",
                 va="top")  # fmt: skip
    return fig


def draw_panels(panels: list[Panel], target: Path, columns: int = 4, heading: str = "") -> Path:
    """`panel_figure`, saved as PNG."""
    return save_figure(panel_figure(panels, columns, heading), target, tight=False)


def ranks(table: pd.DataFrame) -> bool:
    """Whether the deciding figure ranks anything: a sample flagged, or the figures differ
    (CalD3r & MenD3s's given alignment is "IoU 1.000" for every sample: nothing to rank)."""
    if table["status"].ne(OK).any():
        return True
    if "qa_ratio" not in table:
        return False
    ratios = pd.to_numeric(table["qa_ratio"], errors="coerce").dropna().round(6)
    return ratios.nunique() > 1


def landmark_marks(scan, row, size: int) -> dict[str, np.ndarray]:
    """A Bosphorus scan's `.lm2` points and, for each `.lm3` point, its nearest grid vertex
    projected to the image (where the alignment check measures the `.lm2` gap), in the crop's
    pixels (x, y) of `row` (crop_x0, crop_y0, crop_side) at `size` px. Empty without both."""
    if getattr(scan, "lm2", None) is None or getattr(scan, "lm3", None) is None:
        return {}
    grid, (height, width) = scan.grid, scan.image.shape[:2]
    valid = grid.valid
    xyz = np.stack([grid.x[valid], grid.y[valid], grid.z[valid]], axis=1)
    uv = np.stack([grid.u[valid] * width, grid.v[valid] * height], axis=1)
    lm2, lm3 = scan.lm2.by_label(), scan.lm3.by_label()
    common = [k for k in lm3 if k in lm2 and np.isfinite([*lm2[k], *lm3[k]]).all()]
    if not common or not len(xyz):
        return {}
    nearest = [int(np.argmin(np.linalg.norm(xyz - lm3[k], axis=1))) for k in common]
    x0, y0, side = (float(row[k]) for k in ("crop_x0", "crop_y0", "crop_side"))
    scale = size / side

    def crop(points: np.ndarray) -> np.ndarray:
        return (points - (x0, y0) + 0.5) * scale - 0.5

    return {
        ".lm2": crop(np.array([lm2[k][:2] for k in common], dtype=float)),
        ".lm3 vertex": crop(uv[nearest]),
    }


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
    """Up to `per_class` rendered samples of each class (first by sample id), shared among the
    folder's datasets (CalD3r & MenD3s: one of each), so every dataset is seen."""
    labels = table["label"] if "label" in table else pd.Series("", index=table.index)
    sources = table["sample_id"].astype(str).str.split(":", n=1).str[0]
    panels = []
    for name in CLASSES:
        of_class = table[labels == name]
        firsts = [of_class[sources[of_class.index] == s] for s in sorted(set(sources))]
        chosen = pd.concat([f.iloc[k : k + 1] for k in range(per_class) for f in firsts])
        for _, row in chosen.head(per_class).iterrows():
            panels.append(_contact_panel(out, row))
    if panels:
        draw_panels(panels, target, columns=2 * per_class)


def _contact_panel(out: Path, row) -> Panel:
    iou = row.get("iou")
    note = f"IoU {iou:.3f}" if isinstance(iou, float) and np.isfinite(iou) else row["method"]
    name = row["sample_id"].split(":", 1)[1]
    return _read_panel(out, row, f"{name}\n{row['label']}, {note}")


def qa_sheet(
    out: Path,
    table: pd.DataFrame,
    target: Path,
    count: int = QA_COUNT,
    marks: Callable[[object], dict[str, np.ndarray]] | None = None,
) -> Path | None:
    """The `count` worst-aligned rendered samples, each titled with its deciding figure and
    showing what it compares (`marks(row)`: the Bosphorus landmarks); None, and no sheet, where
    the figure ranks nothing (`ranks`)."""
    if not len(table) or not ranks(table):
        return None
    worst = worst_first(table).head(count)
    panels = []
    for _, row in worst.iterrows():
        panel = _read_panel(out, row, qa_title(row))
        if marks is not None:
            panel = replace(panel, marks=marks(row))
        panels.append(panel)
    flagged = int(table["status"].ne(OK).sum())
    heading = f"{len(panels)} worst-aligned of {len(table)} ({flagged} flagged low-quality)"
    return draw_panels(panels, target, heading=heading)
