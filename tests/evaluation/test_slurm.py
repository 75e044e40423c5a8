"""evaluate --launcher slurm against a real one-node Slurm cluster (scripts/slurm-cluster.sh):
jobs that finish, jobs packed several folds to one allocation, a job that fails, a job killed
under the launcher's feet, requests that can never run, and a wait that times out.

The node has 2 CPUs, about 90 % of the machine's memory and one fake GPU; the `limited`
partition caps jobs at 1 CPU per node, a limit sinfo does not show, and at 10 minutes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.evaluation.cluster import MIN_TIMEOUT_MIN

pytestmark = pytest.mark.slurm
SMALL_JOB = ["--slurm-cpus", "1", "--slurm-gpus", "0", "--slurm-mem-gb", "1"]


def _args(small, out: Path, *extra: str) -> list[str]:
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-legacy"]
    args += ["--out", str(out), "--manifests", str(small / "m"), "--preset", "tiny"]
    args += ["--epochs", "1", "--repetitions", "1", "--device", "cpu", "--launcher", "slurm"]
    return [*args, "--wait", "--wait-timeout", "5", *extra]


def _sacct(job_id: str, settled: float = 30) -> str:
    """The job's state in accounting, once it has left RUNNING (its result is written first)."""
    deadline = time.monotonic() + settled
    while True:
        out = subprocess.run(
            ["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], capture_output=True, text=True
        )
        state = out.stdout.strip()
        if state not in ("", "PENDING", "RUNNING", "COMPLETING") or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def _results(out: Path) -> dict[str, dict]:
    return {
        str(p.parent.relative_to(out)): json.loads(p.read_text())
        for p in sorted(out.rglob("result.json"))
    }


def test_slurm_jobs_train_their_folds_with_their_allocations_threads_and_report(
    on_slurm, small, tmp_path
):
    out = tmp_path / "slurm-e2e"
    result = CliRunner().invoke(main, [*_args(small, out, "--max-folds", "2"), *SMALL_JOB])
    assert result.exit_code == 0, result.output
    assert "jobs: 2 of 2 ended" in result.output  # said what the jobs did as they went
    title = next(t for t in result.output.splitlines() if t.startswith("### bu3dfe-legacy"))
    assert title.startswith("### bu3dfe-legacy 1.0.0 — TRUNCATED: not the published manifest")
    assert "; 1 of 100 repetitions, 2 of 10 folds;" in title
    results = _results(out)
    assert sorted(results) == ["bu3dfe-legacy/0/0", "bu3dfe-legacy/0/1"]
    for record in results.values():
        assert record["status"] == "ok"
        assert record["threads"] == 1  # SLURM_CPUS_PER_TASK, not the node's 2 cores
    jobs = json.loads((out / "submitit" / "jobs.json").read_text())["jobs"]
    assert [j["folders"] for j in jobs] == [["bu3dfe-legacy/0/0"], ["bu3dfe-legacy/0/1"]]
    for job in jobs:
        assert _sacct(job["job_id"]) == "COMPLETED"  # accounting knows them
    report = CliRunner().invoke(main, ["report", str(out)])
    assert report.exit_code == 0, report.output
    table = [line for line in result.output.splitlines() if "fer3d-bench (this run)" in line]
    assert table and table[0] in report.output  # `report` reads back the same numbers


def test_one_job_trains_several_folds_at_once_sharing_its_cpus(on_slurm, small, tmp_path):
    out = tmp_path / "slurm-packed"
    extra = ["--max-folds", "2", "--jobs", "2", "--slurm-cpus", "2", "--slurm-gpus", "0"]
    args = [*_args(small, out, *extra), "--slurm-mem-gb", "2"]
    args[args.index("--epochs") + 1] = "20"  # seconds long: result.json times are to the second
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    jobs = json.loads((out / "submitit" / "jobs.json").read_text())["jobs"]
    assert [j["folders"] for j in jobs] == [["bu3dfe-legacy/0/0", "bu3dfe-legacy/0/1"]]
    results = _results(out)
    assert [r["status"] for r in results.values()] == ["ok", "ok"]
    assert [r["threads"] for r in results.values()] == [1, 1]  # 2 CPUs shared by 2 folds
    started = sorted(r["started"] for r in results.values())
    finished = sorted(r["finished"] for r in results.values())
    assert started[1] < finished[0]  # the two folds trained at the same time


def test_a_failing_job_is_named_with_its_error_and_the_command_fails(on_slurm, small, tmp_path):
    out = tmp_path / "slurm-fails"
    # the node's GPU is a fake (gres File=/dev/null): torch finds no CUDA device in the job
    extra = ["--max-folds", "1", "--slurm-cpus", "1", "--slurm-gpus", "1", "--slurm-mem-gb", "1"]
    args = [a if a != "cpu" else "cuda" for a in _args(small, out, *extra)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "bu3dfe-legacy/0/0: CRASHED (job " in result.output
    assert "crashed: Fer3dError: --device cuda asked for, but no CUDA device" in result.output
    assert "_log.err" in result.output  # where to read the rest
    assert not _results(out)


def test_a_job_killed_while_training_is_detected_without_a_result(on_slurm, small, tmp_path):
    out = tmp_path / "slurm-killed"
    args = _args(small, out, "--max-folds", "1", *SMALL_JOB)
    args[args.index("--epochs") + 1] = "500"  # long enough to be killed in the middle
    command = [sys.executable, "-m", "fer3d_bench", *args]
    waiting = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        metrics = out / "bu3dfe-legacy" / "0" / "0" / "metrics.jsonl"
        deadline = time.monotonic() + 120
        while not (metrics.exists() and metrics.read_text()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert metrics.exists(), "the job never started training"
        killed = _kill_job_processes(out / "submitit")  # as the kernel's OOM killer would
        assert killed
        output, _ = waiting.communicate(timeout=120)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, output
    assert "bu3dfe-legacy/0/0: CRASHED (job " in output
    assert "without a result" in output and "FAILED" in output  # sacct's state of the job
    assert not _results(out)


def _kill_job_processes(submitit_folder: Path) -> list[int]:
    """kill -9 the job's Python (submitit's runner, whose command names the folder)."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "submitit.core._submit" in command and str(submitit_folder) in command:
            os.kill(int(proc.name), signal.SIGKILL)
            killed.append(int(proc.name))
    return killed


@pytest.mark.parametrize(
    ("request_args", "named"),
    [
        (["--slurm-cpus", "8"], "asks for 8 CPUs (--slurm-cpus); the largest node has 2"),
        (["--slurm-gpus", "2"], "asks for 2 GPUs (--slurm-gpus); the largest node has 1"),
        (["--slurm-mem-gb", "100000"], "MB of memory (--slurm-mem-gb); the largest node has"),
        (
            ["--slurm-partition", "limited", "--slurm-time", "20"],
            "asks for 20 minutes (--slurm-time); the largest node has 10",
        ),
    ],
)
def test_a_request_no_node_can_meet_is_refused_before_anything_is_written(
    on_slurm, small, tmp_path, request_args, named
):
    out = tmp_path / "slurm-never"
    result = CliRunner().invoke(main, [*_args(small, out, "--max-folds", "1"), *request_args])
    assert result.exit_code == 1, result.output
    assert "can ever run these jobs" in result.output and named in result.output
    assert not out.exists()  # refused before planning: no run folder, nothing submitted


def test_a_job_pending_for_a_reason_that_never_ends_is_cancelled_and_named(
    on_slurm, small, tmp_path
):
    out = tmp_path / "slurm-pending"
    # 2 CPUs fit the node, but the partition allows 1 per node: only the queue can tell
    extra = ["--max-folds", "1", "--slurm-partition", "limited", "--slurm-cpus", "2"]
    extra += ["--slurm-time", "10"]
    started = time.monotonic()
    result = CliRunner().invoke(main, [*_args(small, out, *extra), "--slurm-gpus", "0"])
    assert result.exit_code == 1, result.output
    assert "can never start: Slurm says PartitionConfig" in result.output
    assert time.monotonic() - started < 60
    job = json.loads((out / "submitit" / "jobs.json").read_text())["jobs"][0]["job_id"]
    assert _sacct(job).startswith("CANCELLED")


def test_the_wait_times_out_saying_what_is_pending_and_a_later_call_waits_for_the_same_jobs(
    on_slurm, small, tmp_path
):
    blocker = subprocess.run(  # both of the node's CPUs, for longer than the test waits
        ["sbatch", "--parsable", "-c", "2", "-o", "/dev/null", "--wrap", "sleep 300"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    out = tmp_path / "slurm-timeout"
    args = _args(small, out, "--max-folds", "2", *SMALL_JOB)
    try:
        args[args.index("--wait-timeout") + 1] = "0.1"  # 6 s
        started = time.monotonic()
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, result.output
        assert "2 pending (Resources)" in result.output  # Slurm's reason, while it waited
        assert "stopped waiting after 0.1 min (--wait-timeout)" in result.output
        assert time.monotonic() - started < 60
    finally:
        subprocess.run(["scancel", blocker], check=False)
    args[args.index("--wait-timeout") + 1] = "5"
    again = CliRunner().invoke(main, args)  # the node is free now: the same jobs run
    assert again.exit_code == 0, again.output
    assert "2 fold(s) already queued or running as job(s)" in again.output
    assert "not submitted again" in again.output
    jobs = json.loads((out / "submitit" / "jobs.json").read_text())["jobs"]
    assert len(jobs) == 2  # the first call's two, and no others
    assert [r["status"] for r in _results(out).values()] == ["ok", "ok"]


def test_a_slurm_time_too_short_for_the_timeout_signal_is_refused(small, tmp_path):
    out = tmp_path / "slurm-short"
    args = _args(small, out, "--max-folds", "1", "--slurm-time", str(MIN_TIMEOUT_MIN - 1))
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert f"below {MIN_TIMEOUT_MIN} minutes" in result.output
    assert not out.exists()
