"""One sample of render-depth: load, align, crop, write, record; in whatever process runs it.

Kept apart from the orchestration in `run.py` so that a worker process imports only what a
sample needs (no pandas, matplotlib or tqdm): each spawned worker starts seconds sooner.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from fer3d_bench import __version__
from fer3d_bench.errors import Fer3dError
from fer3d_bench.formats.images import png_bytes
from fer3d_bench.io import atomic_path, output_folder
from fer3d_bench.processes import exit_with_parent
from fer3d_bench.records.io import Fields, dict_of, is_str, json_text, read_json
from fer3d_bench.render import align
from fer3d_bench.render.backends import load_backend, make_renderer
from fer3d_bench.render.crop import crop_pair, face_crop_box
from fer3d_bench.render.depth import encode_depth
from fer3d_bench.render.layout import FAILED, LOW, OK, STATUSES, output_paths
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.sources import SampleRecord, Source, load_layout, open_source
from fer3d_bench.taxonomy import load_label_map

# a record is a few kilobytes: its row, options and a dozen hashes
MAX_RECORD_BYTES = 2**20


@dataclass(frozen=True)
class Job:
    dataset: str
    root: Path
    layout: Path | None
    label_map: Path | None


_worker: Worker | None = None  # one per worker process, holding its renderers


def start_worker(job: Job, options: RenderOptions) -> None:
    """A worker process's initializer: its Worker, with the renderer's libraries loaded.

    The worker ends when the command that started it does, even if it was killed.
    """
    global _worker
    exit_with_parent()
    one_thread_each()
    _worker = Worker(job, options, own_process=True)
    load_backend(options.backend, before_torch=False)


def one_thread_each() -> None:
    """This process computes on one core: render-depth's parallelism is its processes, one a
    core, and thread pools of their own in each (llvmpipe's rasteriser threads, one a CPU by
    default; BLAS) would only compete with the other processes for the same cores. llvmpipe
    reads LP_NUM_THREADS when the first renderer is made (0: draw in the calling thread); a
    value the user set is kept."""
    os.environ.setdefault("LP_NUM_THREADS", "0")
    threadpool_limits(1)


def worker_ready() -> bool:
    """Returns once the process that runs it has started (its initializer has run)."""
    return _worker is not None


def process_in_worker(record: SampleRecord, out: Path) -> dict:
    return _worker.process(record, out)


def open_job(job: Job) -> Source:
    layout = load_layout(job.layout) if job.layout else None
    return open_source(job.dataset, job.root, load_label_map(job.label_map), layout)


# Renderers are closed and made again after this many samples: an OSMesa context keeps about
# 0.6 MiB of every BU-3DFE scan it renders (benchmarks/scale_bench.py, 2 workers: the largest
# render process took 752 MiB for a folder of 625 scans and 1.8 GiB for 2,500; with a new
# renderer every 50 samples, 462 and 495 MiB), and a new one costs a few milliseconds
RECYCLE_RENDERERS = 50


class Worker:
    """Loads, aligns, crops and writes samples; a renderer is made once per image size.

    A worker in a process of its own never trains, so its renderer need not load triton first
    (see backends._import_pyrender): that saves each worker a second of start-up.
    """

    def __init__(self, job: Job, options: RenderOptions, own_process: bool = False):
        self.job = job
        self.source = open_job(job)
        self.options = options
        self.renderers = {}
        self.shares_process_with_torch = not own_process
        self.processed = 0

    def renderer(self, width: int, height: int):
        key = (width, height)
        if key not in self.renderers:
            self.renderers[key] = make_renderer(
                self.options.backend, width, height, before_torch=self.shares_process_with_torch
            )
        return self.renderers[key]

    def close(self) -> None:
        for renderer in self.renderers.values():
            renderer.close()
        self.renderers = {}

    def process(self, record: SampleRecord, out: Path) -> dict:
        self.processed += 1
        if self.processed % RECYCLE_RENDERERS == 0:
            self.close()  # made again at their next use (see RECYCLE_RENDERERS)
        sources: dict = {}
        try:
            sources = source_hashes(self.job.root, record)
            aligned = self.align(record)
            if not np.isfinite(aligned.z).any():
                raise align.AlignmentError("no face pixel lands inside the image")
        except (Fer3dError, ValueError, OSError) as exc:  # bad files, empty meshes, bad fits
            reason = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)
            row = {**failed_row(record.sample_id, reason), "label": record.label}
            _write_record(out, record.sample_id, row, self.options, {}, sources)
            return row
        return _write_sample(out, record, aligned, self.options, sources)

    def align(self, record: SampleRecord) -> align.Aligned:
        scan = self.source.load(record)
        opts = self.options
        if self.source.name == "bu3dfe":
            return align.align_bu3dfe(scan, self.renderer, opts.fit_rotation, opts.min_iou)
        if self.source.name == "bosphorus":
            return align.align_bosphorus(scan, opts.landmark_allowance_px)
        return align.align_rgbd(scan)


def crop_and_encode(aligned: align.Aligned, options: RenderOptions):
    """The published pair: square RGB crop and 16-bit depth in the one convention."""
    box = face_crop_box(np.isfinite(aligned.z), options.margin)
    rgb, z = crop_pair(aligned.rgb, aligned.z, box, options.size)
    return rgb, encode_depth(z), box


def write_png(path: Path, image: np.ndarray) -> str:
    """Lossless PNG, written atomically; fast compression, since the HDF5 is what gets read.
    Returns the file's sha256, from the bytes written (no second read)."""
    data = png_bytes(image)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def quality_columns(aligned: align.Aligned) -> dict:
    """Status, the checks that failed and why, and the figure that ranks the sample for QA."""
    failed = aligned.failed
    worst = aligned.worst()
    return {
        "status": LOW if failed else OK,
        "flags": ";".join(c.name for c in failed),
        "reason": "; ".join(c.message for c in failed),
        "qa_ratio": worst.ratio if worst else np.nan,
        "qa_figure": worst.figure if worst else "",
    }


def _write_sample(out: Path, record: SampleRecord, aligned, options, sources: dict) -> dict:
    rgb, depth, box = crop_and_encode(aligned, options)
    paths = output_paths(out, record.sample_id)
    output_folder(out, paths["rgb"].parent)
    hashes = {"rgb": write_png(paths["rgb"], rgb), "depth": write_png(paths["depth"], depth)}
    row = {
        "sample_id": record.sample_id,
        "dataset": record.dataset,
        "label": record.label,
        "method": aligned.method,
        **quality_columns(aligned),
        **{k: _plain(v) for k, v in aligned.quality.items()},
        "crop_x0": box.x0,
        "crop_y0": box.y0,
        "crop_side": box.side,
        "face_fraction": float((depth > 0).mean()),
    }
    _write_record(out, record.sample_id, row, options, hashes, sources)
    return row


def source_hashes(root: Path, record: SampleRecord) -> dict:
    """Every raw file of a sample: its path relative to the dataset root and its sha256."""
    return {
        role: {"path": path.relative_to(root).as_posix(), "sha256": sha256_file(path)}
        for role, path in sorted(record.files.items())
    }


def _write_record(out: Path, sample_id, row: dict, options, hashes: dict, sources: dict) -> None:
    """The sample's record is written last: its presence with matching hashes means 'done'."""
    path = output_paths(out, sample_id)["record"]
    output_folder(out, path.parent)  # never a planted link to elsewhere
    record = {
        "row": row,
        "options": asdict(options),
        "version": __version__,
        "files": hashes,
        "sources": sources,
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json_text(record))


def read_record(out: Path, sample_id: str) -> dict:
    """A rendered sample's record: its alignment row, options, output and raw-file hashes.

    Every field is checked where it is read (a RecordError names the file and the field): a
    record edited, truncated or copied from another sample means "render it again", never a
    row of the wrong sample, or a value of the wrong kind, in the merged file.
    """
    path = output_paths(out, sample_id)["record"]
    fields = Fields(path, read_json(path, what="render record", max_bytes=MAX_RECORD_BYTES))
    row = Fields(path, fields.object("row"), "row")
    row.string("sample_id", choices=(sample_id,))
    row.string("status", choices=STATUSES)
    for key in row.data:
        row.get(key, _is_cell, "a string, number, true, false or null")
    fields.object("options")
    fields.string("version")
    fields.get("files", dict_of(is_str), "an object of sha256 strings")
    for role in fields.object("sources"):
        source = Fields(path, fields.data["sources"][role], f"sources.{role}")
        source.string("path")
        source.string("sha256")
    return fields.data


def _is_cell(value: object) -> bool:
    """A value of one cell of the alignment table."""
    return value is None or isinstance(value, str | int | float)  # bool is an int


def failed_row(sample_id: str, reason: str) -> dict:
    return {"sample_id": sample_id, "method": "", "status": FAILED, "reason": reason}


def _plain(value):
    return float(value) if isinstance(value, np.floating | float) else value


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
