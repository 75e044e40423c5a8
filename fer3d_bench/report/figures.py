"""The report's figures: the summed confusion matrix and the training curves of each group."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fer3d_bench.io import inside  # noqa: E402
from fer3d_bench.plots import save_figure  # noqa: E402
from fer3d_bench.records.report import Report  # noqa: E402
from fer3d_bench.records.result import FoldResult  # noqa: E402
from fer3d_bench.report.load import Run  # noqa: E402

CURVES = (("loss_total", "train loss"), ("test_accuracy", "test-fold accuracy"))


def write_figures(run: Run, report: Report) -> list[Path]:
    """Every figure the report's groups name, into the run folder's figures/."""
    (run.path / "figures").mkdir(exist_ok=True)
    written = []
    for g in report.groups:
        for name in g["figures"]:
            target = inside(run.path / "figures", run.path / name)
            if name.endswith("_confusion.png"):
                fig = confusion_figure(g["aggregate"], f"{g['variant']} / {g['protocol']}")
            else:
                fig = curves_figure(run.results[(g["variant"], g["protocol"])], g["protocol"])
            written.append(save_figure(fig, target))
    return written


def confusion_figure(summary: dict, label: str):
    """Row-normalised summed confusion with class names on both axes and values in the cells."""
    classes, matrix = summary["classes"], np.asarray(summary["confusion"]["normalised"])
    size = 1.2 + 0.75 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{label}: summed over {summary['folds_ok']} folds", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def curves_figure(results: list[FoldResult], protocol: str):
    """Per fold, thin: train loss and test-fold accuracy by epoch; their mean, bold.

    The test fold is scored after every epoch to draw the curve, never to pick an epoch: the
    result is the last epoch's.
    """
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, (key, label) in zip(axes, CURVES, strict=True):
        curves = [_curve(r.history, key) for r in results]
        for epochs, values in curves:
            ax.plot(epochs, values, linewidth=0.6, alpha=0.4, color="tab:blue")
        epochs, means = _mean_curve(curves)
        ax.plot(epochs, means, linewidth=2.2, color="tab:red", label="mean over folds")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{protocol}: {label}, {len(curves)} folds (thin)", fontsize=9)
        ax.legend(fontsize=7)
    return fig


def _curve(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Finite points only: a fold that diverged (nan loss) must not turn the mean into nan."""
    points = [(e["epoch"], float(e[key])) for e in history if e.get(key) is not None]
    points = [(epoch, value) for epoch, value in points if math.isfinite(value)]
    return [p[0] for p in points], [p[1] for p in points]


def _mean_curve(curves: list[tuple[list[int], list[float]]]) -> tuple[list[int], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for epochs, values in curves:
        for epoch, value in zip(epochs, values, strict=True):
            by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    return epochs, [statistics.fmean(by_epoch[e]) for e in epochs]
