"""Where render-depth puts its files, and the three statuses a sample can end with.

Used by the renderer that writes the files, by the pictures drawn from them and by the dataset
builder that reads them, so none of them needs another's code to find a file.
"""

from __future__ import annotations

from pathlib import Path

OK, LOW, FAILED = "ok", "low-quality", "failed"
STATUSES = (OK, LOW, FAILED)

ALIGNMENT_CSV = "alignment.csv"  # one row per sample
SUMMARY_JSON = "render.json"  # options, depth convention, counts
OVERLAY_PNG = "overlay.png"  # two samples per class, depth contours on RGB
QA_PNG = "qa_worst.png"  # the worst-aligned samples, with the figure that ranks them


def output_paths(out: Path, sample_id: str) -> dict[str, Path]:
    """One sample's files: <out>/<dataset>/<name>_{rgb,depth}.png and its record <name>.json."""
    dataset, name = sample_id.split(":", 1)
    folder = Path(out) / dataset
    return {
        "rgb": folder / f"{name}_rgb.png",
        "depth": folder / f"{name}_depth.png",
        "record": folder / f"{name}.json",
    }
