"""Fold jobs on this machine: every pending job once, then the ones another process was
training, waited for (and resumed here if that process dies first).

The order of a call, whoever runs the jobs: `run_jobs` takes a runner (one after another here,
or a process pool, `pool`) and gives the busy-then-wait rule and the progress bar to both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from fer3d_bench.evaluation.job import BUSY, FoldSummary, run_fold
from fer3d_bench.evaluation.plan import FoldJob
from fer3d_bench.progress import progress as progress_bar

OnResult = Callable[[FoldSummary], None] | None
# (jobs, whether to wait for a busy fold's holder, the bar) -> each job's summary as it ends
Runner = Callable[[list[FoldJob], bool, object], Iterator[FoldSummary]]
WAITING = "waiting for it after the others"


def run_jobs(
    jobs: list[FoldJob], runner: Runner, progress: bool = True, on_result: OnResult = None
) -> list[FoldSummary]:
    """Run `jobs` with `runner`; `on_result` hears of each as it finishes.

    Folds another process is training are left to it, then waited for once the others are
    done. Summaries come back sorted by folder, as every launcher returns them.
    """
    summaries, busy = [], set()
    with progress_bar(total=len(jobs), desc="folds", unit="fold", enabled=progress) as bar:
        for summary in runner(jobs, False, bar):
            if summary.status == BUSY:
                busy.add(summary.folder)
                _tell(replace(summary, note=WAITING), on_result, bar)
                continue
            summaries.append(summary)
            _count(summary, on_result, bar)
        for summary in runner([job for job in jobs if job.folder in busy], True, bar):
            summaries.append(summary)
            _count(summary, on_result, bar)
    return sorted(summaries, key=lambda s: s.folder)


def in_order(jobs: list[FoldJob], wait: bool, bar) -> Iterator[FoldSummary]:
    """The runner of this process: one job after another, the bar naming the one running."""
    for job in jobs:
        bar.set_postfix_str(job.folder)
        yield run_fold(job, wait=wait)


def run_local(
    jobs: list[FoldJob], progress: bool = True, on_result: OnResult = None
) -> list[FoldSummary]:
    """Run jobs in this process, in order."""
    return run_jobs(jobs, in_order, progress, on_result)


def _count(summary: FoldSummary, on_result: OnResult, bar) -> None:
    """Count a finished job and pass it on, on a line of its own above the progress bar."""
    bar.update(1)
    _tell(summary, on_result, bar)


def _tell(summary: FoldSummary, on_result: OnResult, bar) -> None:
    if on_result is not None:
        with bar.external_write_mode():
            on_result(summary)
