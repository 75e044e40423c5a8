"""The local launcher: fold jobs here, one after another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from fer3d_bench.evaluation.job import BUSY, FoldSummary, run_fold
from fer3d_bench.evaluation.plan import FoldJob
from fer3d_bench.progress import progress as progress_bar

OnResult = Callable[[FoldSummary], None] | None


def run_local(
    jobs: list[FoldJob], progress: bool = True, on_result: OnResult = None
) -> list[FoldSummary]:
    """Run jobs in this process, in order; `on_result` hears of each as it finishes.

    Folds another process is training are left to it, then waited for at the end (and resumed
    here if that process dies first). Summaries come back sorted by folder, as every launcher
    returns them.
    """
    summaries, busy = [], []
    with progress_bar(total=len(jobs), desc="folds", unit="fold", enabled=progress) as bar:
        for job in jobs:
            bar.set_postfix_str(job.folder)
            summary = run_fold(job)
            if summary.status == BUSY:
                busy.append(job)
                tell(summary, on_result, bar, "waiting for it after the others")
                continue
            summaries.append(summary)
            announce(summary, on_result, bar)
        for job in busy:
            bar.set_postfix_str(job.folder)
            summaries.append(run_fold(job, wait=True))
            announce(summaries[-1], on_result, bar)
    return sorted(summaries, key=lambda s: s.folder)


def announce(summary: FoldSummary, on_result: OnResult, bar) -> None:
    """Count a finished job and pass it on, on a line of its own above the progress bar."""
    bar.update(1)
    if on_result is not None:
        with bar.external_write_mode():
            on_result(summary)


def tell(summary: FoldSummary, on_result: OnResult, bar, note: str) -> None:
    """Pass on a BUSY job's summary, with what will happen to it, without counting it."""
    if on_result is not None:
        with bar.external_write_mode():
            on_result(replace(summary, note=note))
