"""The cluster launcher: fold jobs as one submitit job array, on Slurm or submitit's local executor.

Each array task trains `folds_per_job` folds at once on its allocation (`run_folds`), sharing
its CPUs and its GPU between them; every fold sets its torch threads from the allocation
(`processes.allocated_cpus`), never from the node's core count.

Nothing waits in silence:
- before submitting to Slurm, the request is compared with the partition's nodes (sinfo): one
  that no node can meet is refused, naming the resource, and so is a `timeout_min` below
  `MIN_TIMEOUT_MIN`;
- with `wait`, the queue is polled and a line printed whenever what the jobs are doing changes
  (pending with Slurm's reason, running, finished);
- a pending reason that means never (`slurm.NEVER`) cancels the jobs and stops, saying why;
- a job that left the queue without writing its result (killed, out of memory, timed out) is
  named with its accounting state and its log, and its folds are reported as crashed;
- after `wait_timeout_min` the wait ends with the jobs still queued, saying so.

Job ids go to `<run>/submitit/jobs.json`, so a person can find the logs of each fold, and a later
call on the same run folder waits for the folds still queued or running there instead of
submitting them again (`evaluate --wait` after `--no-wait`, or after `--wait-timeout`).
"""

from __future__ import annotations

import collections
import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import submitit
from submitit.core.utils import FailedJobError

from fer3d_bench.errors import Fer3dError
from fer3d_bench.evaluation import slurm
from fer3d_bench.evaluation.folder import existing_result
from fer3d_bench.evaluation.job import CRASHED, FoldSummary, run_fold, summary_of
from fer3d_bench.evaluation.plan import FoldJob
from fer3d_bench.evaluation.pool import run_pool
from fer3d_bench.io import output_folder
from fer3d_bench.records.io import RecordDamaged, SchemaMismatch, write_json

JOBS_SCHEMA = "fer3d-bench/jobs/1"
JOB_ID = re.compile(r"\d+(_\d+)?")
# submitit asks Slurm for its USR2 signal 90 s before the time limit and installs the handler
# only once the job's Python has started and unpickled the job (it imports torch); with a limit
# of 2 minutes the signal was seen to arrive first. 5 minutes leaves the job 3.5 before it.
MIN_TIMEOUT_MIN = 5

Echo = Callable[[str], None]


@dataclass
class SlurmOptions:
    """What each array task asks for, how many folds it trains, and how the launcher waits.

    The defaults fit a common GPU partition: one GPU, 4 CPUs, 16 GB and 4 hours a job.
    """

    partition: str | None = None
    timeout_min: int = 240
    gpus_per_node: int = 1
    cpus_per_task: int = 4
    mem_gb: int = 16
    array_parallelism: int = 64
    folds_per_job: int = 1  # folds one task trains at once, sharing its CPUs and GPU
    wait_timeout_min: float | None = None  # give up waiting after this long (jobs go on)
    poll_max_s: float = 30.0  # polls start a second apart and slow down to this

    def request(self) -> slurm.Request:
        return slurm.Request(
            self.cpus_per_task, self.mem_gb * 1024, self.gpus_per_node, self.timeout_min
        )

    def refusal(self) -> str | None:
        """Why these options cannot work on any cluster, or None."""
        if self.timeout_min < MIN_TIMEOUT_MIN:
            return (
                f"--slurm-time {self.timeout_min} is below {MIN_TIMEOUT_MIN} minutes: Slurm's "
                "timeout signal could arrive before the job can handle it"
            )
        if self.folds_per_job > self.cpus_per_task:
            return (
                f"{self.folds_per_job} folds per job need at least as many CPUs per job "
                f"(--slurm-cpus {self.cpus_per_task})"
            )
        return None


class WaitTimeout(Fer3dError):
    """--wait-timeout passed with jobs still queued or running (they go on)."""


def check(options: SlurmOptions, cluster: str = "slurm") -> None:
    """Refuse options no cluster can honour, and a request no node of the partition can meet."""
    refusal = options.refusal()
    if refusal:
        raise Fer3dError(refusal)
    if cluster == "slurm":
        unmet = slurm.unmet(options.request(), slurm.nodes(options.partition))
        if unmet:
            where = f"partition {options.partition!r}" if options.partition else "default partition"
            raise Fer3dError(f"no node of the {where} can ever run these jobs: " + "; ".join(unmet))


def run_folds(jobs: list[FoldJob]) -> list[FoldSummary]:
    """One array task: its folds at once, on the CPUs (and GPU) of its allocation."""
    if len(jobs) == 1:
        return [run_fold(jobs[0])]
    return run_pool(jobs, len(jobs), progress=False)


def submit(
    jobs: list[FoldJob],
    run_dir: Path,
    cluster: str = "slurm",
    options: SlurmOptions | None = None,
    wait: bool = False,
    echo: Echo = print,
) -> list[FoldSummary]:
    """Submit jobs as one submitit job array (`cluster` "slurm", or "local" to test the path).

    With `wait`, returns a summary per fold once every task has ended; the folds of a task
    that crashed or ended without a result come back with status CRASHED and the reason.
    """
    options = options or SlurmOptions()
    check(options, cluster)
    if not jobs:
        return []
    folder = Path(run_dir) / "submitit"
    name = f"fer3d-{Path(run_dir).name}"
    records = _records(folder)
    pairs, jobs = _still_queued(records, jobs, folder, name) if cluster == "slurm" else ([], jobs)
    if pairs:
        echo(
            f"{sum(len(g) for _, g in pairs)} fold(s) already queued or running as job(s) "
            f"{', '.join(s.job_id for s, _ in pairs)} of an earlier call: not submitted again"
        )
    if jobs:
        output_folder(run_dir, folder)  # submitit's logs too: never through a planted link
        new = _submit(jobs, folder, name, cluster, options)
        pairs += new
        records += [{"job_id": s.job_id, "folders": [j.folder for j in g]} for s, g in new]
        write_json(folder / "jobs.json", {"schema": JOBS_SCHEMA, "jobs": records})
    if not wait:
        return []
    return sorted(_collect(pairs, cluster, options, echo), key=lambda s: s.folder)


def _submit(jobs: list[FoldJob], folder: Path, name: str, cluster: str, options: SlurmOptions):
    """(submitit job, its folds) of each task of a new job array."""
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    parameters = {
        "name": name,
        "timeout_min": options.timeout_min,
        "cpus_per_task": options.cpus_per_task,
        "mem_gb": options.mem_gb,
        "slurm_array_parallelism": options.array_parallelism,
    }
    if cluster != "local" and options.gpus_per_node:
        parameters["gpus_per_node"] = options.gpus_per_node
    if options.partition:
        parameters["slurm_partition"] = options.partition
    executor.update_parameters(**parameters)
    jobs = [replace(job, environment=job.environment.placed(progress=False)) for job in jobs]
    k = options.folds_per_job
    groups = [jobs[i : i + k] for i in range(0, len(jobs), k)]
    try:
        submitted = executor.map_array(run_folds, groups)
    except (FailedJobError, subprocess.CalledProcessError) as exc:
        lines = [line for line in str(exc).splitlines() if "error" in line.lower()]
        raise Fer3dError(f"sbatch refused the jobs: {(lines or [str(exc)])[-1].strip()}") from None
    return list(zip(submitted, groups, strict=True))


def _records(folder: Path) -> list[dict]:
    """The jobs earlier calls submitted for this run folder (jobs.json), well-formed ones only.

    0.11 and earlier wrote a bare list of {"job_id", "folder"}; it is read as one fold a job.
    """
    path = folder / "jobs.json"
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RecordDamaged(path, f"unreadable or truncated JSON ({error})") from None
    if isinstance(data, list):
        data = {"schema": JOBS_SCHEMA, "jobs": [{**r, "folders": [r.get("folder")]} for r in data]}
    if not isinstance(data, dict) or data.get("schema") != JOBS_SCHEMA:
        raise SchemaMismatch(path, f"expected a job list of schema {JOBS_SCHEMA!r}")
    return [
        {"job_id": r["job_id"], "folders": [str(f) for f in r["folders"]]}
        for r in data.get("jobs", [])
        if isinstance(r, dict)
        and JOB_ID.fullmatch(str(r.get("job_id", "")))
        and isinstance(r.get("folders"), list)
    ]


def _still_queued(records: list[dict], jobs: list[FoldJob], folder: Path, name: str):
    """([(job, folds)] of earlier jobs of this run still queued or running, the other jobs).

    A job counts only if the queue knows it by this run's job name, so a job id in a jobs.json
    copied from elsewhere cannot make us wait for (or cancel) someone else's job.
    """
    by_folder = {job.folder: job for job in jobs}
    queued = slurm.queue(sorted({r["job_id"].split("_")[0] for r in records}))
    pairs = []
    for record in records:
        job = queued.get(record["job_id"])
        if job is None or job.state in slurm.ENDED or job.name != name:
            continue
        group = [by_folder.pop(f) for f in record["folders"] if f in by_folder]
        if group:
            pairs.append((submitit.SlurmJob(folder=folder / "%j", job_id=job.job_id), group))
    return pairs, [job for job in jobs if job.folder in by_folder]


def _collect(pairs, cluster: str, options: SlurmOptions, echo: Echo) -> list[FoldSummary]:
    """Poll until every task has ended; one summary per fold."""
    started = time.monotonic()
    remaining = dict(pairs)  # submitit job -> its folds
    arrays = sorted({sub.job_id.split("_")[0] for sub in remaining})
    gone: collections.Counter = collections.Counter()  # polls a job was seen ended, no result
    summaries: list[FoldSummary] = []
    said = None
    while remaining:
        queued = _queued(remaining, cluster)
        for sub, group in list(remaining.items()):
            job = queued.get(sub.job_id)
            if sub.paths.result_pickle.exists():
                summaries += _results(sub, group)
            elif job is not None and slurm.never_reason(job):
                slurm.cancel(arrays)
                raise Fer3dError(
                    f"job {sub.job_id} can never start: Slurm says {job.reason} "
                    f"({slurm.never_reason(job)}); cancelled the run's jobs"
                )
            elif job is None or job.state in slurm.ENDED:
                gone[sub.job_id] += 1  # twice, so that a result still being written is seen
                if gone[sub.job_id] < 2:
                    continue
                summaries += _ended(sub, group, job, cluster)
            else:
                continue
            del remaining[sub]
        line = _status(remaining, queued, len(pairs))
        if line != said:
            echo(line)
            said = line
        if not remaining:
            break
        waited = time.monotonic() - started
        if options.wait_timeout_min is not None and waited > 60 * options.wait_timeout_min:
            raise WaitTimeout(
                f"stopped waiting after {options.wait_timeout_min:g} min (--wait-timeout) "
                f"with {len(remaining)} job(s) not finished ({line}); they go on: "
                "`fer3d-bench report RUN` reports what has finished"
            )
        time.sleep(min(options.poll_max_s, 1 + waited / 10))
    return summaries


def _queued(remaining: dict, cluster: str) -> dict[str, slurm.QueuedJob]:
    """Job id -> what the queue says of it; submitit's local executor answers for its own."""
    if cluster == "local":
        return {
            sub.job_id: slurm.QueuedJob(sub.job_id, "RUNNING", "None")
            for sub in remaining
            if not sub.done()
        }
    return slurm.queue(sorted({sub.job_id.split("_")[0] for sub in remaining}))


def _status(remaining: dict, queued: dict, total: int) -> str:
    """'jobs: 2 running, 1 pending (Resources), 3 of 6 ended' from the latest poll."""
    counts: collections.Counter = collections.Counter()
    for sub in remaining:
        job = queued.get(sub.job_id)
        if job is None or job.state in slurm.ENDED:
            counts["ending"] += 1
        elif job.state == "PENDING":
            counts["pending" + (f" ({job.reason})" if job.reason != "None" else "")] += 1
        else:
            counts[job.state.lower()] += 1
    parts = [f"{n} {what}" for what, n in sorted(counts.items())]
    return f"jobs: {', '.join(parts + [f'{total - len(remaining)} of {total} ended'])}"


def _results(sub, group: list[FoldJob]) -> list[FoldSummary]:
    """The summaries a task returned, or each of its folds CRASHED with the task's error."""
    try:
        return list(sub.result())
    except Exception as exc:  # noqa: BLE001 - submitit re-raises the job's own error
        reason = f"job {sub.job_id} crashed: {raised(str(exc)) or type(exc).__name__}"
        return _crashed(group, f"{reason}; log: {sub.paths.stderr}")


def raised(traceback: str) -> str | None:
    """'Error: message' of the last exception a traceback's text shows (module path dropped)."""
    for line in reversed(traceback.splitlines()):
        match = re.match(r"([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit)): (.*)", line)
        if match:
            return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    return None


def _ended(sub, group: list[FoldJob], job, cluster: str) -> list[FoldSummary]:
    """The folds of a task that left the queue without writing its result."""
    state = slurm.accounting(sub.job_id) if cluster == "slurm" else None
    if state is None:
        state = job.state if job is not None else "state unknown: no accounting"
    return _crashed(
        group,
        f"job {sub.job_id} ended ({state}) without a result; log: {sub.paths.stderr}",
    )


def _crashed(group: list[FoldJob], reason: str) -> list[FoldSummary]:
    """CRASHED for each fold of the group that has no result.json; the others as they ended."""
    out = []
    for job in group:
        done = existing_result(job.result_path, job.identity)
        if done is not None:
            out.append(summary_of(job, done, skipped=False))
        else:
            out.append(FoldSummary(job.folder, CRASHED, reason, None, skipped=False))
    return out
