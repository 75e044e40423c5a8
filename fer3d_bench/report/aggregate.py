"""Fold results reduced as each protocol defines it; one code path for every kind.

* every metric is computed from the predictions of the epoch the run's selection names
  (`FoldResult.selected`): "last", each fold's final epoch, or "best-test", the epoch with the
  best test accuracy, an optimistic choice since the test fold makes it. A finished fold with
  no best-test record (written before 0.16, or a scored submission) asked for "best-test" is
  counted as a failed fold with the reason NO_BEST_TEST, never scored on its last epoch under a
  best-test heading, and the rest of the report is still written.
* fold scores (accuracy, macro-F1) are averaged within each repetition first; the headline value
  is the mean of the repetition means. With several repetitions (the legacy BU-3DFE protocol,
  10 folds x 100 repetitions, as Li et al. and the field report it) both levels are kept: the std
  across repetition means and the mean of the within-repetition stds. With one repetition the
  headline std is the std over its folds; a hold-out or cross-dataset run has one fold, no std.
* every std is the sample standard deviation (ddof=1), and None when fewer than two values exist.
* two confusion matrices, both kept and labelled wherever shown:
  - pooled (`normalised`, ours): counts summed over every ok fold of every repetition, then
    row-normalised (a class with no samples keeps a zero row); per-class recall is its diagonal
    (None for a class with no samples). A large fold weighs more than a small one.
  - fold mean (`fold_mean`, the paper's Figs. 12 and 17 average over folds): each ok fold's
    matrix row-normalised on its own, then averaged cell by cell over the ok folds of every
    repetition, each fold weighing the same. A class absent from a fold's test samples has no
    row in that fold, so its row is the mean over the folds that tested it; a class no fold
    tested has a row of None.
* failed folds count, with their reasons, and never enter an aggregate.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from fer3d_bench.errors import ReportError
from fer3d_bench.metrics import prediction_metrics
from fer3d_bench.records.conditions import SELECTIONS
from fer3d_bench.records.group import (
    Aggregate,
    Confusion,
    FailedFold,
    FoldRow,
    Levels,
    RepetitionRow,
    Spread,
)
from fer3d_bench.records.result import FAILED, FoldResult
from fer3d_bench.records.run import KINDS

# why a finished fold is counted as failed when the run reports the best-test epoch
NO_BEST_TEST = "no best-test record (written before 0.16)"


def aggregate(results: list[FoldResult], kind: str, selection: str = "last") -> Aggregate:
    """One (variant, protocol)'s results reduced as the protocol defines it, each fold scored on
    the epoch `selection` names, "last" or "best-test" (the module docstring gives the rules; a
    fold without a best-test record counts as failed under "best-test")."""
    if kind not in KINDS:
        raise ReportError(f"aggregate: protocol kind {kind!r} is not one of {KINDS}")
    if selection not in SELECTIONS:
        raise ReportError(f"aggregate: epoch selection {selection!r} is not one of {SELECTIONS}")
    ordered = [_counted(r, selection) for r in sorted(results, key=lambda r: r.position)]
    ok = [r for r in ordered if r.ok]
    scored = {r.position: score(r, selection) for r in ok}
    if len(scored) < len(ok):
        raise ReportError("aggregate: two ok results share a (repetition, fold)")
    repetitions = [_repetition(rep, scored) for rep in sorted({rep for rep, _ in scored})]
    classes = list(ordered[0].classes) if ordered else []
    confusion = _confusion([m["confusion"] for m in scored.values()], len(classes))
    failed = [r for r in ordered if not r.ok]
    return Aggregate(
        kind=kind,
        classes=classes,
        folds_ok=len(scored),
        folds_failed=len(failed),
        failed=[FailedFold(*r.position, reason=r.reason) for r in failed],
        folds=[_fold_row(r, scored.get(r.position)) for r in ordered],
        repetitions=repetitions,
        accuracy=_levels(repetitions, "accuracy"),
        macro_f1=_levels(repetitions, "macro_f1"),
        confusion=confusion,
        recall=_pooled_recall(confusion, classes),
    )


def _counted(result: FoldResult, selection: str) -> FoldResult:
    """The result as the aggregate counts it: a finished fold without the predictions of the
    selected epoch (no best-test record) counts as failed, with the reason why."""
    if result.ok and result.selected(selection) is None:
        return replace(result, status=FAILED, reason=NO_BEST_TEST)
    return result


def score(result: FoldResult, selection: str = "last") -> dict:
    """Metrics recomputed from the per-sample predictions of the selected epoch, the record
    every number traces to."""
    try:
        return prediction_metrics(result.selected(selection), result.classes)
    except ReportError as error:
        repetition, fold = result.position
        where = f"{result.variant}/{result.protocol} repetition {repetition} fold {fold}"
        raise ReportError(f"{where}: {error}") from None


def mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def std(values: Sequence[float]) -> float | None:
    """Sample std (ddof=1): the spread a reader may compare with papers that report it."""
    return statistics.stdev(values) if len(values) >= 2 else None


def _repetition(repetition: int, scored: dict[tuple[int, int], dict]) -> RepetitionRow:
    folds = [m for (rep, _), m in sorted(scored.items()) if rep == repetition]
    return RepetitionRow(
        repetition=repetition,
        folds=len(folds),
        accuracy=_spread([m["accuracy"] for m in folds]),
        macro_f1=_spread([m["macro_f1"] for m in folds]),
    )


def _spread(values: list[float]) -> Spread:
    return Spread(mean=mean(values), std=std(values))


def _levels(repetitions: list[RepetitionRow], key: str) -> Levels:
    """Mean of repetition means; the spread across them and the mean spread within them."""
    spreads: list[Spread] = [getattr(r, key) for r in repetitions]
    means = [s.mean for s in spreads]
    within = [s.std for s in spreads if s.std is not None]
    return Levels(
        mean=mean(means),
        std_across_repetitions=std(means),
        mean_std_within_repetitions=mean(within),
    )


def _confusion(matrices: list[list[list[int]]], size: int) -> Confusion:
    """The pooled matrix (counts summed, then row-normalised) and the fold mean beside it."""
    counts = np.zeros((size, size), dtype=np.int64)
    for matrix in matrices:
        counts += np.asarray(matrix, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    return Confusion(
        counts=counts.tolist(),
        normalised=normalised.tolist(),
        fold_mean=fold_mean_confusion(matrices, size),
    )


def fold_mean_confusion(matrices: list[list[list[int]]], size: int) -> list[list[float | None]]:
    """Each fold's counts row-normalised, averaged over the folds cell by cell; a fold's row of
    a class it did not test is left out of that row's mean; a row no fold tested is None."""
    sums, tested = np.zeros((size, size)), np.zeros(size, dtype=np.int64)
    for matrix in matrices:
        counts = np.asarray(matrix, dtype=np.float64).reshape(size, size)
        rows = counts.sum(axis=1)
        present = rows > 0
        sums[present] += counts[present] / rows[present, None]
        tested += present
    return [
        [float(v) / tested[i] for v in sums[i]] if tested[i] else [None] * size for i in range(size)
    ]


def _pooled_recall(confusion: Confusion, classes: list[str]) -> dict[str, float | None]:
    counts, normalised = confusion.counts, confusion.normalised
    return {c: (normalised[i][i] if sum(counts[i]) else None) for i, c in enumerate(classes)}


def _fold_row(result: FoldResult, metrics: dict | None) -> FoldRow:
    repetition, fold = result.position
    return FoldRow(
        repetition=repetition,
        fold=fold,
        status=result.status,
        reason=result.reason,
        seconds=result.seconds,
        n=metrics["n"] if metrics else None,
        accuracy=metrics["accuracy"] if metrics else None,
        macro_f1=metrics["macro_f1"] if metrics else None,
        checkpoint=result.checkpoint,
    )
