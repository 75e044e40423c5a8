"""Datasets as the items splits are dealt from: a merged file's, a native tree's, or BU-3DFE's
published naming scheme (no files needed)."""

from __future__ import annotations

from pathlib import Path

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.sources import BU3DFE, open_source
from fer3d_bench.splits import Item
from fer3d_bench.taxonomy import load_label_map


def items_of(data: H5Dataset) -> list[Item]:
    """The items of an open merged file (for callers that read its fingerprint too)."""
    intensity, sex = data.column("intensity"), data.column("sex")
    return [
        Item(s, str(subj), str(d), data.classes[int(lab)], int(i), str(x))
        for s, subj, d, lab, i, x in zip(
            data.sample_ids,
            data.subjects,
            data.datasets,
            data.labels,
            intensity,
            sex,
            strict=True,
        )
    ]


def items_from_h5(path: Path) -> list[Item]:
    with H5Dataset(path) as data:
        return items_of(data)


def items_from_root(root: Path, source: str) -> list[Item]:
    scan = open_source(source, root).scan()
    return [
        Item(s.sample_id, s.subject, s.dataset, s.label, s.intensity, s.sex or "")
        for s in scan.samples
    ]


def bu3dfe_catalogue() -> list[Item]:
    """Every BU-3DFE sample, from its published naming scheme alone (no files needed)."""
    codes = load_label_map().codes["bu3dfe"]
    items = []
    for subject in BU3DFE.subjects:
        for ex, label in sorted(codes.items()):
            levels = (0,) if label == "neutral" else BU3DFE.intensities
            for level in levels:
                items.append(
                    Item(
                        f"bu3dfe:{subject}_{ex}{level:02d}",
                        f"bu3dfe:{subject}",
                        "bu3dfe",
                        label,
                        level,
                        subject[0],
                    )
                )
    return items
