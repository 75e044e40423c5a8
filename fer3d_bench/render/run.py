"""`render-depth` over a whole dataset: process pool, resumable outputs, alignment report."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from fer3d_bench import __version__
from fer3d_bench.errors import Fer3dError, FileError
from fer3d_bench.io import atomic_path, output_folder
from fer3d_bench.progress import progress as progress_bar
from fer3d_bench.records.io import Fields, RecordError, RecordNotFound, json_text, read_json
from fer3d_bench.render.depth import CONVENTION
from fer3d_bench.render.layout import (
    ALIGNMENT_CSV,
    FAILED,
    LOW,
    OK,
    OVERLAY_PNG,
    QA_PNG,
    SUMMARY_JSON,
    output_paths,
)
from fer3d_bench.render.options import RenderOptions
from fer3d_bench.render.overlay import contact_sheet, landmark_marks, qa_sheet
from fer3d_bench.render.worker import (
    MAX_RECORD_BYTES,
    Job,
    Worker,
    failed_row,
    open_job,
    process_in_worker,
    read_record,
    sha256_file,
    source_hashes,
    start_worker,
    worker_ready,
)
from fer3d_bench.sources import SampleRecord, ScanResult, Source
from fer3d_bench.taxonomy import CLASSES
from fer3d_bench.workers import RENDER_WORKER_BYTES, cap_workers

_FRONT = ("sample_id", "dataset", "label", "status", "flags", "reason", "method")


def render_dataset(
    root: Path,
    dataset: str,
    out: Path,
    options: RenderOptions = RenderOptions(),  # noqa: B008  (frozen: a shared default is safe)
    *,
    workers: int = 1,
    layout: Path | None = None,
    label_map: Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Render every sample of one dataset into `out`; returns the alignment table.

    A sample rendered before is reused only when its raw files (sha256), the options, the
    fer3d-bench version and its output files are all unchanged. What the scan could not read
    (a folder it cannot list, a link it does not follow) is a failed row of its own: its
    samples are missing. `workers` is capped by the CPUs and memory available (`workers.py`).
    """
    job = Job(dataset, Path(root), layout, label_map)
    _claim(out, dataset)
    source = open_job(job)
    scan = source.scan()
    rows = [failed_row(sample_id, reason) for sample_id, reason in scan.incomplete]
    rows += _unreadable_rows(scan, dataset)
    for folder in sorted({output_paths(out, s.sample_id)["rgb"].parent for s in scan.samples}):
        output_folder(out, folder)  # a link planted in place of <out>/<dataset> is refused here
    todo = []
    for record in scan.samples:
        done = _done_row(out, job.root, record, options)
        if done is None:
            todo.append(record)
        else:
            rows.append(done)
    workers, _ = cap_workers(workers, RENDER_WORKER_BYTES)  # the command line says so
    reused = len(scan.samples) - len(todo)
    desc = f"render-depth {dataset}" + (f" ({reused} samples reused)" if reused else "")
    total = len(todo) + reused  # "40/40" when everything is reused, never "0sample"
    with progress_bar(
        total=total, initial=reused, desc=desc, unit="sample", enabled=progress
    ) as bar:
        for row in _run(job, todo, out, options, workers):
            rows.append(row)
            bar.update()
    table = pd.DataFrame(rows).sort_values("sample_id", kind="stable").reset_index(drop=True)
    front = [c for c in _FRONT if c in table]
    table = table[front + sorted(c for c in table if c not in front)]
    _write_reports(out, table, options, dataset, _landmark_marks(source, scan, options.size))
    return table


def _unreadable_rows(scan: ScanResult, dataset: str) -> list[dict]:
    """A failed row for each folder or file below the root that the scan could not read, named
    `<dataset>:<its path below the root>` (`bu3dfe:F0002`: a folder's name, never a scan's
    sample id), with its full path and why."""
    rows = []
    for lost in scan.unreadable:
        below = os.path.relpath(lost.path, scan.root)
        rows.append(failed_row(f"{dataset}:{below}", f"{lost.path}: {lost.reason}"))
    return rows


def _claim(out: Path, dataset: str) -> None:
    """One output folder per dataset: its reports would otherwise overwrite each other."""
    if not out.parent.is_dir():
        raise Fer3dError(f"{out}: its parent folder {out.parent} does not exist")
    summary = out / SUMMARY_JSON
    try:
        earlier = Fields(
            summary, read_json(summary, what="render summary", max_bytes=MAX_RECORD_BYTES)
        ).string("dataset")
    except RecordNotFound:
        earlier = dataset  # nothing rendered here yet
    except RecordError as error:
        raise FileError(
            summary, f"{error.problem}; it says which dataset {out} holds: remove it to go on"
        ) from None
    if earlier != dataset:
        raise Fer3dError(
            f"{out} already holds a render of {earlier}; use one output folder per dataset"
        )
    output_folder(out)


def _run(job: Job, todo: list[SampleRecord], out: Path, options, workers: int) -> Iterator[dict]:
    """The rows of the samples in `todo`, rendered in this process and, with `workers` > 1, in
    workers - 1 spawned processes beside it; this one renders while they start up (seconds)."""
    local = Worker(job, options)
    try:
        if workers <= 1 or len(todo) <= 1:
            yield from (local.process(record, out) for record in todo)
        else:
            yield from _shared(local, job, todo, out, options, workers - 1)
    finally:
        local.close()


def _shared(local: Worker, job: Job, todo, out: Path, options, helpers: int) -> Iterator[dict]:
    """Spawned helpers take samples only once they have started (which takes seconds), then
    one at a time and at most two ahead each, so none waits idle while another holds a queue;
    this process renders whatever is left meanwhile. A short queue is done here alone."""
    queue = deque(todo)
    # spawn, not fork: a forked child inherits OpenGL and open3d thread state and can hang
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        helpers, mp_context=context, initializer=start_worker, initargs=(job, options)
    )
    try:
        starting = {pool.submit(worker_ready) for _ in range(helpers)}
        ready, running = 0, set()
        while queue or running:
            ready += sum(1 for future in starting if future.done())
            starting = {future for future in starting if not future.done()}
            while queue and len(running) < 2 * ready:
                running.add(pool.submit(process_in_worker, queue.popleft(), out))
            if queue:
                yield local.process(queue.popleft(), out)
                done = {future for future in running if future.done()}
            else:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
            running -= done
            yield from (future.result() for future in done)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    # every result is in: let the helpers tear down (a second or more) while this one goes on
    pool.shutdown(wait=False, cancel_futures=True)


def _done_row(out: Path, root: Path, record: SampleRecord, options) -> dict | None:
    """The earlier row, if rendered from the same raw files with the same options, version and
    label, and its output files are intact."""
    paths = output_paths(out, record.sample_id)
    try:
        saved = read_record(out, record.sample_id)
    except Fer3dError:  # none yet, or damaged: render it
        return None
    same = (
        saved["options"] == asdict(options)
        and saved["version"] == __version__
        and saved["row"]["status"] != FAILED
        and saved["row"].get("label") == record.label
    )
    if not same:
        return None
    for key in ("rgb", "depth"):
        if not paths[key].is_file() or sha256_file(paths[key]) != saved["files"].get(key):
            return None
    try:
        unchanged = saved["sources"] == source_hashes(root, record)
    except OSError:  # a raw file vanished or cannot be read: render it again, and fail there
        return None
    return saved["row"] if unchanged else None


def _landmark_marks(source: Source, scan: ScanResult, size: int):
    """row -> the .lm2 points and .lm3 vertices the QA sheet draws (Bosphorus; {} elsewhere),
    read again from the raw files of the few samples the sheet shows."""
    records = {r.sample_id: r for r in scan.samples}

    def marks(row) -> dict:
        record = records.get(row["sample_id"])
        if record is None or pd.isna(row.get("landmark_px_median")):
            return {}
        try:
            return landmark_marks(source.load(record), row, size)
        except (Fer3dError, ValueError, OSError):  # drawn without; the row says what failed
            return {}

    return marks


def _write_reports(out: Path, table: pd.DataFrame, options, dataset: str, marks=None) -> None:
    with atomic_path(out / ALIGNMENT_CSV) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    summary = {
        "fer3d_bench_version": __version__,
        "dataset": dataset,
        "options": asdict(options),
        "depth_convention": CONVENTION,
        "classes": list(CLASSES),
        "counts": {k: int(v) for k, v in table["status"].value_counts().sort_index().items()},
    }
    with atomic_path(out / SUMMARY_JSON) as tmp:
        tmp.write_text(json_text(summary))
    rendered = table[table["status"] != FAILED]
    for picture in (out / OVERLAY_PNG, out / QA_PNG):
        picture.unlink(missing_ok=True)  # never leave a picture of an earlier run
    if len(rendered):
        contact_sheet(out, rendered, out / OVERLAY_PNG)
        qa_sheet(out, rendered, out / QA_PNG, marks=marks)


def summarise(table: pd.DataFrame, out: Path) -> tuple[str, int, int]:
    """A few lines for the terminal, and how many samples failed and how many were flagged."""
    counts = table["status"].value_counts()
    lines = [
        f"{len(table)} samples: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in (OK, LOW, FAILED)),
    ]
    if "iou" in table and table["iou"].notna().any():
        iou = table["iou"].dropna()
        lines.append(f"silhouette IoU: min {iou.min():.4f}, median {iou.median():.4f}")
    if "landmark_px_median" in table and table["landmark_px_median"].notna().any():
        gaps = table["landmark_px_median"].dropna()
        lines.append(
            f".lm2 gap (median per scan): median {gaps.median():.2f} px, max {gaps.max():.2f} px"
            f" (largest single gap {table['landmark_px_max'].max():.2f} px)"
        )
    for _, row in table[table["status"] != OK].iterrows():
        lines.append(f"  {row['status']}: {row['sample_id']}: {row['reason']}")
    pictures = [name for name in (OVERLAY_PNG, QA_PNG) if (out / name).exists()]
    written = ", ".join([ALIGNMENT_CSV, *pictures, SUMMARY_JSON])
    lines.append(f"written to {out} ({written})")
    return "\n".join(lines), int(counts.get(FAILED, 0)), int(counts.get(LOW, 0))
