"""Fold results reduced as each protocol defines it; one code path for every kind.

* fold scores (accuracy, macro-F1) are averaged within each repetition first; the headline value
  is the mean of the repetition means. With several repetitions (the legacy BU-3DFE protocol,
  10 folds x 100 repetitions, as Li et al. and the field report it) both levels are kept: the std
  across repetition means and the mean of the within-repetition stds. With one repetition the
  headline std is the std over its folds; a hold-out or cross-dataset run has one fold, no std.
* every std is the sample standard deviation (ddof=1), and None when fewer than two values exist.
* confusion counts are summed over every ok fold of every repetition; the reported matrix is the
  row-normalised sum (a class with no samples keeps a zero row), and per-class recall is its
  diagonal (None for a class with no samples).
* failed folds count, with their reasons, and never enter an aggregate.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

from fer3d_bench.errors import ReportError
from fer3d_bench.metrics import prediction_metrics
from fer3d_bench.records.group import (
    Aggregate,
    Confusion,
    FailedFold,
    FoldRow,
    Levels,
    RepetitionRow,
    Spread,
)
from fer3d_bench.records.result import FoldResult
from fer3d_bench.records.run import KINDS


def aggregate(results: list[FoldResult], kind: str) -> Aggregate:
    """One (variant, protocol)'s results reduced as the protocol defines it (module docstring)."""
    if kind not in KINDS:
        raise ReportError(f"aggregate: protocol kind {kind!r} is not one of {KINDS}")
    ordered = sorted(results, key=lambda r: r.position)
    ok = [r for r in ordered if r.ok]
    scored = {r.position: score(r) for r in ok}
    if len(scored) < len(ok):
        raise ReportError("aggregate: two ok results share a (repetition, fold)")
    repetitions = [_repetition(rep, scored) for rep in sorted({rep for rep, _ in scored})]
    classes = list(ordered[0].classes) if ordered else []
    confusion = _pooled_confusion([m["confusion"] for m in scored.values()], len(classes))
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


def score(result: FoldResult) -> dict:
    """Metrics recomputed from the per-sample predictions, the record every number traces to."""
    try:
        return prediction_metrics(result.predictions, result.classes)
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


def _pooled_confusion(matrices: list[list[list[int]]], size: int) -> Confusion:
    counts = np.zeros((size, size), dtype=np.int64)
    for matrix in matrices:
        counts += np.asarray(matrix, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    return Confusion(counts=counts.tolist(), normalised=normalised.tolist())


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
