"""How many samples were flagged low-quality, per dataset and check: for build and inspect."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from fer3d_bench.render.layout import OK


def flag_counts(rows: Iterable[tuple[str, str, str]]) -> dict[str, dict]:
    """(dataset, status, flags) per sample -> dataset -> {"samples", "flagged", "checks"}.

    `flags` holds the names of the checks a sample failed, ';'-separated; a sample failing two
    checks counts once in "flagged" and once under each check.
    """
    out: dict[str, dict] = {}
    for dataset, status, flags in rows:
        entry = out.setdefault(dataset, {"samples": 0, "flagged": 0, "checks": Counter()})
        entry["samples"] += 1
        if status != OK:
            entry["flagged"] += 1
            entry["checks"].update(flags.split(";") if flags else ["unspecified"])
    return {
        name: {**entry, "checks": dict(sorted(entry["checks"].items()))}
        for name, entry in sorted(out.items())
    }


def describe_flags(counts: dict[str, dict]) -> list[str]:
    """One line per dataset: how many samples are flagged and by which checks."""
    lines = []
    for dataset, entry in counts.items():
        if not entry["flagged"]:
            lines.append(f"{dataset}: all {entry['samples']} samples aligned within their bars")
            continue
        checks = ", ".join(f"{name} {n}" for name, n in entry["checks"].items())
        lines.append(
            f"{dataset}: {entry['flagged']} of {entry['samples']} samples flagged low-quality "
            f"and kept ({checks})"
        )
    return lines
