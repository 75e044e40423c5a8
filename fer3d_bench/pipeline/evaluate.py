"""Training and evaluation composed once: one fold from a manifest; plan + launch + report."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from fer3d_bench import splits as sp
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import ManifestMismatch
from fer3d_bench.evaluation import job
from fer3d_bench.evaluation.cluster import CLUSTERS, SlurmOptions, check, submit
from fer3d_bench.evaluation.job import CRASHED, FoldSummary
from fer3d_bench.evaluation.local import run_local
from fer3d_bench.evaluation.plan import EvalSpec, Plan, plan, variant_prefix
from fer3d_bench.evaluation.pool import run_pool
from fer3d_bench.processes import LOCK_FILE, folder_lock
from fer3d_bench.report import ReportPaths, write_report
from fer3d_bench.train import loop
from fer3d_bench.train.config import FULL, variant_configs

Echo = Callable[[str], None]


def train_fold(
    dataset: Path,
    manifest_path: Path,
    out: Path,
    *,
    repetition: int = 0,
    fold: int = 0,
    preset: str = "paper",
    overrides: dict | None = None,
    ablation: str | None = None,
    device: str = "auto",
    backbone_weights: Path | None = None,
    trust_pickle: bool = False,
    allow_architecture_mismatch: bool = False,
    exclude_flagged: bool = False,
) -> loop.TrainResult:
    """Train the reference model (or one ablation of it) on one fold of a manifest, with the
    protocol's training settings on the paper preset, as `evaluate` would."""
    manifest = sp.read_manifest(manifest_path)
    protocol = sp.manifest_protocol(manifest.content)
    ablations = (ablation,) if ablation else ()
    variants = variant_configs(preset, overrides, ablations, protocol.train_overrides)
    config = variants[ablation or FULL]
    broken = sp.broken_invariants(manifest.content, protocol)
    if broken:
        raise ManifestMismatch(f"{manifest_path} contradicts itself:\n  " + "\n  ".join(broken))
    with H5Dataset(dataset) as data:
        train_idx, test_idx = sp.fold_indices(manifest, data, repetition, fold)
    return loop.train(
        dataset,
        train_idx,
        test_idx,
        out,
        config,
        device=device,
        backbone_weights=backbone_weights,
        trust_pickle=trust_pickle,
        allow_architecture_mismatch=allow_architecture_mismatch,
        classes=manifest.content["classes"],
        exclude_flagged=exclude_flagged,
    )


@dataclass
class Launch:
    """How the planned jobs run: here (`jobs` at once), or as a cluster job array."""

    jobs: int = 1  # folds trained at once: here, or by each Slurm job on its allocation
    wait: bool = False  # slurm: wait for the jobs, then report
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    progress: bool = True


@dataclass
class Evaluation:
    plan: Plan
    summaries: list[FoldSummary]
    report: ReportPaths | None  # None when cluster jobs were submitted without waiting

    def failed(self) -> list[str]:
        """'folder: reason' of every failed fold the report counts (this call's or earlier),
        then of every fold whose cluster job crashed before writing a result."""
        groups = self.report.report.groups if self.report and self.report.report else []
        failed = [
            f"{variant_prefix(g['variant'])}{g['protocol']}/{f['repetition']}/{f['fold']}: "
            f"{f['reason']}"
            for g in groups
            for f in g["aggregate"]["failed"]
        ]
        return failed + [f"{s.folder}: {s.reason}" for s in self.summaries if s.status == CRASHED]


def plan_run(spec: EvalSpec, progress: bool = False) -> Plan:
    """Plan `spec` with this machine's runtime recorded in run.json.

    Under the run folder's lock: two calls planning at once would each merge run.json from
    what they read, and the second would drop what the first added.
    """
    out = Path(spec.out)
    created = [p for p in (out, *out.parents) if not p.exists()]  # made by the lock, if refused
    try:
        with folder_lock(out, wait=True):
            return plan(spec, job.runtime(spec.device, spec.launcher), progress=progress)
    except BaseException:
        (out / LOCK_FILE).unlink(missing_ok=True)
        for folder in created:  # a refused first call leaves no folder behind (empty ones only)
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def evaluate(
    spec: EvalSpec, launch: Launch | None = None, echo: Echo = print, report: bool = True
) -> Evaluation:
    """Plan, run every pending fold job with the spec's launcher, then write the report.

    `report=False` leaves the report to the caller (the demo writes one for several calls).
    """
    launch = launch or Launch()
    if spec.launcher in CLUSTERS:  # before anything is written: a request that can never run
        check(replace(launch.slurm, folds_per_job=launch.jobs), CLUSTERS[spec.launcher])
    one_bar = launch.progress and spec.launcher == "local" and launch.jobs == 1
    planned = plan_run(spec, progress=one_bar)
    pending = planned.pending()
    done = len(planned.jobs) - len(pending)
    echo(f"{spec.out}: {len(planned.jobs)} fold jobs, {done} already done")
    summaries = launch_jobs(pending, spec, launch, echo)
    if not waits(spec, launch):
        echo(
            f"{len(pending)} fold jobs queued (ids in {spec.out}/submitit/jobs.json); when they "
            f"have finished: fer3d-bench report {spec.out}"
        )
        return Evaluation(planned, summaries, None)
    return Evaluation(planned, summaries, write_report(spec.out) if report else None)


def waits(spec: EvalSpec, launch: Launch) -> bool:
    """Whether the jobs are finished when the launcher returns: all but Slurm without --wait."""
    return spec.launcher != "slurm" or launch.wait


def launch_jobs(jobs: list, spec: EvalSpec, launch: Launch, echo: Echo) -> list[FoldSummary]:
    """Run `jobs` with the spec's launcher; each finished local job is echoed as it ends."""

    def on_result(summary: FoldSummary) -> None:
        echo(summary.line())

    if spec.launcher == "local" and launch.jobs > 1:
        return run_pool(jobs, launch.jobs, progress=launch.progress, on_result=on_result)
    if spec.launcher == "local":
        return run_local(jobs, progress=launch.progress, on_result=on_result)
    options = replace(launch.slurm, folds_per_job=launch.jobs)
    wait = waits(spec, launch)
    summaries = submit(jobs, spec.out, CLUSTERS[spec.launcher], options, wait=wait, echo=echo)
    for summary in summaries:
        on_result(summary)
    return summaries
