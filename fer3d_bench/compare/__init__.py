"""Paired comparison of evaluate runs and scored submissions on the same manifest.

- `stats`: the corrected resampled t-test, McNemar's exact test and the subject bootstrap, on
  plain numbers;
- `load`: a folder's compared variant and the predictions of its finished folds, and the checks
  that make two folders comparable (same manifest, same finished folds);
- `build`: the comparison record (`compare_runs`), every number from stored predictions;
- `format`: the comparison as text.

Nothing here imports torch: a comparison runs from the JSON files alone.
"""

from fer3d_bench.compare.build import NOTE, Comparison, Row, Side, compare_runs
from fer3d_bench.compare.format import format_comparison
from fer3d_bench.compare.stats import (
    CompareError,
    Interval,
    McNemar,
    TTest,
    corrected_t_test,
    mcnemar,
    subject_bootstrap,
)

__all__ = [
    "NOTE",
    "CompareError",
    "Comparison",
    "Interval",
    "McNemar",
    "Row",
    "Side",
    "TTest",
    "compare_runs",
    "corrected_t_test",
    "format_comparison",
    "mcnemar",
    "subject_bootstrap",
]
