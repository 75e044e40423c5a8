"""The epoch a report scores, the fold-mean confusion beside the pooled one, and the figures:
one colour per class everywhere, the loss named as what it is, the conditions in every title.

Every expected number is worked out by hand in a comment, never recomputed with the report.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from fer3d_bench.errors import ReportError
from fer3d_bench.plots import class_style
from fer3d_bench.records.conditions import Conditions
from fer3d_bench.records.job import JobIdentity, Training
from fer3d_bench.records.result import FoldResult
from fer3d_bench.report import figures, write_report
from fer3d_bench.report.aggregate import NO_BEST_TEST, aggregate
from fer3d_bench.report.figures import confusion_figure, curves_figure, tsne_figure
from fer3d_bench.taxonomy import CLASSES

A, D, F, H = "anger", "disgust", "fear", "happiness"
FIXTURE = Path(__file__).parents[1] / "data" / "run-0.7.0"
LOSS = "training loss: CE + λ1 (center + λ2 island), λ1 = 0.01, λ2 = 10"
OPTIMISTIC = Conditions(
    unit="sample",
    epoch_selection="best-test",
    repetitions=2,
    folds=3,
    data="d" * 64,
    published_manifest=False,
)


def predictions(fold: int, pairs) -> dict[str, dict]:
    return {f"s{fold}_{i:02d}": {"true": t, "pred": p} for i, (t, p) in enumerate(pairs)}


def fold_result(fold, pairs, classes=(A, H), history=(), best=None, repetition=0) -> FoldResult:
    """A finished fold as the report reads it; `best` = (epoch, accuracy, pairs) of its
    best-test record, or None for a fold written before 0.16."""
    job = JobIdentity(
        variant="full",
        protocol="bu3dfe-full",
        protocol_version="1.0.0",
        manifest_sha256="m" * 64,
        repetition=repetition,
        fold=fold,
        dataset_fingerprint="f" * 64,
        config_sha256="c" * 64,
        training=Training(config={"epochs": 4, "loss": {"lambda1": 0.01, "lambda2": 10.0}}),
    )
    best_test = None
    if best is not None:
        epoch, accuracy, best_pairs = best
        best_test = {
            "epoch": epoch,
            "accuracy": accuracy,
            "predictions": predictions(fold, best_pairs),
        }
    return FoldResult(
        job=job,
        status="ok",
        classes=list(classes),
        predictions=predictions(fold, pairs),
        history=list(history),
        best_test=best_test,
    )


def epochs(test_accuracy, loss_ce, loss_total):
    return [
        {"epoch": e, "test_accuracy": a, "loss_ce": c, "loss_total": t}
        for e, (a, c, t) in enumerate(zip(test_accuracy, loss_ce, loss_total, strict=True), 1)
    ]


# fold 0, 4 test samples: epochs score 2/4, 3/4, 2/4 -> best epoch 2 (0.75), last 0.5
# fold 1, 4 test samples: epochs score 1/4, 2/4, 4/4, 3/4 -> best epoch 3 (1.0), last 0.75
HISTORIES = {
    0: epochs([0.5, 0.75, 0.5], [0.9, 0.7, 0.6], [1.5, 1.2, 1.0]),
    1: epochs([0.25, 0.5, 1.0, 0.75], [1.1, 0.8, 0.5, 0.4], [1.9, 1.4, 0.9, 0.7]),
}


def two_folds() -> list[FoldResult]:
    return [
        fold_result(
            0,
            [(A, A), (A, H), (H, H), (H, A)],  # last epoch: 2/4
            history=HISTORIES[0],
            best=(2, 0.75, [(A, A), (A, A), (H, H), (H, A)]),  # 3/4
        ),
        fold_result(
            1,
            [(A, A), (A, A), (H, H), (H, A)],  # last epoch: 3/4
            history=HISTORIES[1],
            best=(3, 1.0, [(A, A), (A, A), (H, H), (H, H)]),  # 4/4
        ),
    ]


# ------------------------------------------------------------------------- epoch selection


def test_best_test_scores_each_fold_at_its_best_recorded_test_accuracy():
    results = two_folds()
    best = aggregate(results, "kfold", selection="best-test")
    best_per_fold = [max(e["test_accuracy"] for e in HISTORIES[k]) for k in (0, 1)]
    assert best_per_fold == [0.75, 1.0]
    assert [row.accuracy for row in best.folds] == pytest.approx(best_per_fold)
    assert best.accuracy.mean == pytest.approx((0.75 + 1.0) / 2)
    # the last epochs, the default: 2/4 and 3/4 -> mean 0.625, below the optimistic 0.875
    last = aggregate(results, "kfold")
    assert [row.accuracy for row in last.folds] == pytest.approx([0.5, 0.75])
    assert last.accuracy.mean == pytest.approx(0.625)
    # best-test pooled confusion: A -> A 2 + 2 = 4, H -> H 1 + 2 = 3, H -> A 1 (fold 0)
    assert best.confusion.counts == [[4, 0], [1, 3]]


def test_a_fold_without_a_best_test_record_counts_as_failed_under_best_test_only():
    old = fold_result(2, [(A, A), (H, H)], history=HISTORIES[0])  # written before 0.16
    results = [*two_folds(), old]
    best = aggregate(results, "kfold", selection="best-test")
    assert (best.folds_ok, best.folds_failed) == (2, 1)
    assert [(f.repetition, f.fold, f.reason) for f in best.failed] == [(0, 2, NO_BEST_TEST)]
    assert (best.folds[2].status, best.folds[2].accuracy) == ("failed", None)
    assert best.accuracy.mean == pytest.approx(0.875)  # its last epoch's 1.0 stays out
    last = aggregate(results, "kfold")
    assert (last.folds_ok, last.folds_failed) == (3, 0)


def test_an_unknown_epoch_selection_is_refused():
    with pytest.raises(ReportError, match="'best-val' is not one of"):
        aggregate(two_folds(), "kfold", selection="best-val")


# ------------------------------------------------------------------------- fold-mean confusion


def test_fold_mean_averages_each_folds_normalised_rows_over_the_folds_that_tested_the_class():
    classes = (A, D, F, H)
    results = [
        # fold 0 tests no disgust: A row 1 A, 1 H -> [1/2, 0, 0, 1/2]; H row 1 A, 3 H ->
        # [1/4, 0, 0, 3/4]
        fold_result(0, [(A, A), (A, H), (H, H), (H, H), (H, H), (H, A)], classes),
        # fold 1: A row 3 A, 1 D -> [3/4, 1/4, 0, 0]; D row 1 D, 1 H -> [0, 1/2, 0, 1/2];
        # H row 1 H -> [0, 0, 0, 1]
        fold_result(1, [(A, A), (A, A), (A, A), (A, D), (D, D), (D, H), (H, H)], classes),
    ]
    summary = aggregate(results, "kfold")
    fold_mean = summary.confusion.fold_mean
    # A: the mean of both folds' rows; D: fold 1's row alone; H: the mean of both folds'
    assert fold_mean[0] == pytest.approx([(1 / 2 + 3 / 4) / 2, 1 / 8, 0.0, 1 / 4])
    assert fold_mean[1] == pytest.approx([0.0, 1 / 2, 0.0, 1 / 2])
    assert fold_mean[3] == pytest.approx([1 / 8, 0.0, 0.0, (3 / 4 + 1) / 2])
    assert fold_mean[2] == [None] * 4  # no fold tested fear
    # pooled, for contrast: A counts [4, 1, 0, 1] of 6; H [1, 0, 0, 4] of 5
    assert summary.confusion.normalised[0] == pytest.approx([4 / 6, 1 / 6, 0.0, 1 / 6])
    assert summary.confusion.normalised[3] == pytest.approx([1 / 5, 0.0, 0.0, 4 / 5])
    assert summary.confusion.normalised[2] == [0.0] * 4
    assert summary.to_json()["confusion"]["fold_mean"][2] == [None] * 4  # null in report.json


def test_the_confusion_figure_has_both_matrices_each_titled_with_what_it_is():
    classes = (A, D, F, H)
    results = [fold_result(0, [(A, A), (H, A)], classes), fold_result(1, [(D, D)], classes)]
    fig = confusion_figure(aggregate(results, "kfold"), "full / bu3dfe-full", OPTIMISTIC)
    pooled, mean = (ax for ax in fig.axes if ax.get_xlabel() == "predicted")
    assert pooled.get_title().startswith("pooled (ours): counts summed over 2 folds")
    assert mean.get_title().startswith("fold mean (as the paper's Figs. 12, 17)")
    cells = [t.get_text() for t in mean.texts]
    # fear, never tested: a row of dashes in the fold mean, zeros in the pooled matrix
    assert cells[8:12] == ["—"] * 4
    assert [t.get_text() for t in pooled.texts][8:12] == ["0.00"] * 4
    # happiness, fold 0 only: 1 -> anger; the fold mean's row is fold 0's
    assert cells[12:16] == ["1.00", "0.00", "0.00", "0.00"]


# ------------------------------------------------------------------------- class colours


def _legend_styles(fig) -> dict[str, tuple]:
    """Class name -> (RGBA colour, marker outline) read back from the scatter artists."""
    ax = fig.axes[0]
    styles = {}
    for artist in ax.collections:
        name = artist.get_label().split(" (")[0]
        outline = tuple(map(tuple, artist.get_paths()[0].vertices.round(6)))
        styles[name] = (tuple(artist.get_facecolor()[0]), outline)
    return styles


def test_a_class_has_one_colour_and_marker_in_t_sne_plots_of_different_class_subsets():
    rng = np.random.default_rng(0)
    wide = [A, F, "surprise", "sadness"]
    narrow = ["surprise", F]  # another subset, in another order
    truths_wide = [c for c in wide for _ in range(4)]
    truths_narrow = [c for c in narrow for _ in range(4)]
    first = tsne_figure(rng.normal(size=(16, 8)), truths_wide, wide, "a", (0, 0))
    second = tsne_figure(rng.normal(size=(8, 8)), truths_narrow, narrow, "b", (0, 1))
    one, two = _legend_styles(first), _legend_styles(second)
    assert set(one) == set(wide) and set(two) == set(narrow)
    for name in narrow:
        assert one[name] == two[name], name
        assert one[name][0] == pytest.approx(to_rgba(class_style(name)[0]))
    assert len({colour for colour, _ in one.values()}) == len(wide)  # told apart within a plot
    assert len({marker for _, marker in one.values()}) == len(wide)


def test_every_class_of_the_taxonomy_has_its_own_colour_and_marker():
    styles = [class_style(name) for name in CLASSES]
    assert len({colour for colour, _ in styles}) == len(CLASSES)
    assert len({marker for _, marker in styles}) == len(CLASSES)
    assert class_style("contempt") == class_style("contempt")  # outside it: stable, still drawn
    assert class_style("contempt")[0] not in {colour for colour, _ in styles}


# ------------------------------------------------------------------------- curves


def test_the_curves_name_the_training_loss_and_draw_its_cross_entropy_term_beside_it():
    fig = curves_figure(two_folds(), "full / bu3dfe-full", OPTIMISTIC)
    loss_ax, accuracy_ax = (ax for ax in fig.axes if ax.get_xlabel() == "epoch")
    labels = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert labels == [LOSS, "its cross-entropy term CE"]
    by_label = {line.get_label(): line for line in loss_ax.get_lines()}
    # mean CE by epoch: (0.9 + 1.1)/2, (0.7 + 0.8)/2, (0.6 + 0.5)/2, then fold 1 alone 0.4
    ce = by_label["its cross-entropy term CE"]
    assert list(ce.get_xdata()) == [1, 2, 3, 4]
    assert list(ce.get_ydata()) == pytest.approx([1.0, 0.75, 0.55, 0.4])
    total = by_label[LOSS]  # mean total: (1.5 + 1.9)/2, (1.2 + 1.4)/2, (1.0 + 0.9)/2, 0.7
    assert list(total.get_ydata()) == pytest.approx([1.7, 1.3, 0.95, 0.7])
    # best-test: each fold's chosen epoch starred on the accuracy panel: (2, 0.75), (3, 1.0)
    (stars,) = accuracy_ax.collections
    assert stars.get_offsets().tolist() == [[2.0, 0.75], [3.0, 1.0]]
    assert "optimistic" in stars.get_label()


def test_the_curves_of_the_last_epoch_star_nothing_and_old_histories_show_the_total_alone():
    old = [fold_result(0, [(A, A)], history=[{"epoch": e, "loss_total": 1.0 / e} for e in (1, 2)])]
    fig = curves_figure(old, "full / bu3dfe-full", Conditions(epoch_selection="last"))
    loss_ax, accuracy_ax = (ax for ax in fig.axes if ax.get_xlabel() == "epoch")
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == [LOSS]
    assert not accuracy_ax.collections


# ------------------------------------------------------------------------- conditions in titles


def test_figure_titles_carry_the_conditions_words():
    summary = aggregate(two_folds(), "kfold", selection="best-test")
    words = (
        "folds by sample: same person in train and test",
        "best-test epoch (optimistic)",
        "2 repetitions × 3 folds",
        "not the published manifest",
    )
    titles = [
        confusion_figure(summary, "full / bu3dfe-full", OPTIMISTIC).get_suptitle(),
        curves_figure(two_folds(), "full / bu3dfe-full", OPTIMISTIC).get_suptitle(),
        tsne_figure(np.eye(4, 8), [A, A, H, H], [A, H], "x", (0, 0), OPTIMISTIC).get_suptitle(),
    ]
    for title in titles:
        assert all(word in title for word in words), title


def test_the_written_figures_carry_the_runs_conditions(tmp_path, monkeypatch):
    """The checked-in 0.7.0 run: 1 repetition x 2 folds by subject, last epoch, and a run.json
    written before anyone recorded whether its manifest was the published one."""
    run = shutil.copytree(FIXTURE, tmp_path / "run", ignore=shutil.ignore_patterns("*.py"))
    titles = {}
    real = figures.save_figure

    def keeping_titles(fig, target):
        titles[Path(target).name] = fig.get_suptitle()
        return real(fig, target)

    monkeypatch.setattr(figures, "save_figure", keeping_titles)
    write_report(run)
    line = (
        "folds by subject · last epoch · 1 repetition × 2 folds · "
        "manifest: not known to be the published one"
    )
    assert set(titles) == {"full_bu3dfe-legacy_confusion.png", "full_bu3dfe-legacy_curves.png"}
    assert all(title.endswith(line) for title in titles.values()), titles
