"""The pool launcher: fold jobs in spawned worker processes on this machine, N at a time.

Each worker gets an equal share of the CPUs this process was given (its Slurm allocation or its
CPU affinity, `processes.allocated_cpus`) as its torch thread count, so N jobs do not start N
times as many threads as there are CPUs. Spawned, not forked: CUDA and OpenGL state do not
survive a fork. Workers end when this process does, however it ends.
"""

from __future__ import annotations

import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed

from fer3d_bench.evaluation.job import BUSY, FoldSummary, run_fold
from fer3d_bench.evaluation.local import OnResult, announce, tell
from fer3d_bench.evaluation.plan import FoldJob
from fer3d_bench.processes import allocated_cpus, exit_with_parent
from fer3d_bench.progress import progress as progress_bar


def run_pool(
    jobs: list[FoldJob], workers: int, progress: bool = True, on_result: OnResult = None
) -> list[FoldSummary]:
    """Run jobs in `workers` processes; summaries sorted by folder.

    Folds another process is training are waited for once the others are done.
    """
    threads = max(1, allocated_cpus() // workers)
    for job in jobs:
        job.threads, job.progress = threads, False
    context = multiprocessing.get_context("spawn")
    summaries = []
    with (
        progress_bar(total=len(jobs), desc="folds", unit="fold", enabled=progress) as bar,
        ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with_parent) as pool,
    ):
        busy = []
        for future in as_completed([pool.submit(run_fold, job) for job in jobs]):
            summary = future.result()
            if summary.status == BUSY:
                busy.append(summary.folder)
                tell(summary, on_result, bar, "waiting for it after the others")
            else:
                summaries.append(summary)
                announce(summary, on_result, bar)
        waiting = [job for job in jobs if job.folder in busy]
        wait = functools.partial(run_fold, wait=True)
        for future in as_completed([pool.submit(wait, job) for job in waiting]):
            summaries.append(future.result())
            announce(summaries[-1], on_result, bar)
    return sorted(summaries, key=lambda s: s.folder)
