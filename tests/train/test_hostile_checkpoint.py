"""A checkpoint from someone else's run folder, planted: a FIFO named checkpoint.pt must not hang
`evaluate` or `explain`, and a checkpoint of the right signature with an entry missing or of
another type is refused in one line naming the file and the entry, before anything uses it."""

import contextlib
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.records.io import RecordDamaged
from fer3d_bench.train.checkpoint import read_checkpoint
from fer3d_bench.train.config import PRESETS, with_overrides
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.loop import train

FIXTURE = Path(__file__).parents[1] / "data" / "run-0.7.0"  # result.json files, no checkpoints
CONFIG = with_overrides(PRESETS["tiny"], epochs=2, batch_size=8, effective_batch=8)
FOLD = "bu3dfe-legacy/0/0"


@contextlib.contextmanager
def deadline(seconds: int = 60):
    """Fail instead of hanging: a reader that opens a FIFO blocks until a writer comes."""

    def expired(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def refused(args: list[str], *named: str) -> str:
    """The one `error:` line of a command that must exit 1 without a traceback."""
    with deadline():
        result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit), result.output  # not a traceback
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for words in named:
        assert words in errors[0], errors[0]
    return errors[0]


def _evaluate(small: Path, out: Path) -> list[str]:
    args = ["evaluate", "--dataset", str(small / "merged.h5"), "--protocol", "bu3dfe-legacy"]
    args += ["--out", str(out), "--manifests", str(small / "m"), "--preset", "tiny"]
    return [*args, "--epochs", "1", "--repetitions", "1", "--max-folds", "1", "--device", "cpu"]


def test_a_fifo_named_checkpoint_pt_does_not_hang_evaluate(small, tmp_path):
    out = tmp_path / "run"
    (out / FOLD).mkdir(parents=True)
    os.mkfifo(out / FOLD / "checkpoint.pt")
    refused(_evaluate(small, out), f"{out / FOLD / 'checkpoint.pt'}: ", "is not a regular file")
    assert not (out / FOLD / "result.json").exists()


def test_a_checkpoint_without_its_epoch_stops_evaluate_in_one_line(small, tmp_path):
    out = tmp_path / "run"
    (out / FOLD).mkdir(parents=True)
    torch.save({"model": {}, "history": []}, out / FOLD / "checkpoint.pt")
    line = refused(_evaluate(small, out), f"{out / FOLD / 'checkpoint.pt'}: ", "'epoch'")
    assert "not a fer3d-bench checkpoint" in line
    assert not (out / FOLD / "result.json").exists()


def test_a_fifo_named_checkpoint_pt_does_not_hang_explain(tmp_path):
    run = shutil.copytree(FIXTURE, tmp_path / "run", ignore=shutil.ignore_patterns("*.py"))
    os.mkfifo(run / FOLD / "checkpoint.pt")
    refused(["explain", str(run)], f"{run / FOLD / 'checkpoint.pt'}: ", "is not a regular file")
    assert not (run / "figures").exists()


@pytest.fixture(scope="module")
def trained(small, tmp_path_factory):
    """A fold folder after one of two epochs, and the fold it trains (for resuming it)."""
    fold = TrainingFold(small / "merged.h5", list(range(0, 16)), list(range(16, 20)))
    out = tmp_path_factory.mktemp("checkpoint") / "fold"
    train(fold, out, CONFIG, Placement("cpu"), stop_after=1)
    return out, fold


def _exp_avg_reshaped(saved):
    state = next(iter(saved["optimizer"]["state"].values()))
    state["exp_avg"] = torch.zeros(3, 5, 7)


# each: how the entry is changed, and what the message says of it
DAMAGE = {
    "no epoch": (lambda s: s.pop("epoch"), r"missing or wrong: \['epoch'\]"),
    "a negative epoch": (lambda s: s.update(epoch=-1), "'epoch' must be a whole number >= 0"),
    "epoch a bool": (lambda s: s.update(epoch=True), "'epoch' must be a whole number"),
    "model weights as text": (
        lambda s: s["model"].update({next(iter(s["model"])): "weights"}),
        "'model' is not a dict of tensors",
    ),
    "optimizer without state": (
        lambda s: s["optimizer"].pop("state"),
        "'optimizer' lacks its 'state' dict",
    ),
    "history of words": (
        lambda s: s.update(history=["epoch 1"]),
        "'history' is not a list of epochs of numbers",
    ),
    "normalisation short": (
        lambda s: s["normalisation"].pop("depth_std"),
        "'normalisation' needs",
    ),
    "rng of floats": (lambda s: s.update(rng=torch.zeros(4)), "'rng' is not a byte tensor"),
    "more epochs than configured": (
        lambda s: s.update(epoch=5, history=s["history"] * 5),
        r"does not fit this run \(epoch 5 of a configuration of 2 epochs\)",
    ),
    "another schedule": (
        lambda s: s["scheduler"].update(total_steps=10**6),
        "its schedule's total_steps is 1000000",
    ),
    "schedule step beyond its end": (
        lambda s: s["scheduler"].update(last_epoch=10**6),
        "its schedule's step 1000000 is not within",
    ),
    "optimizer state of another shape": (
        _exp_avg_reshaped,
        r"optimiser state 'exp_avg' of shape \[3, 5, 7\]",
    ),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_a_checkpoint_of_the_right_signature_with_a_wrong_entry_is_refused(trained, tmp_path, name):
    folder, fold = trained
    out = shutil.copytree(folder, tmp_path / "fold")
    change, problem = DAMAGE[name]
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    change(saved)
    torch.save(saved, out / "checkpoint.pt")
    with pytest.raises(RecordDamaged, match=problem) as error:
        train(fold, out, CONFIG, Placement("cpu"))
    assert str(error.value).startswith(f"{out / 'checkpoint.pt'}: ")
    assert "\n" not in str(error.value)


def test_an_intact_checkpoint_still_resumes(trained, tmp_path):
    folder, fold = trained
    out = shutil.copytree(folder, tmp_path / "fold")
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    result = train(fold, out, CONFIG, Placement("cpu"))
    assert [e["epoch"] for e in result.history] == [1, 2]
