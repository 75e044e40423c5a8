"""The cluster launcher: fold jobs as one submitit job array, on Slurm or submitit's local executor.

Job ids go to `<run>/submitit/jobs.json`, so a later `fer3d-bench report` (or a person) can find
the logs of each fold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import submitit

from fer3d_bench.errors import Fer3dError
from fer3d_bench.evaluation.job import FoldSummary, run_fold
from fer3d_bench.evaluation.plan import FoldJob
from fer3d_bench.progress import progress as progress_bar
from fer3d_bench.records.io import write_json

CLUSTERS = {"slurm": "slurm", "submitit-local": "local"}  # launcher -> submitit cluster


@dataclass
class SlurmOptions:
    partition: str | None = None
    timeout_min: int = 240
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 32
    array_parallelism: int = 64


def submit(
    jobs: list[FoldJob],
    run_dir: Path,
    cluster: str = "slurm",
    options: SlurmOptions | None = None,
    wait: bool = False,
    progress: bool = True,
) -> list[FoldSummary]:
    """Submit jobs as one submitit job array (`cluster` "slurm", or "local" to test the path).

    With `wait`, returns each job's summary once all finished; a job that crashed (not one that
    diverged: that is a failed result) is reported by name and makes this raise after the
    others are collected.
    """
    options = options or SlurmOptions()
    folder = Path(run_dir) / "submitit"
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    parameters = {
        "name": f"fer3d-{Path(run_dir).name}",
        "timeout_min": options.timeout_min,
        "cpus_per_task": options.cpus_per_task,
        "mem_gb": options.mem_gb,
        "slurm_array_parallelism": options.array_parallelism,
    }
    if cluster != "local":
        parameters["gpus_per_node"] = options.gpus_per_node
    if options.partition:
        parameters["slurm_partition"] = options.partition
    executor.update_parameters(**parameters)
    for job in jobs:
        job.progress = False
    submitted = executor.map_array(run_fold, jobs)
    pairs = list(zip(submitted, jobs, strict=True))
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "jobs.json", [{"job_id": s.job_id, "folder": j.folder} for s, j in pairs])
    if not wait:
        return []
    summaries, crashed = [], []
    for sub, job in progress_bar(pairs, desc="jobs", unit="job", enabled=progress):
        try:
            summaries.append(sub.result())
        except Exception as exc:  # noqa: BLE001 - submitit re-raises the job's own error
            crashed.append(f"{job.folder} (job {sub.job_id}): {str(exc).strip().splitlines()[-1]}")
    if crashed:
        raise Fer3dError(
            f"{len(crashed)} job(s) crashed; logs in {folder}:\n  " + "\n  ".join(crashed)
        )
    return summaries
