"""What a merged file holds: its schema, a dataset x class table, and two pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from fer3d_bench.dataset.flags import describe_flags, flag_counts
from fer3d_bench.dataset.reader import H5Dataset
from fer3d_bench.plots import save_figure
from fer3d_bench.render.depth import decode_depth
from fer3d_bench.render.overlay import QA_COUNT, Panel, draw_panels, qa_title, ranks, worst_first


def describe(path: Path) -> str:
    """Schema (datasets, shapes, types, attributes) and counts per dataset and class.

    Everything comes through the reader, so that a file that is not a merged file, is truncated
    or damaged, or does not hold what its schema says, is one named error."""
    with H5Dataset(path) as data:
        frame = pd.DataFrame(
            {"dataset": data.datasets, "class": [data.classes[i] for i in data.labels]}
        )
        table = pd.crosstab(frame["dataset"], frame["class"], margins=True, margins_name="total")
        table = table.reindex(columns=[*data.classes, "total"], fill_value=0)
        flags = flag_counts(zip(data.datasets, data.statuses, data.flags, strict=True))
        checksums = "Fletcher-32 per chunk" if data.checksums else "none (schema before 1.2.0)"
        made_by = data.attribute("fer3d_bench_version")
        storage = data.storage()
        for name in data.column_names:  # each checked as read: a bad one stops us before any
            data.column(name)  # picture is written, not halfway through them
    lines = [f"{path}"]
    lines.append(f"  schema_version: {data.schema_version}")
    lines.append(f"  fer3d_bench_version: {'(not recorded)' if made_by is None else made_by}")
    lines.append(f"  fingerprint: {data.fingerprint}")
    lines.append(f"  checksums: {checksums}; `fer3d-bench verify` checks every sample")
    lines.append(f"  classes: {', '.join(data.classes)}")
    lines.append("  datasets:")
    for item in storage:
        chunks = f", chunks {item.chunks}" if item.chunks else ""
        compression = f", {item.compression}" if item.compression else ""
        checksum = ", fletcher32" if item.fletcher32 else ""
        lines.append(
            f"    /{item.name:<10} {item.shape} {item.dtype}{chunks}{compression}{checksum}"
        )
    lines += ["", "Samples per dataset and class:"]
    lines += [f"  {line}" for line in table.to_string().splitlines()]
    lines += ["", "Alignment (flagged samples are kept; see the QA sheets):"]
    lines += [f"  {line}" for line in describe_flags(flags)]
    return "\n".join(lines)


def qa_sheets(path: Path, folder: Path, count: int = QA_COUNT) -> list[Path]:
    """Per dataset whose alignment figure ranks anything (`overlay.ranks`: CalD3r & MenD3s,
    aligned by their capture, do not), the `count` worst-aligned samples with the figure that
    ranks each: `<name>_qa_<dataset>.png`."""
    written = []
    with H5Dataset(path) as data:
        rows = pd.DataFrame(data.column("alignment"))
        rows["sample_id"], rows["status"] = data.sample_ids, data.statuses
        for name in sorted(set(data.datasets)):
            subset = rows[data.datasets == name]
            if not ranks(subset):
                continue
            worst = worst_first(subset).head(count)
            panels = []
            for index, row in worst.iterrows():
                sample = data[int(index)]
                panels.append(Panel(sample.rgb, sample.depth, qa_title(row)))
            flagged = int((subset["status"] != "ok").sum())
            heading = f"{name}: {len(panels)} worst-aligned of {len(subset)} ({flagged} flagged)"
            target = folder / f"{path.stem}_qa_{name}.png"
            written.append(draw_panels(panels, target, heading=heading))
    return written


def contact_sheet(path: Path, target: Path, per_class: int = 2) -> Path:
    """RGB and depth side by side for the first `per_class` samples of each class and dataset."""
    with H5Dataset(path) as data:
        picks = [
            (name, index)
            for name in sorted(set(data.datasets))
            for label in range(len(data.classes))
            for index in data.indices(dataset=name, label=label)[:per_class]
        ]
        rows = int(np.ceil(len(picks) / 4))
        fig = Figure(figsize=(16, 2.2 * rows))
        axes = fig.subplots(rows, 8, squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for k, (name, index) in enumerate(picks):
            sample = data[index]
            left, right = axes[k // 4, 2 * (k % 4)], axes[k // 4, 2 * (k % 4) + 1]
            left.imshow(sample.rgb)
            # mm behind the image's nearest face point (the depth convention), nearer brighter
            shown = right.imshow(decode_depth(sample.depth), cmap="gray_r")
            bar = fig.colorbar(shown, ax=right, fraction=0.046, pad=0.02)
            bar.ax.tick_params(labelsize=5)
            bar.set_label("mm behind", fontsize=5)
            left.set_title(f"{name}: {data.classes[sample.label]}", fontsize=7)
            right.set_title(sample.sample_id.split(":", 1)[1], fontsize=6)
    return save_figure(fig, target)


def class_chart(path: Path, target: Path) -> Path:
    """Class distribution, one bar chart per dataset (as the paper's Fig. 3)."""
    with H5Dataset(path) as data:
        names = sorted(set(data.datasets))
        fig = Figure(figsize=(4.5 * len(names), 3.4))
        axes = fig.subplots(1, len(names), squeeze=False)
        for ax, name in zip(axes[0], names, strict=True):
            counts = np.bincount(data.labels[data.datasets == name], minlength=len(data.classes))
            bars = ax.bar(range(len(data.classes)), counts, color="#4c72b0")
            ax.bar_label(bars, fontsize=7)
            ax.set_xticks(range(len(data.classes)), data.classes, rotation=45, ha="right")
            ax.set_title(f"{name} ({counts.sum()} samples)")
            ax.set_ylabel("samples")
    return save_figure(fig, target)
