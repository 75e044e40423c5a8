"""A manifest against what a dataset holds: ids, labels, subjects and counts, and the
manifest's own invariants."""

from __future__ import annotations

from dataclasses import dataclass, field

from fer3d_bench.splits.deal import Item, uses
from fer3d_bench.splits.manifest import Manifest
from fer3d_bench.splits.protocol import Protocol


@dataclass
class Verification:
    missing: list[str]
    extra: list[str]
    label_mismatch: list[tuple[str, str, str]]  # (sample id, manifest label, dataset label)
    count_differences: dict[str, tuple[int, int]]  # class -> (manifest, dataset)
    subject_mismatch: list[tuple[str, str, str]] = field(default_factory=list)  # as labels
    broken: list[str] = field(default_factory=list)  # the manifest's own invariants

    @property
    def ok(self) -> bool:
        differences = (self.missing, self.extra, self.label_mismatch, self.count_differences)
        return not (any(differences) or self.subject_mismatch or self.broken)

    def describe(self, limit: int = 10) -> list[str]:
        """What differs, one line per kind, at most `limit` examples each."""
        lines = []
        for name, values in (("missing", self.missing), ("extra", self.extra)):
            if values:
                more = " ..." if len(values) > limit else ""
                lines.append(f"{len(values)} {name}: {', '.join(values[:limit])}{more}")
        for sample_id, want, got in self.label_mismatch[:limit]:
            lines.append(f"label differs: {sample_id}: manifest {want}, dataset {got}")
        for sample_id, want, got in self.subject_mismatch[:limit]:
            lines.append(f"subject differs: {sample_id}: manifest {want}, dataset {got}")
        for name, (want, got) in self.count_differences.items():
            lines.append(f"count of {name}: manifest {want}, dataset {got}")
        lines += [f"manifest contradicts itself: {line}" for line in self.broken[:limit]]
        if len(self.broken) > limit:
            lines.append(f"... and {len(self.broken) - limit} more contradictions")
        return lines


def verify(manifest: Manifest, protocol: Protocol, items: list[Item]) -> Verification:
    """Check a manifest's own invariants, and compare its samples with what a dataset holds
    for the same protocol: ids, labels and subjects (a subject is what keeps folds apart)."""
    expected = manifest.samples()
    present = {i.sample_id: i for i in items if uses(protocol, i)}
    subjects = {entry.subject for entry in expected.values()}
    candidates = {k: v for k, v in present.items() if v.subject in subjects}
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(candidates) - set(expected))
    both = set(expected) & set(present)
    mismatch = sorted(
        (s, expected[s].label, present[s].label)
        for s in both
        if expected[s].label != present[s].label
    )
    subjects_differ = sorted(
        (s, expected[s].subject, present[s].subject)
        for s in both
        if expected[s].subject != present[s].subject
    )
    counts = {}
    for c in protocol.classes:
        a = sum(1 for v in expected.values() if v.label == c)
        b = sum(1 for v in candidates.values() if v.label == c)
        if a != b:
            counts[c] = (a, b)
    broken = manifest.broken_invariants(protocol)
    return Verification(missing, extra, mismatch, counts, subjects_differ, broken)
