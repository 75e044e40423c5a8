"""A comparison as text: one table per protocol, accuracies in percent with two decimals,
differences in percentage points, and under each row what a reader must know about it (a test
that could not be computed and why, McNemar's counts, conditions that differ)."""

from __future__ import annotations

import textwrap

from fer3d_bench.compare.build import NOTE, Comparison, Row
from fer3d_bench.compare.stats import TTest

UNDEFINED = "—"
WIDTH = 100  # of the note under the tables
HEADER = [
    "run",
    "variant",
    "accuracy",
    "macro-F1",
    "Δ accuracy [95% CI]",
    "p",
    "Δ macro-F1 [95% CI]",
    "p",
    "subject bootstrap Δ accuracy [95%]",
]


def format_comparison(comparison: Comparison) -> str:
    """Every protocol's table, the bootstrap's settings, which test is used where and why."""
    lines: list[str] = []
    protocols = list(dict.fromkeys(row.protocol for row in comparison.rows))
    for protocol in protocols:
        rows = [row for row in comparison.rows if row.protocol == protocol]
        lines += [_title(rows[0]), *_table(rows), ""]
    lines.append(
        f"Subject bootstrap: {rows[0].bootstrap.method} intervals from "
        f"{comparison.resamples:,} resamples of the test subjects, seed {comparison.seed}."
        if comparison.rows
        else "Nothing to compare."
    )
    lines.append(textwrap.fill(NOTE, WIDTH))
    lines += [f"not compared: {words}" for words in comparison.skipped]
    return "\n".join(lines)


def _title(row: Row) -> str:
    n, reps = len(row.folds), row.repetitions
    title = (
        f"{row.protocol}: {row.kind}, {n} fold{'s' * (n != 1)} in common "
        f"({reps} repetition{'s' * (reps != 1)})"
    )
    if row.single_split:
        return f"{title}, a single split"
    if row.accuracy.ratio is not None:
        return f"{title}; n_test/n_train {row.accuracy.ratio:.4f} from {row.ratio_source}"
    return title


def _table(rows: list[Row]) -> list[str]:
    base = rows[0].baseline
    cells = [
        HEADER,
        [f"{base.folder} (baseline)", base.variant, percent(base.accuracy), percent(base.macro_f1)],
    ]
    notes: dict[int, list[str]] = {}
    for row in rows:
        other, boot = row.other, row.bootstrap
        cells.append(
            [
                other.folder,
                other.variant,
                percent(other.accuracy),
                percent(other.macro_f1),
                _difference(row.accuracy),
                _p(row.accuracy),
                _difference(row.macro_f1),
                _p(row.macro_f1),
                points(boot.estimate, boot.low, boot.high),
            ]
        )
        notes[len(cells) - 1] = _notes(row)
    widths = [max(len(line[i]) for line in cells if i < len(line)) for i in range(len(HEADER))]
    out = []
    for index, line in enumerate(cells):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip())
        out += [f"    {note}" for note in notes.get(index, [])]
    return out


def _notes(row: Row) -> list[str]:
    out = []
    if row.mcnemar is not None:
        test = row.mcnemar
        counts = (
            f"b = {test.b} samples only {row.baseline.folder} got right, "
            f"c = {test.c} only {row.other.folder} got right"
        )
        result = f"p = {_p_value(test.p)}" if test.p is not None else f"{UNDEFINED} ({test.reason})"
        out.append(f"McNemar's exact test (single split): {counts}; {result}")
    reasons = {"accuracy": row.accuracy.reason, "macro-F1": row.macro_f1.reason}
    if not row.accuracy.defined or not row.macro_f1.defined:
        if row.accuracy.reason == row.macro_f1.reason:
            out.append(f"{UNDEFINED} corrected t-test: {row.accuracy.reason}")
        else:
            out += [f"{UNDEFINED} corrected t-test of {m}: {r}" for m, r in reasons.items() if r]
    if not row.bootstrap.defined:
        out.append(f"{UNDEFINED} subject bootstrap: {row.bootstrap.reason}")
    out += [f"warning: {words}" for words in row.warnings]
    return out


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def points(estimate: float | None, low: float | None, high: float | None) -> str:
    """'+1.23 pp [-0.50, +2.96]', or the estimate and '—' without an interval."""
    if estimate is None:
        return UNDEFINED
    shown = f"{100 * estimate:+.2f} pp"
    if low is None or high is None:
        return f"{shown} {UNDEFINED}"
    return f"{shown} [{100 * low:+.2f}, {100 * high:+.2f}]"


def _difference(test: TTest) -> str:
    return points(test.mean, test.low, test.high)


def _p(test: TTest) -> str:
    return UNDEFINED if test.p is None else _p_value(test.p)


def _p_value(p: float) -> str:
    return "<0.0001" if p < 0.0001 else f"{p:.4f}"
