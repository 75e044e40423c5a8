"""A run folder is untrusted input: its checkpoint never runs code, damage is named, and the
log holds one line per epoch whatever moment the previous run was killed at."""

import json
import os
import subprocess
import sys

import pytest
import torch

from fer3d_bench.errors import Fer3dError
from fer3d_bench.processes import HOST, FolderBusy, folder_lock
from fer3d_bench.records.io import RecordDamaged
from fer3d_bench.train import loop
from fer3d_bench.train.checkpoint import read_checkpoint
from fer3d_bench.train.config import PRESETS, with_overrides
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.loop import train

CONFIG = with_overrides(PRESETS["tiny"], epochs=2, batch_size=8, effective_batch=8)


@pytest.fixture(scope="module")
def fold(tiny_merged):
    """(merged.h5, training indices, test indices) of the session's tiny dataset."""
    base, _, _ = tiny_merged
    return base / "merged.h5", list(range(0, 20)), list(range(20, 26))


class Payload:
    """Unpickling this writes a marker file: what a crafted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def _run(fold, out, **kwargs):
    h5, train_idx, test_idx = fold
    return train(TrainingFold(h5, train_idx, test_idx), out, CONFIG, Placement("cpu"), **kwargs)


def test_a_crafted_checkpoint_is_refused_and_its_payload_never_runs(fold, tmp_path):
    out, marker = tmp_path / "fold", tmp_path / "marker"
    _run(fold, out, stop_after=1)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    saved["history"] = [dict(saved["history"][0], note=Payload(marker))]
    torch.save(saved, out / "checkpoint.pt")
    torch.load(out / "checkpoint.pt", weights_only=False)  # the attack is real: unsafe load runs it
    assert marker.read_text() == "ran"
    marker.unlink()
    with pytest.raises(RecordDamaged, match="not loaded") as refused:
        _run(fold, out)
    assert str(out / "checkpoint.pt") in str(refused.value)
    assert not marker.exists()


def test_a_truncated_checkpoint_is_named_not_a_torch_traceback(fold, tmp_path):
    out = tmp_path / "fold"
    _run(fold, out, stop_after=1)
    whole = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(RecordDamaged, match="damaged or truncated") as damaged:
        _run(fold, out)
    assert str(damaged.value).startswith(str(out / "checkpoint.pt"))
    assert "\n" not in str(damaged.value)


def test_a_checkpoint_missing_an_entry_or_with_a_forged_epoch_is_refused(fold, tmp_path):
    out = tmp_path / "fold"
    _run(fold, out, stop_after=1)
    path = out / "checkpoint.pt"
    saved = torch.load(path, weights_only=True)
    torch.save({k: v for k, v in saved.items() if k != "optimizer"}, path)
    with pytest.raises(RecordDamaged, match="optimizer"):
        read_checkpoint(path)
    torch.save(dict(saved, epoch=5), path)  # claims more epochs than its history holds
    with pytest.raises(RecordDamaged, match="history"):
        _run(fold, out)


def test_a_kill_between_metrics_and_checkpoint_logs_each_epoch_once(fold, tmp_path, monkeypatch):
    out = tmp_path / "fold"
    real = loop.write_checkpoint
    saves = []

    def killed_on_the_second(path, state):
        saves.append(state["epoch"])
        if state["epoch"] == 2:  # epoch 2's metrics line is written; its checkpoint is not
            raise KeyboardInterrupt
        real(path, state)

    monkeypatch.setattr(loop, "write_checkpoint", killed_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        _run(fold, out)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2  # the duplicate to come
    monkeypatch.setattr(loop, "write_checkpoint", real)
    result = _run(fold, out)
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert [r["epoch"] for r in result.history] == [1, 2]


def test_a_line_cut_short_by_a_kill_is_dropped_on_resume(fold, tmp_path):
    out = tmp_path / "fold"
    _run(fold, out, stop_after=1)
    with open(out / "metrics.jsonl", "a") as log:
        log.write('{"epoch": 2, "loss_ce": 0.')  # killed in the middle of the write
    _run(fold, out)
    epochs = [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_a_folder_another_process_trains_in_is_refused(fold, tmp_path):
    out = tmp_path / "fold"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderBusy, match=f"pid {holder.pid}"):
            _run(fold, out)
        with pytest.raises(FolderBusy), folder_lock(out):
            pass
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "checkpoint.pt").exists()
    _run(fold, out, stop_after=1)  # its holder was killed: the lock is free (stale) at once


HOLD = """
import sys, time
from fer3d_bench.processes import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def test_links_planted_in_a_run_folder_never_lead_a_write_outside(fold, tmp_path):
    out, victim = tmp_path / "fold", tmp_path / "victim.txt"
    out.mkdir()
    victim.write_text("the user's own file\n")
    (out / ".lock").symlink_to(victim)
    with pytest.raises(Fer3dError, match="lock file"):
        _run(fold, out)
    (out / ".lock").unlink()
    (out / "metrics.jsonl").symlink_to(victim)  # appended to each epoch, were it followed
    own = f".checkpoint.pt.tmp-{HOST.replace('-', '_')}-{os.getpid()}"  # this process's name
    (out / own).symlink_to(victim)
    _run(fold, out)
    assert victim.read_text() == "the user's own file\n"
    assert not (out / "metrics.jsonl").is_symlink()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == CONFIG.epochs
