"""Human-readable summary of a scan: counts per class and subject, exclusions, skipped files."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from fer3d_bench.sources.base import ScanResult
from fer3d_bench.taxonomy import CLASSES

COLUMNS = ("sample_id", "dataset", "subject", "label", "code", "intensity", "sex")


def sample_table(result: ScanResult) -> pd.DataFrame:
    """The samples of a scan as a table, one row each, files as columns `file_<role>`."""
    rows = []
    for s in result.samples:
        row = {column: getattr(s, column) for column in COLUMNS}
        row.update({f"file_{role}": str(p) for role, p in sorted(s.files.items())})
        rows.append(row)
    return pd.DataFrame(rows, columns=None if rows else list(COLUMNS))


def format_scan(result: ScanResult, list_excluded: bool = False) -> str:
    """The report `fer3d-bench scan` prints."""
    samples = sample_table(result)
    n_subjects = samples["subject"].nunique() if len(samples) else 0
    lines = [
        f"{result.source} at {result.root}",
        f"  {len(samples)} samples from {n_subjects} subjects, {len(result.excluded)} excluded, "
        f"{len(result.skipped)} files skipped",
    ]
    if result.ignored:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(result.ignored.items()))
        lines.append(f"  unused file kinds ignored: {kinds}")
    if len(samples):
        lines += ["", "Samples per class:", _indent(_per_class(samples))]
        lines += ["", "Samples per subject and class:", _indent(_per_subject(samples))]
    if result.excluded:
        lines += ["", "Excluded (recognised, label not mapped), by reason:"]
        reasons = Counter(e.reason for e in result.excluded)
        lines += [f"  {n:6d}  {reason}" for reason, n in sorted(reasons.items())]
        if list_excluded:
            lines += [f"    {e.sample_id}: {e.reason}" for e in result.excluded]
    if result.skipped:
        lines += ["", "Skipped files:"]
        lines += [f"  {s.path}: {s.reason}" for s in result.skipped]
    return "\n".join(lines)


def _per_class(samples: pd.DataFrame) -> str:
    counts = samples["label"].value_counts().reindex(list(CLASSES), fill_value=0)
    return counts.rename_axis("class").rename("samples").to_string()


def _per_subject(samples: pd.DataFrame) -> str:
    table = pd.crosstab(samples["subject"], samples["label"]).reindex(
        columns=list(CLASSES), fill_value=0
    )
    table["total"] = table.sum(axis=1)
    return table.to_string()


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
