"""What the Slurm cluster says: its nodes' capacity, its queue, its accounting (no torch).

Each query runs one Slurm command (`sinfo`, `squeue`, `sacct`, `scancel`) and parses its
`--parsable`-style output; a command that is missing or fails raises `SlurmError` naming it.
The launcher (`cluster`) uses them to refuse a request no node can meet before submitting, to
say why jobs are pending while it waits, and to tell a job that ended without a result.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from fer3d_bench.errors import Fer3dError

# Pending reasons that no amount of waiting ends: the job asks for more than the partition,
# its QOS or its account allows (Slurm's squeue(1), "JOB REASON CODES").
NEVER = {
    "PartitionConfig": "the request exceeds the partition's limits",
    "PartitionNodeLimit": "the request needs more nodes than the partition allows",
    "PartitionTimeLimit": "--slurm-time exceeds the partition's time limit",
    "BadConstraints": "the request's constraints cannot be met",
    "InvalidAccount": "the job's account is not valid",
    "InvalidQOS": "the job's QOS is not valid",
    "DependencyNeverSatisfied": "a dependency can never be satisfied",
}
NEVER_PREFIXES = ("QOSMax", "AssocMax")  # ...PerJob limits of a QOS or an association
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL"}
ENDED |= {"OUT_OF_MEMORY", "PREEMPTED", "TIMEOUT", "SPECIAL_EXIT", "REVOKED"}


class SlurmError(Fer3dError):
    """A Slurm command failed or answered something this module cannot read."""


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: int
    time_limit_min: float  # the partition's; inf when unlimited


@dataclass(frozen=True)
class Request:
    """What each job asks for."""

    cpus: int
    memory_mb: int
    gpus: int
    time_min: int


@dataclass(frozen=True)
class QueuedJob:
    job_id: str
    state: str
    reason: str
    name: str = ""


def run(command: list[str], timeout: float = 30) -> str:
    """stdout of a Slurm command; SlurmError naming it if it is missing, fails or hangs."""
    if shutil.which(command[0]) is None:
        raise SlurmError(f"`{command[0]}` is not on PATH: is this a Slurm login node?")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(command)}` did not answer in {timeout:.0f} s") from None
    if done.returncode != 0:
        problem = (done.stderr or done.stdout).strip().splitlines()
        raise SlurmError(f"`{' '.join(command)}` failed: {problem[-1] if problem else 'no output'}")
    return done.stdout


def minutes(text: str) -> float:
    """A Slurm time limit ("infinite", "30", "4:00:00", "1-12:00:00") in minutes."""
    text = text.strip()
    if text in {"infinite", "UNLIMITED", "NONE", ""}:
        return float("inf")
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if len(parts) == 1:  # minutes alone
        h, m, s = 0, parts[0], 0
    elif len(parts) == 2:  # minutes:seconds
        h, (m, s) = 0, parts
    else:
        h, m, s = parts
    return (int(days) if days else 0) * 1440 + h * 60 + m + s / 60


def gpus(gres: str) -> int:
    """GPUs in a node's GRES ("gpu:1", "gpu:a100:4(S:0-1)", "gpu:2,shard:8", "(null)")."""
    total = 0
    for item in gres.split(","):
        match = re.match(r"gpu(?::[^:(]+)?:(\d+)", item.strip())
        if match:
            total += int(match.group(1))
    return total


def nodes(partition: str | None) -> list[Node]:
    """The nodes of `partition` (the default one when None), as sinfo lists them."""
    command = ["sinfo", "--noheader", "--Node", "--format=%N|%c|%m|%G|%l|%P"]
    lines = run(command + ([f"--partition={partition}"] if partition else [])).splitlines()
    found = []
    for line in lines:
        try:
            name, cpus, memory, gres, limit, part = line.strip().split("|")
            if partition is None and not part.endswith("*"):  # `*` marks the default partition
                continue
            memory = re.sub(r"\D.*", "", memory)  # "21694" or "21694+" for a mixed group
            node = Node(name, int(cpus.rstrip("+")), int(memory), gpus(gres), minutes(limit))
        except ValueError:
            raise SlurmError(f"cannot read this line of `sinfo`: {line.strip()!r}") from None
        found.append(node)
    if not found:
        where = f"partition {partition!r}" if partition else "the default partition"
        raise SlurmError(f"sinfo lists no node in {where}")
    return found


def unmet(request: Request, available: list[Node]) -> list[str]:
    """Why no node can run the request, one line per resource; empty when one can."""
    fits = [
        n
        for n in available
        if n.cpus >= request.cpus
        and n.memory_mb >= request.memory_mb
        and n.gpus >= request.gpus
        and n.time_limit_min >= request.time_min
    ]
    if fits:
        return []
    reasons = []
    wanted = (
        ("CPUs (--slurm-cpus)", request.cpus, max(n.cpus for n in available)),
        ("MB of memory (--slurm-mem-gb)", request.memory_mb, max(n.memory_mb for n in available)),
        ("GPUs (--slurm-gpus)", request.gpus, max(n.gpus for n in available)),
        ("minutes (--slurm-time)", request.time_min, max(n.time_limit_min for n in available)),
    )
    for what, asked, most in wanted:
        if asked > most:
            reasons.append(f"each job asks for {asked} {what}; the largest node has {most:g}")
    return reasons or ["no single node has every resource the job asks for at once"]


def queue(array_ids: list[str]) -> dict[str, QueuedJob]:
    """Job id -> its state and reason, for the elements of these arrays still known to Slurm."""
    if not array_ids:
        return {}
    command = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r|%j"]
    try:
        out = run(command + [f"--jobs={','.join(array_ids)}"])
    except SlurmError as exc:
        if "Invalid job id" in str(exc):  # every one of them has left the queue
            return {}
        raise
    jobs = {}
    for line in out.splitlines():
        fields = line.strip().split("|", 3)
        if len(fields) != 4:
            raise SlurmError(f"cannot read this line of `squeue`: {line.strip()!r}")
        jobs[fields[0]] = QueuedJob(*fields)
    return jobs


def never_reason(job: QueuedJob) -> str | None:
    """What a pending job's reason means, when waiting will never start it; else None."""
    if job.state != "PENDING":
        return None
    if job.reason in NEVER:
        return NEVER[job.reason]
    if job.reason.startswith(NEVER_PREFIXES) and "PerJob" in job.reason:
        return "the request exceeds a per-job limit of the QOS or account"
    return None


def accounting(job_id: str) -> str | None:
    """'STATE, exit code X' from sacct, or None where the cluster keeps no accounting."""
    try:
        out = run(
            [
                "sacct",
                "--noheader",
                "--parsable2",
                "-X",
                f"--jobs={job_id}",
                "--format=State,ExitCode",
            ]
        )
    except SlurmError:
        return None
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        return None
    state, _, code = lines[-1].partition("|")
    return f"{state.split()[0] if state.split() else 'UNKNOWN'}, exit code {code or '?'}"


def cancel(array_ids: list[str]) -> None:
    """Cancel these jobs (whole arrays); quietly, since some may already have ended."""
    if array_ids:
        subprocess.run(["scancel", *array_ids], capture_output=True, timeout=30, check=False)
