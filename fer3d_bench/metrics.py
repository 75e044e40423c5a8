"""The scores of one fold's predictions: accuracy, macro-F1, per-class recall, confusion.

Shared by the fold job, which stores them in result.json for a quick look, and the report,
which recomputes them from the stored predictions; neither imports the other.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

from fer3d_bench.errors import ReportError


def fold_metrics(true: Sequence[str], pred: Sequence[str], classes: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-class recall and confusion (rows true, columns predicted).

    Macro-F1 averages over the classes that occur among the true or predicted labels.
    """
    index = {name: i for i, name in enumerate(classes)}
    if len(true) != len(pred):
        raise ReportError(f"fold_metrics: {len(true)} true labels but {len(pred)} predictions")
    if not true:
        raise ReportError("fold_metrics: no predictions to score")
    unknown = sorted({label for label in (*true, *pred) if label not in index})
    if unknown:
        raise ReportError(
            f"fold_metrics: labels {unknown} are not among the classes {list(classes)}"
        )
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, ([index[t] for t in true], [index[p] for p in pred]), 1)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    hits = np.diag(confusion)
    recall = {
        c: (float(hits[i] / support[i]) if support[i] else None) for i, c in enumerate(classes)
    }
    present = [i for i in range(len(classes)) if support[i] or predicted[i]]
    return {
        "n": len(true),
        "accuracy": float(hits.sum() / len(true)),
        "macro_f1": statistics.fmean(_f1(hits[i], support[i], predicted[i]) for i in present),
        "recall": recall,
        "confusion": confusion.tolist(),
    }


def prediction_metrics(predictions: dict[str, dict], classes: Sequence[str]) -> dict:
    """`fold_metrics` of a result's predictions (sample id -> {"true", "pred"}), by sorted id."""
    ids = sorted(predictions)
    return fold_metrics(
        [predictions[s]["true"] for s in ids], [predictions[s]["pred"] for s in ids], classes
    )


def _f1(hits: int, support: int, predicted: int) -> float:
    precision = hits / predicted if predicted else 0.0
    recall = hits / support if support else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0
