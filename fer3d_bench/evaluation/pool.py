"""Fold jobs in spawned worker processes on this machine, N at a time.

Each worker gets an equal share of the CPUs this process was given (its Slurm allocation or its
CPU affinity, `processes.allocated_cpus`) as its torch thread count, so N jobs do not start N
times as many threads as there are CPUs. Spawned, not forked: CUDA and OpenGL state do not
survive a fork. Workers end when this process does, however it ends.
"""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

from fer3d_bench.evaluation.job import FoldSummary, run_fold
from fer3d_bench.evaluation.local import OnResult, run_jobs
from fer3d_bench.evaluation.plan import FoldJob
from fer3d_bench.processes import allocated_cpus, exit_with_parent


def run_pool(
    jobs: list[FoldJob], workers: int, progress: bool = True, on_result: OnResult = None
) -> list[FoldSummary]:
    """Run jobs in `workers` processes; summaries sorted by folder."""
    threads = max(1, allocated_cpus() // workers)
    jobs = [
        replace(job, environment=job.environment.placed(threads=threads, progress=False))
        for job in jobs
    ]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with_parent) as pool:

        def in_pool(batch: list[FoldJob], wait: bool, bar) -> Iterator[FoldSummary]:
            run = functools.partial(run_fold, wait=wait)
            for future in as_completed([pool.submit(run, job) for job in batch]):
                yield future.result()

        return run_jobs(jobs, in_pool, progress, on_result)
