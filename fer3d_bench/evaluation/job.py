"""One fold job: train on its training subjects, test on its test subjects, write result.json.

A job whose result.json already holds its identity is skipped; a diverging fold is recorded as
failed (the others go on); a fold with no training or no test sample fails with that reason.
Its result.json holds the last epoch's predictions and, as `best_test`, those of the first epoch
of the best test accuracy (which one a report uses is the run's `--epoch-selection`, so both are
always recorded). A finished fold also leaves its test samples' embeddings
(`records.embeddings`), written before the result.json that names them; a failed fold leaves
none.
A job holds its fold folder's lock while it works: a second process (another `evaluate` on the
same run folder) gets BUSY back for that fold instead of training it too, or, with `wait`,
waits for the holder and then finds the fold finished (or resumes it, if the holder died).
The job's device is resolved once, here, on the machine that trains it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from fer3d_bench import __version__
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import Fer3dError
from fer3d_bench.evaluation.folder import existing_result
from fer3d_bench.evaluation.plan import FoldJob, Runtime
from fer3d_bench.io import output_folder
from fer3d_bench.metrics import prediction_metrics
from fer3d_bench.processes import FolderBusy, allocated_cpus, describe, folder_lock
from fer3d_bench.records.embeddings import write_embeddings
from fer3d_bench.records.io import read_jsonl
from fer3d_bench.records.provenance import environment, git_commit, now
from fer3d_bench.records.result import FAILED, OK, FoldResult, renamed_history, write_result
from fer3d_bench.splits import read_manifest
from fer3d_bench.train import loop
from fer3d_bench.train.checkpoint import CHECKPOINT, METRICS
from fer3d_bench.train.config import config_from_dict
from fer3d_bench.train.device import resolve
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import training_fold

BUSY = "busy"  # another living process holds the fold's lock
CRASHED = "crashed"  # its cluster job died or raised before writing result.json


@dataclass(frozen=True)
class FoldSummary:
    """What a launcher reports of one finished job."""

    folder: str
    status: str
    reason: str | None
    accuracy: float | None
    skipped: bool  # already done before this call (or, BUSY, left to its holder)
    note: str | None = None  # e.g. whose stale lock this job took over

    def line(self) -> str:
        """One line per finished fold job, for the terminal."""
        note = f"; {self.note}" if self.note else ""
        if self.status == BUSY:
            return f"{self.folder}: {self.reason}{note}"
        if self.status == CRASHED:
            return f"{self.folder}: CRASHED ({self.reason}){note}"
        if self.status != OK:
            return f"{self.folder}: FAILED ({self.reason}){note}"
        done = "already done" if self.skipped else "trained"
        return f"{self.folder}: accuracy {self.accuracy:.3f} ({done}{note})"


def runtime(placement: Placement) -> Runtime:
    """This machine's stack for run.json, with the placement's device: resolved where the jobs
    run here, else as asked (a cluster job resolves its own)."""
    extra = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return Runtime(device=placement.device, environment=environment() | extra)


def run_fold(job: FoldJob, wait: bool = False) -> FoldSummary:
    """Train and test one fold; write its result.json. A diverging fold is recorded as failed.

    A fold another process is working on is BUSY, or, with `wait`, waited for.
    """
    done = existing_result(job.result_path, job.identity)
    if done is not None:
        return summary_of(job, done, skipped=True)
    folder = output_folder(job.run_dir, Path(job.run_dir) / job.folder)  # never a planted link
    try:
        with folder_lock(folder, wait=wait) as lock:
            done = existing_result(job.result_path, job.identity)  # finished while we waited
            if done is not None:
                return summary_of(job, done, skipped=True)
            summary = _train_and_test(job)
    except FolderBusy as busy:
        reason = f"being trained by {describe(busy.holder)}"
        return FoldSummary(job.folder, BUSY, reason, None, skipped=True)
    if lock.stale:
        return replace(summary, note=f"resumed after {describe(lock.stale)} stopped")
    return summary


def _train_and_test(job: FoldJob) -> FoldSummary:
    placement = resolve(job.environment.placement)
    torch.set_num_threads(placement.threads or allocated_cpus())
    folder = Path(job.run_dir) / job.folder
    identity = job.identity
    manifest = read_manifest(Path(job.manifest))
    with H5Dataset(job.dataset) as data:
        if data.fingerprint != identity.dataset_fingerprint:
            raise Fer3dError(f"{job.dataset} changed since the run was planned (fingerprint)")
        train_idx, test_idx = manifest.fold_indices(data, *identity.position)
        truth = {data.sample_ids[i]: data.classes[int(data.labels[i])] for i in test_idx}
        names = list(data.classes)
        empty = [n for n, idx in (("training", train_idx), ("test", test_idx)) if not len(idx)]
        fold = None
        if not empty:
            exclude = job.environment.exclude_flagged
            fold = training_fold(data, train_idx, test_idx, job.classes, exclude)
    started, clock = now(), time.perf_counter()
    result = FoldResult(job=identity, status=OK, classes=job.classes, weights=job.weights)
    if empty:  # too few subjects for this many folds: nothing to train or test on
        result.status, result.reason = FAILED, f"the fold has no {' and no '.join(empty)} samples"
    else:
        config = config_from_dict(identity.training.config, job.result_path)
        try:
            outcome = loop.train(fold, folder, config, placement, job.environment.weights)
            result.history, result.training_left_out = outcome.history, list(fold.left_out)
            result.predictions = _labelled(outcome.predictions, truth, names)
            best = outcome.best_test
            if best is not None:
                result.best_test = {
                    "epoch": best.epoch,
                    "accuracy": best.accuracy,
                    "predictions": _labelled(best.predictions, truth, names),
                }
            result.metrics = prediction_metrics(result.predictions, job.classes)
            result.embeddings = write_embeddings(folder, outcome.embeddings)  # before result.json
        except FloatingPointError as exc:  # diverged: this fold fails, the others go on
            result.status, result.reason = FAILED, f"training diverged: {exc}"
            result.history = [renamed_history(e) for e in read_jsonl(folder / METRICS)]
    result.checkpoint = f"{job.folder}/{CHECKPOINT}"
    result.device = placement.device
    result.extra["speed"] = placement.speed.record()  # speed levers: recorded, not identity
    result.threads = torch.get_num_threads()
    result.seconds = round(time.perf_counter() - clock, 3)
    result.started, result.finished = started, now()
    result.fer3d_bench_version, result.git_commit = __version__, git_commit()[0]
    output_folder(job.run_dir, folder)  # an empty fold never reached the trainer
    write_result(job.result_path, result)
    return summary_of(job, result, skipped=False)


def _labelled(predictions: dict[str, int], truth: dict[str, str], names: list[str]) -> dict:
    """Predicted class indices as result.json holds them: id -> {"true", "pred"} class names."""
    return {sid: {"true": truth[sid], "pred": names[k]} for sid, k in sorted(predictions.items())}


def summary_of(job: FoldJob, result: FoldResult, skipped: bool) -> FoldSummary:
    metrics = result.metrics or {}
    return FoldSummary(job.folder, result.status, result.reason, metrics.get("accuracy"), skipped)
