"""One module per dataset: find its samples in the native tree, map labels, load raw data."""

from __future__ import annotations

from pathlib import Path

from fer3d_bench.progress import progress as progress_bar
from fer3d_bench.sources.base import Excluded, SampleRecord, ScanResult, Skipped, Source
from fer3d_bench.sources.bosphorus import Bosphorus, BosphorusScan
from fer3d_bench.sources.bu3dfe import BU3DFE, Bu3dfeScan
from fer3d_bench.sources.cald3r_mend3s import CalD3rMenD3s, Layout, RgbdPair, load_layout
from fer3d_bench.taxonomy import LabelMap, load_label_map

SOURCES: dict[str, type[Source]] = {
    BU3DFE.name: BU3DFE,
    Bosphorus.name: Bosphorus,
    CalD3rMenD3s.name: CalD3rMenD3s,
}


def open_source(
    name: str,
    root: Path | str,
    label_map: LabelMap | None = None,
    layout: Layout | None = None,
) -> Source:
    """The source class registered under `name`, opened on `root`."""
    if name not in SOURCES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(SOURCES)}")
    if name == CalD3rMenD3s.name:
        return CalD3rMenD3s(root, label_map, layout)
    return SOURCES[name](root, label_map)


def subject_of(sample_id: str) -> str | None:
    """The subject a sample id names (`bu3dfe:F0001_AN04` -> `bu3dfe:F0001`) by the grammar of
    the source its namespace belongs to; None if no source knows the namespace or the id."""
    dataset, _, name = sample_id.partition(":")
    for source in SOURCES.values():
        pattern = source.sample_ids.get(dataset)
        found = pattern.fullmatch(name) if pattern else None
        if found:
            return f"{dataset}:{found['subject']}"
    return None


def scan_root(
    root: Path | str,
    dataset: str,
    *,
    label_map: Path | None = None,
    layout: Path | None = None,
    check: bool = True,
    progress: bool = True,
) -> ScanResult:
    """Open and scan one dataset root, with the user's label map and layout files if given."""
    labels = load_label_map(label_map)
    source = open_source(dataset, root, labels, load_layout(layout) if layout else None)

    def bar(items):
        return progress_bar(items, desc=f"checking {dataset}", unit="sample", enabled=progress)

    return source.scan(check=check, progress=bar)


__all__ = [
    "BU3DFE",
    "SOURCES",
    "Bosphorus",
    "BosphorusScan",
    "Bu3dfeScan",
    "CalD3rMenD3s",
    "Excluded",
    "Layout",
    "RgbdPair",
    "SampleRecord",
    "ScanResult",
    "Skipped",
    "Source",
    "load_layout",
    "open_source",
    "scan_root",
    "subject_of",
]
