"""The report's figures of each group: the confusion matrices, the training curves and the t-SNE
of a fold's test embeddings, each titled with the conditions its numbers were obtained under.

- confusion: two panels, labelled: the pooled matrix (counts summed over the ok folds, then
  row-normalised: ours, whose diagonal is the recall report.json gives) and the fold mean (each
  fold's matrix row-normalised, then averaged over the folds, as the paper's Figs. 12 and 17);
- curves: the training loss, named as what it is (CE + λ1 (center + λ2 island)), with its
  cross-entropy term beside it, and the test-fold accuracy; per fold thin, their mean bold;
- t-SNE: one fold's test embeddings, each class in the colour and marker it has in every figure
  (`plots.class_style`, keyed by the taxonomy's fixed class order).

The conditions line (`conditions_line`) says how folds were dealt, which epoch each fold
reports (best-test: optimistic), repetitions × folds and whether the data is the published
manifest: from the group's recorded conditions, or computed from run.json where the group
has none (`report.conditions.group_conditions`).

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
from fer3d_bench.plots import class_style, save_figure
from fer3d_bench.records.conditions import NOT_STATED, Conditions
from fer3d_bench.records.embeddings import first_embedded, read_embeddings
from fer3d_bench.records.group import Aggregate, ReportGroup
from fer3d_bench.records.report import Report
from fer3d_bench.records.result import FoldResult
from fer3d_bench.report.conditions import group_conditions
from fer3d_bench.report.load import Run

# what the training loop logs as loss_total (train.losses): the paper's Eq. 5 with the island
# term inside the center weight, as the island loss's authors write it
TOTAL_LOSS = "CE + λ1 (center + λ2 island)"
LOSS_LABEL = f"training loss: {TOTAL_LOSS}"
CE_LABEL = "its cross-entropy term CE"
ACCURACY_LABEL = "test-fold accuracy"
TSNE_SEED = 0  # the t-SNE's random_state: the same figure for the same embeddings
_UNIT = {"subject": "folds by subject", "sample": "folds by sample: same person in train and test"}
_EPOCH = {"last": "last epoch", "best-test": "best-test epoch (optimistic)"}


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
    conditions = group.conditions or group_conditions(run.info, group.protocol, group.variant)
    if name.endswith("_confusion.png"):
        return confusion_figure(group.aggregate, group.label, conditions)
    if name.endswith("_tsne.png"):
        return group_tsne_figure(run, results, group.label, conditions)
    return curves_figure(results, group.label, conditions)


def conditions_line(conditions: Conditions | None) -> str:
    """The conditions in a line for a figure's title: the folds' unit, the epoch each fold
    reports, repetitions × folds, and the data (the published manifest or not)."""
    if conditions is None:
        return "conditions not recorded"
    c = conditions
    unit = _UNIT.get(c.unit, f"folds dealt by: {c.unit}")
    epoch = _EPOCH.get(c.epoch_selection, f"epoch: {c.epoch_selection}")
    scale = f"{_count(c.repetitions, 'repetition')} × {_count(c.folds, 'fold')}"
    if c.published_manifest is None:
        data = "manifest: not known to be the published one"
    else:
        data = "published manifest" if c.published_manifest else "not the published manifest"
    return " · ".join((unit, epoch, scale, data))


def _count(value, noun: str) -> str:
    if value is None:
        return f"{noun}s: {NOT_STATED}"
    return f"{value} {noun}" if value == 1 else f"{value} {noun}s"


def confusion_figure(
    summary: Aggregate, label: str, conditions: Conditions | None = None
) -> Figure:
    """The pooled matrix and, beside it, the fold mean (where the aggregate has one), each
    titled with what it is; class names on both axes, values in the cells."""
    classes, n = summary.classes, summary.folds_ok
    panels = [
        (
            summary.confusion.normalised,
            f"pooled (ours): counts summed over {n} folds, then row-normalised\n"
            "(its diagonal is the per-class recall of report.json)",
        )
    ]
    if summary.confusion.fold_mean is not None:
        panels.append(
            (
                summary.confusion.fold_mean,
                f"fold mean (as the paper's Figs. 12, 17): each of {n} folds row-normalised, "
                "then averaged\n(a row over the folds that tested its class; —: none did)",
            )
        )
    size = 1.2 + 0.75 * len(classes)
    fig = Figure(figsize=(len(panels) * (size + 1.8), size + 0.8))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (values, title) in zip(axes, panels, strict=True):
        _matrix_panel(fig, ax, values, classes, title)
    fig.suptitle(f"{label}: confusion\n{conditions_line(conditions)}", fontsize=9)
    return fig


def _matrix_panel(fig: Figure, ax, values, classes: list[str], title: str) -> None:
    """One row-normalised matrix; a None cell (a class never tested) grey, marked —."""
    matrix = np.array([[np.nan if v is None else v for v in row] for row in values], dtype=float)
    matrix = matrix.reshape(len(classes), len(classes))
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(matrix), vmin=0.0, vmax=1.0, cmap=cmap)
    for (i, j), value in np.ndenumerate(matrix):
        text = "—" if math.isnan(value) else f"{value:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="white" if value > 0.5 else "black")  # fmt: skip
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.046)


def curves_figure(
    results: list[FoldResult], label: str, conditions: Conditions | None = None
) -> Figure:
    """Per fold, thin, by epoch: the training loss with its cross-entropy term, and the
    test-fold accuracy; their means over the folds, bold.

    The test fold is scored after every epoch to draw the accuracy curve. Under the best-test
    selection it also picks each fold's reported epoch (optimistic): those epochs are starred.
    """
    fig = Figure(figsize=(10, 3.9))
    loss_ax, accuracy_ax = fig.subplots(1, 2)
    lambdas = _lambdas(results)
    total = f"{LOSS_LABEL}{f', {lambdas}' if lambdas else ''}"
    drawn = _curves(loss_ax, results, "loss_total", total, ("tab:blue", "tab:red", "-"))
    _curves(loss_ax, results, "loss_ce", CE_LABEL, ("tab:orange", "tab:brown", "--"))
    _axes(loss_ax, "training loss", f"training loss: {drawn} folds thin, their mean bold")
    drawn = _curves(accuracy_ax, results, "test_accuracy", ACCURACY_LABEL)
    if conditions is not None and conditions.optimistic:
        chosen = [r.best_test for r in results if r.best_test]
        accuracy_ax.scatter(
            [b["epoch"] for b in chosen],
            [b["accuracy"] for b in chosen],
            marker="*",
            s=70,
            color="black",
            zorder=3,
            label="epoch each fold reports: chosen on its test fold (optimistic)",
        )
    _axes(accuracy_ax, ACCURACY_LABEL, f"{ACCURACY_LABEL}: {drawn} folds thin, their mean bold")
    fig.suptitle(f"{label}: training curves\n{conditions_line(conditions)}", fontsize=9)
    return fig


def _curves(ax, results: list[FoldResult], key: str, label: str, style=None) -> int:
    """Each fold's curve of `key`, thin, and their mean, bold, labelled `label` (dotted: a run
    of one epoch still shows); how many folds have the curve."""
    thin, bold, line = style or ("tab:blue", "tab:red", "-")
    curves = [c for c in (_curve(r.history, key) for r in results) if c[0]]
    for epochs, values in curves:
        ax.plot(epochs, values, linewidth=0.6, alpha=0.4, color=thin, linestyle=line)
    if curves:
        epochs, means = _mean_curve(curves)
        ax.plot(epochs, means, linewidth=2.2, color=bold, linestyle=line, marker=".", label=label)
    return len(curves)


def _axes(ax, ylabel: str, title: str) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    if ax.get_legend_handles_labels()[0]:  # a history without this curve draws nothing
        ax.legend(fontsize=6)


def _lambdas(results: list[FoldResult]) -> str | None:
    """ "λ1 = 0.01, λ2 = 10" where every trained fold recorded the same loss weights."""
    found = set()
    for r in results:
        loss = (r.job.training.config.get("loss") or {}) if r.job.training else {}
        found.add((loss.get("lambda1"), loss.get("lambda2")))
    if len(found) != 1 or None in next(iter(found)):
        return None
    lambda1, lambda2 = next(iter(found))
    return f"λ1 = {lambda1:g}, λ2 = {lambda2:g}"


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


def group_tsne_figure(
    run: Run, results: list[FoldResult], label: str, conditions: Conditions | None = None
) -> Figure:
    """The t-SNE of the test embeddings of the group's first finished fold that stored them.

    One fold only: every fold trains its own model, so the embedding spaces of two folds have
    nothing in common and their points cannot share one plot. The file is checked against its
    result.json (`read_embeddings`) before anything is drawn.
    """
    fold = first_embedded(results)
    rows = read_embeddings(fold, run.path / run.file_of(fold))
    truths = [fold.predictions[sample]["true"] for sample in sorted(fold.predictions)]
    return tsne_figure(rows, truths, fold.classes, label, fold.position, conditions)


def tsne_figure(
    embeddings,
    truths: list[str],
    classes: list[str],
    label: str,
    position,
    conditions: Conditions | None = None,
) -> Figure:
    """2-D t-SNE of one fold's test embeddings, each true class in its own colour and marker,
    the same in every figure (`plots.class_style`)."""
    points = tsne_coordinates(embeddings)
    names = [*classes, *sorted(set(truths) - set(classes))]  # a class outside the list too
    truths_array = np.asarray(truths, dtype=object)
    fig = Figure(figsize=(7.2, 5.2))
    ax = fig.subplots()
    for name in names:
        mask = truths_array == name
        if mask.any():
            colour, marker = class_style(name)
            ax.scatter(
                *points[mask].T,
                s=16,
                color=colour,
                marker=marker,
                label=f"{name} ({int(mask.sum())})",
            )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(
        title="true class", fontsize=7, title_fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1)
    )
    repetition, fold = position
    ax.set_title(
        f"t-SNE of the {len(truths)} test embeddings of repetition {repetition}, fold {fold}\n"
        "(that fold's model only: the folds' embedding spaces are not comparable)",
        fontsize=8,
    )
    fig.suptitle(f"{label}\n{conditions_line(conditions)}", fontsize=8)
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
