"""Build the merged HDF5 file from the datasets' native trees, through render-depth.

The output is byte-reproducible: samples ordered by sample id, no timestamps (track_times off),
a fixed HDF5 format version, fixed-length strings, attributes written in a fixed order. It is
written under a temporary name and renamed only when complete. Every dataset carries a
Fletcher-32 checksum per chunk (`STORAGE`), which HDF5 checks on every read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image

from fer3d_bench import __version__
from fer3d_bench.dataset.flags import flag_counts
from fer3d_bench.dataset.schema import SCHEMA_VERSION, add_to_fingerprint
from fer3d_bench.errors import DatasetNotFoundError, Fer3dError, FileError
from fer3d_bench.io import NoSpace, atomic_path, output_folder, require_space
from fer3d_bench.progress import progress as progress_bar
from fer3d_bench.render.depth import CONVENTION
from fer3d_bench.render.layout import FAILED, output_paths
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.render.run import render_dataset
from fer3d_bench.render.worker import read_record
from fer3d_bench.sources import SampleRecord, load_layout, open_source
from fer3d_bench.taxonomy import CLASSES, class_index, load_label_map

LIBVER = ("v110", "v110")  # a fixed on-disk format: 'latest' would change with the library
STORAGE = {"fletcher32": True, "track_times": False}  # checksummed chunks, no timestamps


@dataclass(frozen=True)
class BuildOptions:
    """How to build: every render-depth option (a render folder made with other options is
    rendered again, never silently reused), worker processes, HDF5 compression."""

    render: RenderOptions = RenderOptions()  # noqa: RUF009  (frozen)
    workers: int = 1
    compression: str | None = None  # None, "gzip" or "lzf": smaller, slower to read
    allow_failures: bool = False

    def as_record(self) -> dict:
        """Flat, as the file's build_parameters record them: every render option beside ours."""
        ours = {k: v for k, v in asdict(self).items() if k != "render"}
        return {**asdict(self.render), **ours}


@dataclass
class BuildReport:
    path: Path
    fingerprint: str
    counts: dict = field(default_factory=dict)  # dataset -> class -> samples
    left_out: dict = field(default_factory=dict)  # dataset -> {"failed": n, "excluded": n}
    failed: list = field(default_factory=list)  # (sample id, reason) of each sample left out
    flags: dict = field(default_factory=dict)  # as dataset.flags.flag_counts: kept but flagged


@dataclass(frozen=True)
class _Entry:
    record: SampleRecord
    root: Path
    row: dict
    rgb: Path
    depth: Path
    sources: dict  # role -> {"path": relative to the dataset root, "sha256": ...}


def build_dataset(
    roots: dict[str, Path],
    out: Path,
    options: BuildOptions = BuildOptions(),
    *,
    render_dir: Path | None = None,
    label_map: Path | None = None,
    layout: Path | None = None,
    progress: bool = True,
) -> BuildReport:
    """Render (or reuse the render of) each dataset and merge them into one HDF5 file.

    The policy on quality: a sample that was read and rendered but aligned worse than its bar
    is kept, with its status and failed checks as columns of their own (a published manifest
    names every sample, so dropping one would break it for everyone); only a sample that could
    not be read or rendered at all stops the build, or with `allow_failures` is left out and
    listed in the report.
    """
    out = Path(out)
    if not roots:
        raise Fer3dError("build-dataset needs at least one dataset root")
    if not out.parent.is_dir():
        raise Fer3dError(f"{out}: output folder {out.parent} does not exist")
    if render_dir:  # the folder given; each dataset's render goes in a folder of its own there
        render_dir = output_folder(render_dir)
    else:
        render_dir = output_folder(out.parent, out.with_name(out.name + ".render"))
    labels = load_label_map(label_map)
    entries: list[_Entry] = []
    left_out: dict[str, dict[str, int]] = {}
    failures: list[tuple[str, str]] = []
    for name, root in sorted(roots.items()):
        source = open_source(name, root, labels, load_layout(layout) if layout else None)
        scan = source.scan()
        if not scan.samples:
            raise DatasetNotFoundError(
                f"{name}: no recognisable samples under {root}; `fer3d-bench scan {root} "
                f"--dataset {name}` lists what is there and why each file was skipped"
            )
        table = render_dataset(
            root,
            name,
            output_folder(render_dir, render_dir / name),
            options.render,
            workers=options.workers,
            layout=layout,
            label_map=label_map,
            progress=progress,
        )
        rows = {row["sample_id"]: _clean(row) for row in table.to_dict("records")}
        failed = [(r["sample_id"], r["reason"]) for r in rows.values() if r["status"] == FAILED]
        if failed and not options.allow_failures:
            listed = "\n  ".join(f"{sample_id}: {reason}" for sample_id, reason in failed[:10])
            more = f"\n  ... and {len(failed) - 10} more" if len(failed) > 10 else ""
            raise Fer3dError(
                f"{name}: {len(failed)} samples could not be read or rendered:\n  {listed}{more}"
                f"\nsee {render_dir / name / 'alignment.csv'}, or pass --allow-failures to "
                "leave them out"
            )
        failures += failed
        left_out[name] = {"failed": len(failed), "excluded": len(scan.excluded)}
        for record in scan.samples:
            row = rows.get(record.sample_id)
            if row is None or row["status"] == FAILED:
                continue
            out_dir = render_dir / name
            paths = output_paths(out_dir, record.sample_id)
            sources = read_record(out_dir, record.sample_id)["sources"]
            entries.append(_Entry(record, Path(root), row, paths["rgb"], paths["depth"], sources))
    _refuse_duplicates(entries)
    entries.sort(key=lambda e: e.record.sample_id)
    parameters = {
        "options": options.as_record(),
        "datasets": sorted(roots),
        "label_map": labels.as_dict(),
    }
    counts = _counts(entries)
    fingerprint = write_h5(out, entries, parameters, counts, options.compression, progress)
    flags = flag_counts((e.record.dataset, e.row["status"], e.row.get("flags")) for e in entries)
    return BuildReport(out, fingerprint, counts, left_out, failures, flags)


def _refuse_duplicates(entries: list[_Entry]) -> None:
    seen: dict[str, Path] = {}
    for entry in entries:
        sample_id = entry.record.sample_id
        if sample_id in seen:
            raise Fer3dError(
                f"two sources yield the sample id {sample_id}: {seen[sample_id]} and {entry.root}"
            )
        seen[sample_id] = entry.root


def _counts(entries: list[_Entry]) -> dict[str, dict[str, int]]:
    frame = pd.DataFrame(
        {"dataset": [e.record.dataset for e in entries], "label": [e.record.label for e in entries]}
    )
    table = pd.crosstab(frame["dataset"], frame["label"]).reindex(columns=list(CLASSES))
    return {d: {c: int(n) for c, n in row.fillna(0).items()} for d, row in table.iterrows()}


def write_h5(
    out: Path,
    entries: list[_Entry],
    parameters: dict,
    counts: dict,
    compression: str | None,
    progress: bool = True,
) -> str:
    """Write the file atomically; returns the content fingerprint (also stored as attribute)."""
    if not entries:
        raise Fer3dError("no samples to write")
    size = np.asarray(Image.open(entries[0].rgb)).shape[0]
    n = len(entries)
    text = _text_columns(entries)
    require_space(out, _upper_bound(n, size, text), "the merged file")
    try:
        return _write_h5(out, entries, parameters, counts, compression, progress, size, text)
    except (OSError, NoSpace) as error:  # HDF5 failed to write (the disk filled after all...)
        raise WriteFailed(out, error) from None


class WriteFailed(FileError):
    """HDF5 failed to write the merged file; its temporary is gone.

    The library cannot be shut down cleanly after that: at exit it writes the file's cached
    chunks again and crashes (a segmentation fault). So the command ends at once after saying
    so (`exit_at_once`, read by the CLI) instead of running the exit handlers.
    """

    exit_at_once = True

    def __init__(self, path: Path, error: OSError | NoSpace):
        if isinstance(error, NoSpace):
            problem = error.problem
        else:
            detail = str(error).split("(", 1)[0].strip()
            problem = f"HDF5 could not write it ({detail}); nothing was kept"
        super().__init__(path, problem)


def _upper_bound(n: int, size: int, text: dict[str, np.ndarray]) -> int:
    """Bytes the merged file may take: its pixels and columns uncompressed (compression only
    makes them smaller, but by how much is unknown until written), 256 bytes a chunk for its
    index and checksum, and 1 MiB for headers and attributes (a 75-sample file at 64 px has
    20 KiB of both in all)."""
    pixels = n * size * size * (3 + 2)  # rgb uint8, depth uint16
    columns = sum(column.nbytes for column in text.values()) + n * (1 + 1 + 4)
    return pixels + columns + 2 * n * 256 + 2**20


def _write_h5(out, entries, parameters, counts, compression, progress, size, text) -> str:
    n = len(entries)
    digest = hashlib.sha256()
    with atomic_path(out) as tmp, h5py.File(tmp, "w", libver=LIBVER) as h5:
        chunked = {"compression": compression, **STORAGE}
        rgb = h5.create_dataset(
            "rgb", (n, size, size, 3), np.uint8, chunks=(1, size, size, 3), **chunked
        )
        depth = h5.create_dataset(
            "depth", (n, size, size), np.uint16, chunks=(1, size, size), **chunked
        )
        labels = np.array([class_index(e.record.label) for e in entries], np.int8)
        bar = progress_bar(entries, desc="build-dataset", unit="sample", enabled=progress)
        for i, entry in enumerate(bar):
            pixels, relief = _load_pair(entry, size)
            rgb[i], depth[i] = pixels, relief
            add_to_fingerprint(digest, entry.record.sample_id, labels[i], pixels, relief)
        _write_columns(h5, entries, labels, text)
        fingerprint = digest.hexdigest()
        attributes = {
            "schema_version": SCHEMA_VERSION,
            "fer3d_bench_version": __version__,
            "classes": json.dumps(list(CLASSES)),
            "depth_convention": json.dumps(CONVENTION, sort_keys=True),
            "build_parameters": json.dumps(parameters, sort_keys=True),
            "counts": json.dumps(counts, sort_keys=True),
            "fingerprint": fingerprint,
        }
        for key, value in attributes.items():
            h5.attrs[key] = value
    return fingerprint


def _load_pair(entry: _Entry, size: int) -> tuple[np.ndarray, np.ndarray]:
    try:  # an OSError here would read as HDF5's (WriteFailed)
        rgb = np.asarray(Image.open(entry.rgb).convert("RGB"))
        depth = np.asarray(Image.open(entry.depth))
    except OSError as error:
        raise FileError(
            entry.rgb.parent, f"{entry.record.sample_id}: cannot read its render ({error})"
        ) from None
    if rgb.shape != (size, size, 3) or depth.shape != (size, size) or depth.dtype != np.uint16:
        raise Fer3dError(
            f"{entry.rgb.parent}: {entry.record.sample_id} was rendered at another size or "
            f"format ({rgb.shape}, {depth.shape} {depth.dtype}); expected {size}x{size}"
        )
    return rgb, depth


def _write_columns(
    h5: h5py.File, entries: list[_Entry], labels: np.ndarray, text: dict[str, np.ndarray]
) -> None:
    """The per-sample columns, chunked as h5py chooses (deterministically) for the checksums."""
    h5.create_dataset("label", data=labels, **STORAGE)
    h5.create_dataset(
        "intensity", data=np.array([e.record.intensity for e in entries], np.int8), **STORAGE
    )
    iou = [_number(e.row.get("iou")) for e in entries]
    h5.create_dataset("iou", data=np.array(iou, np.float32), **STORAGE)
    for name, column in text.items():
        h5.create_dataset(name, data=column, **STORAGE)


def _text_columns(entries: list[_Entry]) -> dict[str, np.ndarray]:
    """The text columns, fixed-length UTF-8 as wide as their longest value."""
    text = {
        "sample_id": [e.record.sample_id for e in entries],
        "dataset": [e.record.dataset for e in entries],
        "subject": [e.record.subject for e in entries],
        "code": [e.record.code for e in entries],
        "sex": [e.record.sex or "" for e in entries],
        "status": [e.row["status"] for e in entries],
        "flags": [e.row.get("flags") or "" for e in entries],
        "alignment": [json.dumps(e.row, sort_keys=True) for e in entries],
        "sources": [json.dumps(e.sources, sort_keys=True) for e in entries],
    }
    columns = {}
    for name, values in text.items():
        encoded = [v.encode("utf-8") for v in values]
        width = max(1, max(len(v) for v in encoded))
        dtype = h5py.string_dtype("utf-8", length=width)
        columns[name] = np.array(encoded, dtype=dtype)
    return columns


def _clean(row: dict) -> dict:
    """JSON-safe alignment row: NaN and infinities (and the empty cells of columns other
    datasets fill) become null."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}


def _number(value) -> float:
    return np.nan if value is None else float(value)
