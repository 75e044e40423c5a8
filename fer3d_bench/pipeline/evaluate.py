"""Training and evaluation composed once: one fold of a manifest (`train`), and a whole run
(`evaluate`: plan + launch + report), both through the same fold job."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.evaluation.job import CRASHED, FoldSummary, run_fold, runtime
from fer3d_bench.evaluation.launchers import LAUNCHERS, Launch, Launcher
from fer3d_bench.evaluation.plan import (
    EvalSpec,
    FoldJob,
    Plan,
    job_identity,
    plan,
    weights_identity,
)
from fer3d_bench.manifests import CheckedManifest
from fer3d_bench.processes import LOCK_FILE, folder_lock
from fer3d_bench.records.result import FoldResult, read_result
from fer3d_bench.report import ReportPaths, write_report
from fer3d_bench.train.config import FULL, protocol_train, variant_configs
from fer3d_bench.train.environment import TrainingEnvironment
from fer3d_bench.weights.known import weights_record

Echo = Callable[[str], None]


@dataclass
class TrainSpec:
    """What one `fer3d-bench train` call asks for: one fold of a manifest, into `out`."""

    dataset: Path
    manifest: Path
    out: Path
    repetition: int = 0
    fold: int = 0
    preset: str = "paper"
    overrides: dict = field(default_factory=dict)
    ablation: str | None = None
    environment: TrainingEnvironment = field(default_factory=TrainingEnvironment)


def train_fold(spec: TrainSpec) -> FoldResult:
    """Train the reference model (or one ablation of it) on one fold of a manifest, with the
    protocol's training settings on the paper preset, as `evaluate` would: the same job, so
    the dataset's fingerprint is checked and `out/result.json` written; resumes from `out`."""
    found = CheckedManifest.of_file(spec.manifest).checked()
    ablations = (spec.ablation,) if spec.ablation else ()
    train = protocol_train(found.protocol)
    variant = spec.ablation or FULL
    config = variant_configs(spec.preset, spec.overrides, ablations, train)[variant]
    with H5Dataset(spec.dataset) as data:
        fingerprint = data.fingerprint
    request = spec.environment.weights
    weights = weights_record(
        request.path, config.model.backbone, request.allow_architecture_mismatch
    )
    identity = job_identity(
        found,
        variant,
        config,
        (spec.repetition, spec.fold),
        fingerprint,
        weights_identity(weights),
        spec.environment.exclude_flagged,
    )
    out = Path(spec.out).resolve()
    job = FoldJob(
        run_dir=str(out.parent),
        folder=out.name,
        dataset=str(Path(spec.dataset).resolve()),
        manifest=str(found.path.resolve()),
        identity=identity,
        classes=found.manifest.classes,
        environment=spec.environment,
        weights=weights,
    )
    run_fold(job)
    return read_result(job.result_path)


@dataclass
class Evaluation:
    plan: Plan
    summaries: list[FoldSummary]
    report: ReportPaths | None  # None when cluster jobs were submitted without waiting

    def failed(self) -> list[str]:
        """'folder: reason' of every failed fold the report counts (this call's or earlier),
        then of every fold whose cluster job crashed before writing a result."""
        report = self.report.report if self.report else None
        folds = report.failed_folds() if report else []
        failed = [f"{folder}: {reason}" for folder, reason in folds]
        return failed + [f"{s.folder}: {s.reason}" for s in self.summaries if s.status == CRASHED]


def plan_run(spec: EvalSpec, launcher: Launcher) -> Plan:
    """Plan `spec` with this machine's runtime recorded in run.json, the placement as the
    launcher takes it (resolved here for jobs that run here).

    Under the run folder's lock: two calls planning at once would each merge run.json from
    what they read, and the second would drop what the first added.
    """
    placement = replace(launcher.placement(spec.environment.placement), progress=launcher.one_bar)
    spec = replace(spec, environment=replace(spec.environment, placement=placement))
    out = Path(spec.out)
    created = [p for p in (out, *out.parents) if not p.exists()]  # made by the lock, if refused
    try:
        with folder_lock(out, wait=True):
            return plan(spec, runtime(placement))
    except BaseException:
        (out / LOCK_FILE).unlink(missing_ok=True)
        for folder in created:  # a refused first call leaves no folder behind (empty ones only)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def plan_lines(planned: Plan, pending: int) -> list[str]:
    """What a run is about to do: a header naming each protocol (its repetitions, folds and
    variants), then the fold jobs, as resuming when some are already done. Numbers in folders
    and fold lines are 0-based indices (`bu3dfe-legacy/1/0`: repetition index 1, the 2nd)."""
    shape: dict[str, dict[str, set]] = {}
    for job in planned.jobs:
        seen = shape.setdefault(job.identity.protocol, {"rep": set(), "fold": set(), "var": set()})
        seen["rep"].add(job.identity.repetition)
        seen["fold"].add(job.identity.fold)
        seen["var"].add(job.identity.variant)
    lines = []
    for protocol, seen in shape.items():
        variants = ", ".join(sorted(seen["var"]))
        lines.append(
            f"{protocol}: {len(seen['rep'])} repetition(s) x {len(seen['fold'])} fold(s), "
            f"variant(s) {variants}; folders {protocol}/REPETITION/FOLD, numbered from 0"
        )
    total, done = len(planned.jobs), len(planned.jobs) - pending
    if done:
        lines.append(
            f"{planned.run_dir}: resuming: {done} of {total} fold jobs already done (kept, not "
            f"retrained), {pending} to run"
        )
    else:
        lines.append(f"{planned.run_dir}: {total} fold jobs, 0 already done")
    return lines


def evaluate(
    spec: EvalSpec, launch: Launch | None = None, echo: Echo = print, report: bool = True
) -> Evaluation:
    """Plan, run every pending fold job with the spec's launcher, then write the report.

    `report=False` leaves the report to the caller (the demo writes one for several calls).
    """
    launcher = LAUNCHERS[spec.launcher](launch or Launch())
    launcher.check()  # before anything is written: a request that can never run
    planned = plan_run(spec, launcher)
    pending = planned.pending()
    for line in plan_lines(planned, len(pending)):
        echo(line)
    summaries = launcher.run(pending, Path(spec.out), echo)
    if not launcher.waits:
        echo(
            f"{len(pending)} fold jobs queued (ids in {spec.out}/submitit/jobs.json); when they "
            f"have finished: fer3d-bench report {spec.out}"
        )
        return Evaluation(planned, summaries, None)
    return Evaluation(planned, summaries, write_report(spec.out) if report else None)
