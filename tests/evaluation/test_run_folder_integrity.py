"""One run folder, several writers, killed processes: every fold is trained exactly once, a dead
holder's lock and temporary files are taken over, and a failed fold fails the command."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner
from runs import diverging, small_spec

from fer3d_bench.cli import main
from fer3d_bench.evaluation.job import BUSY, run_fold
from fer3d_bench.evaluation.local import run_local
from fer3d_bench.evaluation.plan import plan as make_plan
from fer3d_bench.io import atomic_path
from fer3d_bench.processes import HOST, LOCK_FILE
from fer3d_bench.train import loop

FOLDS = ["bu3dfe-legacy/0/0", "bu3dfe-legacy/0/1", "bu3dfe-legacy/1/0", "bu3dfe-legacy/1/1"]
ENV = dict(os.environ, FER3D_PROGRESS="off")


def _args(small, out, *extra):
    return [
        "evaluate",
        "--dataset", str(small / "merged.h5"),
        "--protocol", "bu3dfe-legacy",
        "--manifests", str(small / "m"),
        "--out", str(out),
        "--preset", "tiny",
        "--repetitions", "2",
        "--max-folds", "2",
        "--device", "cpu",
        *extra,
    ]  # fmt: skip


def test_two_evaluations_on_one_run_folder_train_every_fold_exactly_once(small, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "fer3d_bench"]
    # started together, they reach the first fold together: one trains it, the other moves on
    first, second = (
        subprocess.Popen(
            [*command, *_args(small, out, "--epochs", "4", *extra)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=ENV,
        )
        for extra in ((), ("--jobs", "2"))
    )
    second_out, _ = second.communicate(timeout=600)
    first_out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, first_out
    assert second.returncode == 0, second_out
    outputs = first_out + second_out
    for folder in FOLDS:
        trained = [x for x in outputs.splitlines() if x.startswith(f"{folder}: ")]
        assert sum("(trained" in x for x in trained) == 1, (folder, outputs)
        epochs = [json.loads(x)["epoch"] for x in (out / folder / "metrics.jsonl").open()]
        assert epochs == [1, 2, 3, 4], folder
        assert json.loads((out / folder / "result.json").read_text())["status"] == "ok"
    print(outputs)
    for text in (first_out, second_out):  # each ends with the whole report
        assert "TRUNCATED" in text


def test_a_lock_left_by_a_killed_process_is_taken_over(small, tmp_path):
    out = tmp_path / "run"
    jobs = make_plan(small_spec(small, out)).jobs
    folder = out / jobs[0].folder
    folder.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    holder = {"host": HOST, "pid": int(dead), "since": "2026-12-01T00:00:00Z"}
    (folder / LOCK_FILE).write_text(json.dumps(holder))  # its flock died with it
    summaries = run_local(jobs, progress=False)
    assert [s.status for s in summaries] == ["ok", "ok"]
    assert f"resumed after pid {dead} on {HOST}" in summaries[0].note
    assert (folder / LOCK_FILE).read_text() == ""  # released


def test_a_fold_held_by_a_living_process_is_busy_then_waited_for(small, tmp_path):
    out = tmp_path / "run"
    job = make_plan(small_spec(small, out, max_folds=1)).jobs[0]
    folder = out / job.folder
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), "4"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    busy = run_fold(job)
    assert busy.status == BUSY and f"pid {holder.pid}" in busy.reason
    assert not job.result_path.exists()
    waited = run_fold(job, wait=True)  # returns once the holder lets go, having trained it
    holder.wait()
    assert waited.status == "ok" and not waited.skipped


def test_evaluate_exits_non_zero_when_a_fold_failed_and_still_writes_the_report(
    small, tmp_path, monkeypatch
):
    real = loop.train

    def second_fold_diverges(fold, out, config, *args, **kwargs):
        if str(out).endswith("0/1"):
            with diverging():
                return real(fold, out, config, *args, **kwargs)
        return real(fold, out, config, *args, **kwargs)

    monkeypatch.setattr(loop, "train", second_fold_diverges)
    out = tmp_path / "run"
    args = _args(small, out, "--epochs", "1")
    args[args.index("--repetitions") + 1] = "1"
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "1 fold(s) failed" in result.output and "bu3dfe-legacy/0/1" in result.output
    assert "training diverged" in (out / "report.md").read_text()
    again = CliRunner().invoke(main, args)  # resumed: still failed, still non-zero
    assert again.exit_code == 1


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    target = tmp_path / "merged.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True).stdout.strip()  # fmt: skip
    host = HOST.replace("-", "_")
    left = [tmp_path / f".merged.h5.tmp-{dead}", tmp_path / f".merged.h5.tmp-{host}-{dead}"]
    alive = tmp_path / f".merged.h5.tmp-{host}-{os.getppid()}"  # a writer still at work
    other = tmp_path / f".merged.h5.tmp-elsewhere-{dead}"  # another host's: cannot tell
    for path in [*left, alive, other]:
        path.write_bytes(b"half a file")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert not any(p.exists() for p in left)
    assert alive.exists() and other.exists()


HOLD = """
import sys, time
from fer3d_bench.processes import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""
