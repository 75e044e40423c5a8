"""What only a GPU exercises: resident data on CUDA, AMP in both dtypes, the fp16 grad scaler,
several folds at once, channels-last, resume, and each speed lever on against off.

Each comparison has a tolerance said where it is used, set from what the CPU showed (no GPU
was at hand when they were written: scripts/gpu-check.sh is where they meet one). Runs compared
closely use the `exact` fixture (deterministic cuDNN, no TF32).
"""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fer3d_bench.cli import main
from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import fold_statistics
from fer3d_bench.train import loop
from fer3d_bench.train.checkpoint import CHECKPOINT
from fer3d_bench.train.config import PRESETS, with_overrides
from fer3d_bench.train.data import AugmentConfig, FerTorchDataset, ResidentDataset
from fer3d_bench.train.device import resolve
from fer3d_bench.train.environment import Placement, Speed
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.setup import build_fit

pytestmark = pytest.mark.cuda

# four epochs (on the CPU the tiny model's test accuracy went 0.28, 0.76, 1.0, 1.0: after two,
# runs that differ only in rounding already predicted different classes), two batches of 16 a
# step (accumulation on the GPU too), fp32 unless a test asks
CONFIG = with_overrides(PRESETS["tiny"], epochs=4, effective_batch=32, amp=False, seed=3)
TRAIN, TEST = np.arange(0, 100), np.arange(100, 125)  # four subjects, and the fifth
LOSSES, ACCURACIES = ("loss_total", "loss_ce"), ("train_accuracy", "test_accuracy")


def train(gpu_data, out, config=CONFIG, device="cuda", speed=None, **kwargs):
    placement = resolve(Placement(device, speed=speed or Speed()))
    return loop.train(TrainingFold(gpu_data.h5, TRAIN, TEST), out, config, placement, **kwargs)


def fits(monkeypatch) -> list:
    """The Fit of each training run from now on (to see which levers it was built with)."""
    built = []
    real = loop.build_fit

    def spy(*args):
        built.append(real(*args))
        return built[-1]

    monkeypatch.setattr(loop, "build_fit", spy)
    return built


def assert_alike(ours, theirs, agree: float, cosine: float | None, rel: float) -> None:
    """At least `agree` of the test predictions equal, every test embedding's cosine with the
    other run's at least `cosine` (None: not compared), each epoch's losses within `rel` and
    its accuracies within the share of predictions allowed to differ."""
    samples = sorted(theirs.predictions)
    same = np.mean([ours.predictions[s] == theirs.predictions[s] for s in samples])
    assert same >= agree, f"{same:.2f} of the predictions agree"
    a = np.stack([ours.embeddings[s] for s in samples]).astype(np.float64)
    b = np.stack([theirs.embeddings[s] for s in samples]).astype(np.float64)
    cosines = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine is None or cosines.min() >= cosine, f"smallest cosine {cosines.min():.5f}"
    for mine, other in zip(ours.history, theirs.history, strict=True):
        for key in LOSSES:
            assert np.isfinite(mine[key])
            assert mine[key] == pytest.approx(other[key], rel=rel), key
        for key in ACCURACIES:
            assert abs(mine[key] - other[key]) <= 1 - agree + 1e-9, key


def assert_nearly(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """The same draws applied by CUDA kernels: equal within their rounding, but for the few
    values where rounding crosses an edge (a hue conversion's branch, a rotation's pixel)."""
    close = (ours - theirs).abs() <= 1e-4 + 1e-4 * theirs.abs()
    assert close.float().mean() >= 0.999, f"{1 - close.float().mean():.2%} of values differ"
    assert (ours - theirs).abs().mean() < 1e-3


def test_resident_batches_on_cuda_are_the_loaders_batches(gpu_data):
    config = with_overrides(CONFIG, augment=True)
    with H5Dataset(gpu_data.h5) as data:
        norm = fold_statistics(data, TRAIN)
        args = (data, TRAIN, norm, 64, AugmentConfig(), config.seed, np.arange(7))
        plain, resident = FerTorchDataset(*args), ResidentDataset(*args, device="cuda")
        for epoch in (0, 1):
            plain.set_epoch(epoch)
            resident.set_epoch(epoch)
            seed = config.seed * 1000 + epoch
            theirs = list(loop._loader(plain, config, seed))
            ours = list(loop._loader(resident, config, seed))
            assert len(ours) == len(theirs) == 7
            for (rgb, depth, labels), (our_rgb, our_depth, our_labels) in zip(
                theirs, ours, strict=True
            ):
                assert our_rgb.device.type == "cuda"
                assert_nearly(our_rgb.cpu(), rgb)
                assert_nearly(our_depth.cpu(), depth)
                assert torch.equal(our_labels.cpu(), labels)
        assert not torch.allclose(ours[0][0].cpu(), list(loop._loader(plain, config, 0))[0][0])


def test_a_fold_trains_alike_resident_on_cuda_and_through_the_loader(gpu_data, tmp_path, exact):
    resident = train(gpu_data, tmp_path / "resident")  # automatic on CUDA
    loader = train(gpu_data, tmp_path / "loader", resident=False)
    cpu = train(gpu_data, tmp_path / "cpu", device="cpu")
    # the same batches on the same device: only the resize's rounding differs
    assert_alike(resident, loader, agree=0.96, cosine=0.995, rel=5e-3)
    # another device's kernels: the sums in other orders, through four epochs of training
    assert_alike(resident, cpu, agree=0.9, cosine=0.98, rel=2e-2)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_amp_trains_in_the_dtype_asked_for(gpu_data, tmp_path, monkeypatch, dtype):
    scalers = []
    real = torch.amp.GradScaler

    def spy(*args, **kwargs):
        scalers.append(real(*args, **kwargs))
        return scalers[-1]

    monkeypatch.setattr(torch.amp, "GradScaler", spy)
    config = with_overrides(CONFIG, amp=True, amp_dtype=dtype)
    wanted = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    assert loop._autocast(torch.device("cuda"), config) == ("cuda", wanted)
    amp = train(gpu_data, tmp_path / dtype, config)
    assert [s.is_enabled() for s in scalers] == [dtype == "fp16"]  # the scaler for fp16 only
    fp32 = train(gpu_data, tmp_path / "fp32")
    # AMP's rounding, through four epochs: a model of its own (as a larger micro-batch gives,
    # whose embeddings differed too much to compare), which must learn the same classes
    assert_alike(amp, fp32, agree=0.8, cosine=None, rel=0.25)


def test_an_fp16_step_that_overflowed_is_skipped(gpu_data):
    config = with_overrides(CONFIG, amp=True, amp_dtype="fp16", effective_batch=16)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    with H5Dataset(gpu_data.h5) as data:
        fit = build_fit(data, TrainingFold(gpu_data.h5, TRAIN, TEST), config, dev, True)
        fit.model.to(dev, memory_format=fit.layout)
        scaler = torch.amp.GradScaler("cuda")
        batches = iter(loop._loader(fit.train_set, config, shuffle_seed=0))

        def backward():
            rgb, depth, labels = next(batches)
            with torch.autocast("cuda", dtype=torch.float16):
                logits, embedding = fit.run_model(rgb, depth)
                loss, _ = fit.criterion(logits.float(), embedding.float(), labels)
            scaler.scale(loss).backward()

        def state():
            return [p.detach().clone() for p in [*fit.model.parameters(), fit.criterion.centers]]

        before, scale = state(), scaler.get_scale()
        backward()
        poisoned = next(p for p in fit.model.parameters() if p.grad is not None)
        poisoned.grad.view(-1)[0] = float("inf")
        loop._step(fit, scaler)
        assert scaler.get_scale() == scale / 2  # the overflow lowered the scale...
        assert all(torch.equal(a, b) for a, b in zip(state(), before, strict=True))  # ...no step
        backward()
        loop._step(fit, scaler)  # a clean step moves the weights and the centers
        after = state()
        assert not torch.equal(after[0], before[0]) and not torch.equal(after[-1], before[-1])


def test_two_folds_at_once_on_cuda_through_evaluate(gpu_data, tmp_path):
    out = tmp_path / "run"
    args = ["evaluate", "--dataset", str(gpu_data.h5), "--protocol", "bu3dfe-full"]
    args += ["--manifests", str(gpu_data.manifests), "--out", str(out), "--preset", "tiny"]
    args += ["--epochs", "2", "--max-folds", "2", "--jobs", "2", "--device", "cuda"]
    result = CliRunner().invoke(main, [*args, "--fused-adamw"])
    assert result.exit_code == 0, result.output
    speed = {"compile": "off", "fused_adamw": True, "channels_last": True}
    for fold in (0, 1):
        record = json.loads((out / "bu3dfe-full" / "0" / str(fold) / "result.json").read_text())
        assert record["status"] == "ok" and record["device"] == "cuda"
        assert record["speed"] == speed
        assert all(np.isfinite(epoch["loss_total"]) for epoch in record["history"])
    assert json.loads((out / "run.json").read_text())["speed"] == speed


def test_channels_last_on_cuda_changes_no_prediction(gpu_data, tmp_path, monkeypatch, exact):
    built = fits(monkeypatch)
    last = train(gpu_data, tmp_path / "last", speed=Speed(channels_last=True))
    contiguous = train(gpu_data, tmp_path / "contiguous", speed=Speed(channels_last=False))
    assert [fit.layout for fit in built] == [torch.channels_last, torch.contiguous_format]
    conv = next(p for p in built[0].model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    assert_alike(last, contiguous, agree=0.96, cosine=0.995, rel=5e-3)


def test_a_fold_killed_and_resumed_on_cuda_ends_as_uninterrupted(gpu_data, tmp_path, exact):
    whole = train(gpu_data, tmp_path / "whole")
    train(gpu_data, tmp_path / "resumed", stop_after=1)
    assert "cuda_rng" in torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)
    resumed = train(gpu_data, tmp_path / "resumed")
    # within the rounding of CUDA's atomic adds (the centers' gradient), which no seed fixes
    assert_alike(resumed, whole, agree=1.0, cosine=1 - 1e-4, rel=1e-4)
    # the check can fail: resumed without the CUDA generator, dropout draws other masks
    train(gpu_data, tmp_path / "reseeded", stop_after=1)
    saved = torch.load(tmp_path / "reseeded" / CHECKPOINT, weights_only=True)
    del saved["cuda_rng"]
    torch.save(saved, tmp_path / "reseeded" / CHECKPOINT)
    reseeded = train(gpu_data, tmp_path / "reseeded")
    assert reseeded.history[1]["loss_total"] != pytest.approx(
        resumed.history[1]["loss_total"], rel=1e-4
    )


@pytest.mark.parametrize(
    "lever", ["compile", "cuda-graphs", "fused-adamw", "channels-last-off", "micro-batch"]
)
def test_each_lever_runs_and_trains_the_same_fold(gpu_data, tmp_path, monkeypatch, lever):
    """Speed levers: the same run within floating-point reordering. The micro-batch (a
    configuration choice: batch-norm sees other batches) only within a looser tolerance."""
    built = fits(monkeypatch)
    base = train(gpu_data, tmp_path / "base")
    config, speed = CONFIG, Speed()
    if lever in ("compile", "cuda-graphs"):
        torch.compiler.reset()  # no graphs of an earlier test (dynamo keeps 8 per function)
        speed = Speed(compile="on" if lever == "compile" else lever)
    elif lever == "fused-adamw":
        speed = Speed(fused_adamw=True)
    elif lever == "channels-last-off":
        speed = Speed(channels_last=False)
    else:
        config = with_overrides(CONFIG, batch_size=32)
    ours = train(gpu_data, tmp_path / lever, config, speed=speed)
    fit = built[-1]
    applied = {
        "compile": fit.forward is not fit.model,
        "cuda-graphs": fit.cuda_graphs and fit.forward is not fit.model,
        "fused-adamw": fit.optimizer.defaults["fused"] is True,
        "channels-last-off": fit.layout == torch.contiguous_format,
        "micro-batch": fit.accumulate == 1 and built[0].accumulate == 2,
    }
    assert applied[lever]
    if lever == "micro-batch":  # other batch-norm statistics: another model (on the CPU
        # the embeddings' cosines fell to 0.28), which must still learn the same classes
        assert_alike(ours, base, agree=0.7, cosine=None, rel=0.5)
    else:
        assert_alike(ours, base, agree=0.9, cosine=0.98, rel=3e-2)
