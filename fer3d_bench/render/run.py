"""`render-depth` over a whole dataset: process pool, resumable outputs, alignment report."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from fer3d_bench import __version__
from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import atomic_path
from fer3d_bench.render import align
from fer3d_bench.render.crop import crop_pair, face_crop_box
from fer3d_bench.render.depth import CONVENTION, encode_depth
from fer3d_bench.sources import SampleRecord, Source, open_source
from fer3d_bench.taxonomy import CLASSES

OK, LOW, FAILED = "ok", "low-quality", "failed"
_FRONT = ("sample_id", "dataset", "label", "status", "reason", "method")  # then the rest, sorted


@dataclass(frozen=True)
class RenderOptions:
    size: int = 260
    margin: float = 0.1
    backend: str = "pyrender"
    fit_rotation: bool = False
    min_iou: float = 0.95
    landmark_tolerance_px: float = 3.0


@dataclass(frozen=True)
class _Job:
    dataset: str
    root: Path
    layout: Path | None
    label_map: Path | None


def output_paths(out: Path, sample_id: str) -> dict[str, Path]:
    """Where one sample's files go: <out>/<dataset>/<name>_{rgb,depth}.png and its record."""
    dataset, name = sample_id.split(":", 1)
    folder = out / dataset
    return {
        "rgb": folder / f"{name}_rgb.png",
        "depth": folder / f"{name}_depth.png",
        "record": folder / f"{name}.json",
    }


def render_dataset(
    root: Path,
    dataset: str,
    out: Path,
    options: RenderOptions = RenderOptions(),
    *,
    workers: int = 1,
    layout: Path | None = None,
    label_map: Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Render every sample of one dataset into `out`; returns the alignment table."""
    job = _Job(dataset, Path(root), layout, label_map)
    _claim(out, dataset)
    source = _open(job)
    scan = source.scan()
    rows = [_failed_row(sample_id, reason) for sample_id, reason in scan.incomplete]
    todo = []
    for record in scan.samples:
        done = _done_row(out, record, options)
        if done is None:
            todo.append(record)
        else:
            rows.append(done)
    bar = tqdm(total=len(todo), desc=f"render-depth {dataset}", unit="sample", disable=not progress)
    with bar:
        for row in _run(job, todo, out, options, workers):
            rows.append(row)
            bar.update()
    table = pd.DataFrame(rows).sort_values("sample_id", kind="stable").reset_index(drop=True)
    front = [c for c in _FRONT if c in table]
    table = table[front + sorted(c for c in table if c not in front)]
    _write_reports(out, table, options, dataset, root)
    return table


def _claim(out: Path, dataset: str) -> None:
    """One output folder per dataset: its reports would otherwise overwrite each other."""
    if not out.parent.is_dir():
        raise Fer3dError(f"{out}: its parent folder {out.parent} does not exist")
    summary = out / "render.json"
    if summary.is_file():
        earlier = json.loads(summary.read_text()).get("dataset")
        if earlier != dataset:
            raise Fer3dError(
                f"{out} already holds a render of {earlier}; use one output folder per dataset"
            )
    out.mkdir(exist_ok=True)


def _run(job: _Job, todo: list[SampleRecord], out: Path, options, workers: int) -> Iterator[dict]:
    if workers <= 1 or len(todo) <= 1:
        worker = _Worker(job, options)
        try:
            yield from (worker.process(record, out) for record in todo)
        finally:
            worker.close()
        return
    chunks = max(1, min(16, len(todo) // (4 * workers)))
    # spawn, not fork: a forked child inherits OpenGL and open3d thread state and can hang
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(job, options)
    ) as pool:
        yield from pool.map(_process_in_worker, todo, [out] * len(todo), chunksize=chunks)


_worker: _Worker | None = None  # one per worker process, holding its renderer


def _start_worker(job: _Job, options: RenderOptions) -> None:
    global _worker
    _worker = _Worker(job, options)


def _process_in_worker(record: SampleRecord, out: Path) -> dict:
    return _worker.process(record, out)


def _open(job: _Job) -> Source:
    from fer3d_bench.sources import load_layout
    from fer3d_bench.taxonomy import load_label_map

    layout = load_layout(job.layout) if job.layout else None
    return open_source(job.dataset, job.root, load_label_map(job.label_map), layout)


class _Worker:
    """Loads, aligns, crops and writes samples; the renderer is made once per image size."""

    def __init__(self, job: _Job, options: RenderOptions):
        self.source = _open(job)
        self.options = options
        self.renderers = {}

    def renderer(self, width: int, height: int):
        from fer3d_bench.render.backends import make_renderer

        key = (width, height)
        if key not in self.renderers:
            self.renderers[key] = make_renderer(self.options.backend, width, height)
        return self.renderers[key]

    def close(self) -> None:
        for renderer in self.renderers.values():
            renderer.close()

    def process(self, record: SampleRecord, out: Path) -> dict:
        try:
            aligned = self.align(record)
            if not np.isfinite(aligned.z).any():
                raise align.AlignmentError("no face pixel lands inside the image")
        except (Fer3dError, ValueError) as exc:  # bad files, empty meshes, impossible fits
            row = {**_failed_row(record.sample_id, str(exc)), "label": record.label}
            _write_record(out, record.sample_id, row, self.options, {})
            return row
        return _write_sample(out, record, aligned, self.options)

    def align(self, record: SampleRecord) -> align.Aligned:
        scan = self.source.load(record)
        opts = self.options
        if self.source.name == "bu3dfe":
            height, width = scan.photo.shape[:2]
            renderer = self.renderer(width, height)
            return align.align_bu3dfe(scan, renderer, opts.fit_rotation, opts.min_iou)
        if self.source.name == "bosphorus":
            return align.align_bosphorus(scan, opts.landmark_tolerance_px)
        return align.align_rgbd(scan)


def crop_and_encode(aligned: align.Aligned, options: RenderOptions):
    """The published pair: square RGB crop and 16-bit depth in the one convention."""
    box = face_crop_box(np.isfinite(aligned.z), options.margin)
    rgb, z = crop_pair(aligned.rgb, aligned.z, box, options.size)
    return rgb, encode_depth(z), box


def write_png(path: Path, image: np.ndarray) -> None:
    """Lossless PNG, written atomically; fast compression, since the HDF5 is what gets read."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG", compress_level=1)


def _write_sample(out: Path, record: SampleRecord, aligned: align.Aligned, options) -> dict:
    rgb, depth, box = crop_and_encode(aligned, options)
    paths = output_paths(out, record.sample_id)
    paths["rgb"].parent.mkdir(parents=True, exist_ok=True)
    write_png(paths["rgb"], rgb)
    write_png(paths["depth"], depth)
    row = {
        "sample_id": record.sample_id,
        "dataset": record.dataset,
        "label": record.label,
        "method": aligned.method,
        "status": LOW if aligned.problems else OK,
        "reason": "; ".join(aligned.problems),
        **{k: _plain(v) for k, v in aligned.quality.items()},
        "crop_x0": box.x0,
        "crop_y0": box.y0,
        "crop_side": box.side,
        "face_fraction": float((depth > 0).mean()),
    }
    hashes = {key: _sha256(paths[key]) for key in ("rgb", "depth")}
    _write_record(out, record.sample_id, row, options, hashes)
    return row


def _write_record(out: Path, sample_id: str, row: dict, options, hashes: dict) -> None:
    """The sample's record is written last: its presence with matching hashes means 'done'."""
    path = output_paths(out, sample_id)["record"]
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"row": row, "options": asdict(options), "version": __version__, "files": hashes}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))


def _done_row(out: Path, record: SampleRecord, options: RenderOptions) -> dict | None:
    """The earlier row, if rendered with the same options and its files are intact."""
    paths = output_paths(out, record.sample_id)
    try:
        saved = json.loads(paths["record"].read_text())
    except (OSError, ValueError):
        return None
    if saved.get("options") != asdict(options) or saved.get("row", {}).get("status") == FAILED:
        return None
    for key in ("rgb", "depth"):
        if not paths[key].is_file() or _sha256(paths[key]) != saved.get("files", {}).get(key):
            return None
    return saved["row"]


def _failed_row(sample_id: str, reason: str) -> dict:
    return {"sample_id": sample_id, "method": "", "status": FAILED, "reason": reason}


def _write_reports(out: Path, table: pd.DataFrame, options, dataset: str, root: Path) -> None:
    with atomic_path(out / "alignment.csv") as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    summary = {
        "fer3d_bench_version": __version__,
        "dataset": dataset,
        "options": asdict(options),
        "depth_convention": CONVENTION,
        "classes": list(CLASSES),
        "counts": {k: int(v) for k, v in table["status"].value_counts().sort_index().items()},
    }
    with atomic_path(out / "render.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1, sort_keys=True))
    if (table["status"] != FAILED).any():
        from fer3d_bench.render.overlay import contact_sheet

        contact_sheet(out, table, out / "overlay.png")


def _plain(value):
    return float(value) if isinstance(value, np.floating | float) else value


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summarise(table: pd.DataFrame, out: Path) -> tuple[str, int]:
    """A few lines for the terminal, and how many samples are not 'ok'."""
    counts = table["status"].value_counts()
    lines = [
        f"{len(table)} samples: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in (OK, LOW, FAILED)),
    ]
    if "iou" in table and table["iou"].notna().any():
        iou = table["iou"].dropna()
        lines.append(f"silhouette IoU: min {iou.min():.4f}, median {iou.median():.4f}")
    if "landmark_px_max" in table and table["landmark_px_max"].notna().any():
        lines.append(f"landmark offset: max {table['landmark_px_max'].max():.3f} px")
    for _, row in table[table["status"] != OK].iterrows():
        lines.append(f"  {row['status']}: {row['sample_id']}: {row['reason']}")
    lines.append(f"written to {out} (alignment.csv, overlay.png, render.json)")
    return "\n".join(lines), int((table["status"] != OK).sum())
