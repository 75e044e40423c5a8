"""Fold jobs in spawned worker processes on this machine, N at a time.

Each worker gets an equal share of the CPUs this process was given (its Slurm allocation, CPU
affinity and cgroup quota: `workers.available_cpus`) as its torch thread count, so N jobs do not
start N times as many threads as there are CPUs. N itself is capped by those CPUs and by the
memory available (`workers.cap_workers`), and the cap is said. Spawned, not forked: CUDA and
OpenGL state do not survive a fork. Workers end when this process does, however it ends.
"""

from __future__ import annotations

import functools
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

from fer3d_bench.evaluation.job import FoldSummary, run_fold
from fer3d_bench.evaluation.local import OnResult, run_jobs
from fer3d_bench.evaluation.plan import FoldJob
from fer3d_bench.processes import exit_with_parent
from fer3d_bench.workers import FOLD_WORKER_BYTES, available_cpus, cap_workers


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_pool(
    jobs: list[FoldJob],
    workers: int,
    progress: bool = True,
    on_result: OnResult = None,
    echo: Callable[[str], None] = _to_stderr,
) -> list[FoldSummary]:
    """Run jobs in `workers` processes (fewer where the machine has not room for them, said
    through `echo`); summaries sorted by folder."""
    workers, sentence = cap_workers(workers, FOLD_WORKER_BYTES, "--jobs")
    if sentence:
        echo(sentence)
    threads = max(1, available_cpus() // workers)
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
