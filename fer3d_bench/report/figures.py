"""The report's figures: the summed confusion matrix, the training curves and the t-SNE of the
test embeddings of each group.

Drawn on `matplotlib.figure.Figure` objects, never through pyplot: a library has no business
choosing (or switching) the backend of whoever imports it, and a Figure saves to PNG on its own.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from fer3d_bench.io import inside, output_folder
from fer3d_bench.plots import save_figure
from fer3d_bench.records.embeddings import first_embedded, read_embeddings
from fer3d_bench.records.group import Aggregate, ReportGroup
from fer3d_bench.records.report import Report
from fer3d_bench.records.result import FoldResult
from fer3d_bench.report.load import Run

CURVES = (("loss_total", "train loss"), ("test_accuracy", "test-fold accuracy"))
TSNE_SEED = 0  # the t-SNE's random_state: the same figure for the same embeddings
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # with the colours, for grey-scale prints


def write_figures(run: Run, report: Report) -> list[Path]:
    """Every figure the report's groups name, into the run folder's figures/."""
    figures = output_folder(run.path, run.path / "figures")  # never a link planted in its place
    written = []
    for g in report.groups:
        for name in g.figures:
            target = inside(figures, run.path / name)
            written.append(save_figure(_figure(run, g, name), target))
    return written


def _figure(run: Run, group: ReportGroup, name: str) -> Figure:
    """The figure `name` of `group`, by the kind its name ends with."""
    results = run.results.get(group.key, [])
    if name.endswith("_confusion.png"):
        return confusion_figure(group.aggregate, group.label)
    if name.endswith("_tsne.png"):
        return group_tsne_figure(run, results, group.label)
    return curves_figure(results, group.protocol)


def confusion_figure(summary: Aggregate, label: str) -> Figure:
    """Row-normalised summed confusion with class names on both axes and values in the cells."""
    classes, matrix = summary.classes, np.asarray(summary.confusion.normalised)
    size = 1.2 + 0.75 * len(classes)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{label}: summed over {summary.folds_ok} folds", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046)
    return fig


def curves_figure(results: list[FoldResult], protocol: str) -> Figure:
    """Per fold, thin: train loss and test-fold accuracy by epoch; their mean, bold.

    The test fold is scored after every epoch to draw the curve, never to pick an epoch: the
    result is the last epoch's.
    """
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
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


def group_tsne_figure(run: Run, results: list[FoldResult], label: str) -> Figure:
    """The t-SNE of the test embeddings of the group's first finished fold that stored them.

    One fold only: every fold trains its own model, so the embedding spaces of two folds have
    nothing in common and their points cannot share one plot. The file is checked against its
    result.json (`read_embeddings`) before anything is drawn.
    """
    fold = first_embedded(results)
    rows = read_embeddings(fold, run.path / run.file_of(fold))
    truths = [fold.predictions[sample]["true"] for sample in sorted(fold.predictions)]
    return tsne_figure(rows, truths, fold.classes, label, fold.position)


def tsne_figure(embeddings, truths: list[str], classes: list[str], label: str, position) -> Figure:
    """2-D t-SNE of one fold's test embeddings, a colour and marker per true class."""
    points = tsne_coordinates(embeddings)
    names = [*classes, *sorted(set(truths) - set(classes))]  # a class outside the list too
    colours = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    truths_array = np.asarray(truths, dtype=object)
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.subplots()
    for k, name in enumerate(names):
        mask = truths_array == name
        if mask.any():
            marker, count = MARKERS[k % len(MARKERS)], int(mask.sum())
            ax.scatter(
                *points[mask].T, s=16, color=colours(k), marker=marker, label=f"{name} ({count})"
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(
        title="true class", fontsize=7, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1)
    )
    repetition, fold = position
    ax.set_title(
        f"{label}: t-SNE of the {len(truths)} test embeddings of repetition {repetition}, "
        f"fold {fold}\n(that fold's model only: the folds' embedding spaces are not comparable)",
        fontsize=9,
    )
    return fig


def tsne_coordinates(embeddings, seed: int = TSNE_SEED) -> np.ndarray:
    """(n, 2) t-SNE coordinates of (n, D) embeddings; the same for the same rows and seed.

    scikit-learn's TSNE rather than openTSNE: it is already a dependency (through grad-cam), it
    is deterministic with init="pca" and a fixed `random_state`, and a fold's test set is small
    (500 samples on bu3dfe-full take seconds, a few thousand well under a minute), so openTSNE's
    speed would buy nothing. It runs on one thread, since the order in which threads add up
    their parts of the gradient could change the last bits from one run (or machine) to the
    next. Perplexity is the usual 30, lowered to (n - 1) / 3 for small sets (it must stay below
    n). With init="pca" the seed reaches only PCA's randomized solver, which scikit-learn picks
    for sets of over 500 rows with fewer than ten rows per dimension; smaller sets get the same
    coordinates whatever the seed. Fewer than two distinct rows have no neighbourhoods to keep:
    they are all placed at the origin (TSNE itself would fail on them).
    """

    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) < 2 or len(np.unique(x, axis=0)) < 2:
        return np.zeros((len(x), 2))
    perplexity = min(30.0, max(1.0, (len(x) - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    with threadpool_limits(limits=1):
        return tsne.fit_transform(x)
