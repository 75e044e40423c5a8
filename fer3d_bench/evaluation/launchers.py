"""Launchers: how the planned fold jobs run, behind one interface, registered by name.

`evaluate --launcher NAME` and its choices read `LAUNCHERS` (name -> launcher class); each
launcher refuses what it can never run before anything is planned (`check`), says where the
device is resolved (`placement`), runs the pending jobs (`run`), and says whether they have
finished when it returns (`waits`): all do, except Slurm without --wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from fer3d_bench.evaluation.cluster import SlurmOptions, check, submit
from fer3d_bench.evaluation.job import FoldSummary
from fer3d_bench.evaluation.local import run_local
from fer3d_bench.evaluation.plan import FoldJob
from fer3d_bench.evaluation.pool import run_pool
from fer3d_bench.train.device import resolve
from fer3d_bench.train.environment import Placement

Echo = Callable[[str], None]


@dataclass
class Launch:
    """How the planned jobs run: here (`jobs` at once), or as a cluster job array."""

    jobs: int = 1  # folds trained at once: here, or by each Slurm job on its allocation
    wait: bool = False  # slurm: wait for the jobs, then report
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    progress: bool = True


class Launcher:
    """Runs fold jobs; subclasses set `name` and `run`."""

    name: ClassVar[str] = ""

    def __init__(self, launch: Launch):
        self.launch = launch

    def check(self) -> None:
        """Refuse, before anything is written, what this launcher can never run."""

    @property
    def waits(self) -> bool:
        """Whether the jobs have finished when `run` returns."""
        return True

    @property
    def one_bar(self) -> bool:
        """Whether a fold's epochs may draw their bar (one fold at a time, here)."""
        return False

    def placement(self, placement: Placement) -> Placement:
        """The placement the jobs carry: resolved here when they run here, else as asked (a
        cluster job resolves its own, on its node)."""
        return placement

    def run(self, jobs: list[FoldJob], run_dir: Path, echo: Echo) -> list[FoldSummary]:
        raise NotImplementedError


class Local(Launcher):
    """Here: one fold after another, or `jobs` at once in worker processes."""

    name = "local"

    @property
    def one_bar(self) -> bool:
        return self.launch.progress and self.launch.jobs == 1

    def placement(self, placement: Placement) -> Placement:
        return resolve(placement)

    def run(self, jobs: list[FoldJob], run_dir: Path, echo: Echo) -> list[FoldSummary]:
        def on_result(summary: FoldSummary) -> None:
            echo(summary.line())

        if self.launch.jobs > 1:
            return run_pool(jobs, self.launch.jobs, self.launch.progress, on_result, echo)
        return run_local(jobs, self.launch.progress, on_result)


class Cluster(Launcher):
    """A submitit job array; `cluster` is submitit's name for where it runs."""

    cluster: ClassVar[str] = ""

    @property
    def options(self) -> SlurmOptions:
        return replace(self.launch.slurm, folds_per_job=self.launch.jobs)

    def check(self) -> None:
        check(self.options, self.cluster)

    def run(self, jobs: list[FoldJob], run_dir: Path, echo: Echo) -> list[FoldSummary]:
        summaries = submit(jobs, run_dir, self.cluster, self.options, wait=self.waits, echo=echo)
        for summary in summaries:
            echo(summary.line())
        return summaries


class Slurm(Cluster):
    """A Slurm job array; with --wait the call waits for it and reports."""

    name, cluster = "slurm", "slurm"

    @property
    def waits(self) -> bool:
        return self.launch.wait


class SubmititLocal(Cluster):
    """submitit's local executor: the cluster path, tested without a cluster."""

    name, cluster = "submitit-local", "local"


LAUNCHERS: dict[str, type[Launcher]] = {k.name: k for k in (Local, Slurm, SubmititLocal)}
