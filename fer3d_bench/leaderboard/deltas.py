"""Each row's accuracy against the baseline's, with its 95% interval, from `compare`.

The interval rests on the per-sample predictions of the folds both folders finished (their
fold results), paired; the rest of the board needs report.json alone. A pair `compare` refuses
(other manifests, other finished folds, a folder holding only its report) keeps the difference
of the two reports' means, without an interval, and says why: one folder that does not compare
never stops the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fer3d_bench.compare import Row, compare_runs
from fer3d_bench.errors import Fer3dError
from fer3d_bench.leaderboard.entries import Entry

RESAMPLES = 10_000
SEED = 0
NO_INTERVAL = "the difference of the reports' means; no interval"


@dataclass(frozen=True)
class Delta:
    """A row's accuracy minus the baseline's on one protocol (fractions), and its 95%
    interval; `note` says what the interval rests on, or why there is none."""

    difference: float
    low: float | None
    high: float | None
    note: str = ""


def baseline_deltas(
    entries: list[Entry], baseline: Entry, *, resamples: int = RESAMPLES, seed: int = SEED
) -> dict[tuple[Path, str], Delta]:
    """(folder, protocol) -> its Delta against `baseline`, for each row on a protocol the
    baseline has too: `compare_runs([baseline, folder])` once per other folder."""
    deltas = {}
    for entry in entries:
        if entry is baseline:
            continue
        means = _report_deltas(entry, baseline)
        try:
            comparison = compare_runs(
                [baseline.folder, entry.folder], resamples=resamples, seed=seed
            )
        except Fer3dError as error:
            refused = f"{NO_INTERVAL}: {error}"
            deltas |= {key: Delta(d.difference, None, None, refused) for key, d in means.items()}
            continue
        deltas |= means
        deltas |= {(entry.folder, row.protocol): delta_of(row) for row in comparison.rows}
    return deltas


def delta_of(row: Row) -> Delta:
    """The corrected resampled t-test's interval over the folds where it is defined, else the
    subject bootstrap's of the pooled accuracy difference, else the difference alone."""
    test, boot = row.accuracy, row.bootstrap
    if test.low is not None and test.high is not None:
        note = f"mean over {test.n} folds; corrected resampled t-test (Nadeau and Bengio)"
        return Delta(test.mean, test.low, test.high, note)
    why = f" (no t-test: {test.reason})" if test.reason else ""
    if boot.low is not None and boot.high is not None:
        note = (
            f"pooled over every test prediction; bootstrap of {boot.subjects} test subjects, "
            f"{boot.resamples} resamples{why}"
        )
        return Delta(boot.estimate, boot.low, boot.high, note)
    difference = test.mean if test.mean is not None else boot.estimate
    return Delta(difference, None, None, f"no interval: {test.reason or boot.reason}")


def _report_deltas(entry: Entry, baseline: Entry) -> dict[tuple[Path, str], Delta]:
    """The difference of the two reports' mean accuracies, per protocol both hold."""
    means = {g.protocol: g.mean_accuracy for g in baseline.groups()}
    deltas = {}
    for group in entry.groups():
        base = means.get(group.protocol)
        if base is not None and group.mean_accuracy is not None:
            deltas[(entry.folder, group.protocol)] = Delta(
                group.mean_accuracy - base, None, None, NO_INTERVAL
            )
    return deltas
