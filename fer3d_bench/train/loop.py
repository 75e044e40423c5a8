"""The training loop of the reference model: AdamW, one-cycle, accumulation, AMP, exact resume.

`train` takes a fold (`train.fold`), a configuration and where to train, builds the run's pieces
(`train.setup`), resumes from the folder's checkpoint, then trains. Each epoch trains on the
fold's training samples, then scores its test samples (for the curves and the final
predictions; the last epoch's pass also gives each test sample's embedding, for the report's
t-SNE), appends one JSON line to `metrics.jsonl` and writes `checkpoint.pt` atomically
(`train.checkpoint`). The test fold chooses nothing in training: no weights, no stopping, no
setting. It is also kept which epoch scored best on it (the first to reach the best accuracy)
with that epoch's predictions, so that a run may report that epoch instead of the last
(`--epoch-selection best-test`: what the paper's code reports, labelled optimistic wherever it
appears); that choice of the reported epoch is all it ever chooses. A run started again in the same
folder with the same configuration resumes from the checkpoint and ends with the same weights
and the same best epoch as an uninterrupted run (CPU, same machine); `metrics.jsonl` is
rewritten from the checkpoint's history on resume, so an epoch logged just before a kill is not
logged twice. One process trains in a folder at a time (its lock,
`fer3d_bench.processes.folder_lock`).

On a GPU the fold's samples are read once onto it and batched and augmented there
(`train.data.ResidentDataset`), so that several folds trained at once keep it busy; elsewhere a
DataLoader reads them from the file. Both give the same batches, so the same run either way.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import atomic_path, output_folder
from fer3d_bench.processes import folder_lock
from fer3d_bench.progress import progress as progress_bar
from fer3d_bench.records.io import json_text
from fer3d_bench.train.checkpoint import (
    CHECKPOINT,
    METRICS,
    append_metrics,
    rewrite_metrics,
    write_checkpoint,
)
from fer3d_bench.train.config import TrainConfig
from fer3d_bench.train.data import FerTorchDataset, ResidentBatches, ResidentDataset
from fer3d_bench.train.device import torch_device
from fer3d_bench.train.environment import Placement
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.setup import BestEpoch, Fit, build_fit, checkpoint_state, resume
from fer3d_bench.weights.backbone import load_backbone_weights
from fer3d_bench.weights.request import PretrainedWeights

WEIGHTS_REPORT = "weights_report.json"


@dataclass
class TrainResult:
    history: list[dict]
    checkpoint: Path
    test_accuracy: float
    predictions: dict[str, int]  # sample id -> predicted class index (test samples)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # sample id -> (D,) float32
    # the first epoch of the best test accuracy, with its accuracy and predictions (optimistic:
    # chosen on the test fold); None only when no epoch ran
    best_test: BestEpoch | None = None


def train(
    fold: TrainingFold,
    out: Path,
    config: TrainConfig,
    placement: Placement,
    weights: PretrainedWeights | None = None,
    stop_after: int | None = None,
    resident: bool | None = None,
) -> TrainResult:
    """Train on the fold's training samples, score its test samples after each epoch; resume
    from `out`. `placement` must be resolved (`train.device.resolve`).

    The classifier has one output per class of `fold.classes` (a six-class protocol gets a
    six-way classifier, so it can never predict a class the protocol leaves out); predictions
    are dataset class indices either way. `stop_after` ends the call after that epoch, as an
    interruption would, leaving the checkpoint a later call resumes from. `resident`: hold the
    fold's samples on the device and augment there (None: on CUDA only); the history,
    predictions and weights are the same either way. The result's `predictions` are the last
    epoch's; `best_test` is the first epoch of the best test accuracy, kept across a resume.
    """
    out = output_folder(out)
    dev = torch_device(placement)
    torch.manual_seed(config.seed)
    checkpoint = out / CHECKPOINT
    with folder_lock(out), H5Dataset(fold.dataset) as data:
        resident = dev.type == "cuda" if resident is None else resident
        fit = build_fit(data, fold, config, dev, resident, placement.speed)
        if weights is not None and weights.path is not None:
            report = load_backbone_weights(fit.model.backbones(), config.model.backbone, weights)
            with atomic_path(out / WEIGHTS_REPORT) as tmp:
                tmp.write_text(json_text(asdict(report)))
        fit.model.to(dev, memory_format=fit.layout)
        if checkpoint.exists():
            resume(fit, checkpoint)
        rewrite_metrics(out / METRICS, fit.history)
        amp = _autocast(dev, config)
        scaler = torch.amp.GradScaler("cuda", enabled=amp is not None and amp[1] == torch.float16)
        predictions: dict[str, int] = {}
        embeddings: dict[str, np.ndarray] = {}
        last = config.epochs if stop_after is None else min(stop_after, config.epochs)
        for epoch in range(fit.epoch, last):
            started = time.perf_counter()
            record = _train_epoch(fit, epoch, amp, scaler, placement.progress)
            test_accuracy, predictions, embeddings = predict(fit.test_set, fit)
            if fit.best is None or test_accuracy > fit.best.accuracy:  # ties: the earlier epoch
                fit.best = BestEpoch(epoch + 1, test_accuracy, dict(predictions))
            record |= {
                "test_accuracy": test_accuracy,
                "lr_backbone": fit.optimizer.param_groups[0]["lr"],
                "lr_head": fit.optimizer.param_groups[1]["lr"],
                "seconds": time.perf_counter() - started,
            }
            fit.history.append(record)
            fit.epoch = epoch + 1
            append_metrics(out, record)
            write_checkpoint(checkpoint, checkpoint_state(fit))
            if placement.progress:
                tqdm.write(epoch_line(out, record, config.epochs, fit.best), file=sys.stderr)
        if not predictions:  # resumed after the last epoch: score the test fold once more
            _, predictions, embeddings = predict(fit.test_set, fit)
    final = fit.history[-1]["test_accuracy"] if fit.history else float("nan")
    return TrainResult(fit.history, checkpoint, final, predictions, embeddings, fit.best)


def epoch_line(out: Path, record: dict, epochs: int, best: BestEpoch | None) -> str:
    """One line per finished epoch, so a log shows a fold at work: "bu3dfe-full/0/1 epoch 3/14:
    loss 1.2345, train accuracy 0.512, test accuracy 0.450 (best so far 0.475 at epoch 2),
    12.3 s" (the fold's folder, as `evaluate` lays it out; the best is shown, never used)."""
    where = "/".join(Path(out).parts[-3:])
    best_words = f" (best so far {best.accuracy:.3f} at epoch {best.epoch})" if best else ""
    return (
        f"{where} epoch {record['epoch']}/{epochs}: loss {record['loss_total']:.4f}, "
        f"train accuracy {record['train_accuracy']:.3f}, test accuracy "
        f"{record['test_accuracy']:.3f}{best_words}, {record['seconds']:.1f} s"
    )


def _train_epoch(fit: Fit, epoch: int, amp, scaler, progress: bool) -> dict:
    """One pass over the training samples; the epoch's loss terms and training accuracy."""
    config, dev, layout = fit.config, fit.device, fit.layout
    fit.train_set.set_epoch(epoch)
    loader = _loader(fit.train_set, config, shuffle_seed=config.seed * 1000 + epoch)
    fit.model.train()
    sums = {"ce": 0.0, "center": 0.0, "island": 0.0, "total": 0.0}
    correct = seen = 0
    desc = f"epoch {epoch + 1}/{config.epochs}"
    for k, (rgb, depth, labels) in enumerate(
        progress_bar(loader, desc=desc, unit="batch", enabled=progress, leave=False)
    ):
        rgb, depth = rgb.to(dev, memory_format=layout), depth.to(dev, memory_format=layout)
        labels = labels.to(dev)
        cast = torch.autocast(dev.type, dtype=amp[1]) if amp else contextlib.nullcontext()
        with cast:
            logits, embedding = fit.run_model(rgb, depth)
            loss, parts = fit.criterion(logits.float(), embedding.float(), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch + 1}")
        scaler.scale(loss / _window(k, len(loader), fit.accumulate)).backward()
        for name in sums:
            sums[name] += parts[name] * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        if (k + 1) % fit.accumulate == 0 or k + 1 == len(loader):
            _step(fit, scaler)
    return {
        "epoch": epoch + 1,
        **{f"loss_{name}": value / max(seen, 1) for name, value in sums.items()},
        "train_accuracy": correct / max(seen, 1),
    }


def _window(k: int, batches: int, accumulate: int) -> int:
    """How many batches the accumulation window of batch `k` holds (of `batches` in the epoch).

    Each batch's loss is divided by this, so every step's gradient is the mean over its own
    batches; the last window of an epoch may hold fewer than `accumulate`.
    """
    return min(accumulate, batches - k // accumulate * accumulate)


def _step(fit: Fit, scaler) -> None:
    """One optimiser step at the end of an accumulation window.

    Under fp16 the gradients are the loss scale (65,536 at first) times too large: the
    scaler unscales the model's before AdamW and skips its step on inf/NaN. The centers' SGD step
    is not inside `scaler.step`, so their gradients are unscaled here too, and they move only
    when the scaler did not skip: `update()` lowers the scale exactly when it found inf/NaN in
    either optimizer's gradients. With the scaler disabled (fp32, bf16) unscaling does nothing,
    the scale stays 1 and both always step.
    """
    scaler.unscale_(fit.centers_opt)
    fit.criterion.rescale_center_grads()
    scale = scaler.get_scale()
    scaler.step(fit.optimizer)
    scaler.update()
    if scaler.get_scale() >= scale:
        fit.centers_opt.step()
    fit.optimizer.zero_grad(set_to_none=True)
    fit.centers_opt.zero_grad(set_to_none=True)
    if fit.scheduler.last_epoch < fit.steps - 1:  # the last step runs at min_lr
        fit.scheduler.step()


@torch.no_grad()
def predict(
    dataset: FerTorchDataset, fit: Fit
) -> tuple[float, dict[str, int], dict[str, np.ndarray]]:
    """Accuracy, predictions (dataset class indices) and embeddings (float32) of the fit's
    model on a dataset, without augmentation; the embeddings come from the same forward pass
    as the predictions."""
    fit.model.eval()
    predictions: dict[str, int] = {}
    embeddings: dict[str, np.ndarray] = {}
    correct = 0
    loader = _loader(dataset, fit.config, shuffle_seed=None)
    offset = 0
    for rgb, depth, labels in loader:
        rgb = rgb.to(fit.device, memory_format=fit.layout)
        depth = depth.to(fit.device, memory_format=fit.layout)
        logits, embedding = fit.run_model(rgb, depth)
        guess = logits.float().argmax(1).cpu()
        vectors = embedding.float().cpu().numpy()
        correct += int((guess == labels.cpu()).sum())
        for j, value in enumerate(guess.tolist()):
            sample = fit.data.sample_ids[int(dataset.indices[offset + j])]
            predictions[sample] = fit.outputs[value]
            embeddings[sample] = vectors[j]
        offset += len(labels)
    return correct / max(len(dataset), 1), predictions, embeddings


def _loader(dataset, config: TrainConfig, shuffle_seed: int | None):
    """The batches of `dataset` (shuffled by `shuffle_seed`): taken from a resident dataset on
    its device, else read by a DataLoader (in the same order)."""
    if isinstance(dataset, ResidentDataset):
        return ResidentBatches(dataset, config.batch_size, shuffle_seed)
    generator = None
    if shuffle_seed is not None:
        generator = torch.Generator().manual_seed(shuffle_seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle_seed is not None,
        generator=generator,
        num_workers=min(config.workers, torch.get_num_threads() - 1),  # within the allocation
        persistent_workers=False,
    )


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(dev: torch.device, config: TrainConfig):
    """("cuda", dtype) of the configuration's AMP, or None: no AMP asked, or not on CUDA.

    The CPU trains in float32 whatever `amp` says (as it always has); an `amp_dtype` chosen
    there is said to be unused rather than refused, since the configuration (and so the fold's
    identity) must not depend on the machine that happens to train it. bf16 on a GPU without it
    is refused.
    """
    if not config.amp:
        return None
    if dev.type != "cuda":
        if config.amp_dtype != "auto":
            warnings.warn(
                f"amp_dtype = {config.amp_dtype!r} is CUDA only: this fold trains on "
                f"{dev.type} in float32 (its configuration keeps the setting)",
                stacklevel=3,
            )
        return None
    bf16 = torch.cuda.is_bf16_supported()
    if config.amp_dtype == "bf16" and not bf16:
        raise Fer3dError(
            f"amp_dtype = 'bf16': {torch.cuda.get_device_name(dev)} does not support bf16 "
            "(choose 'fp16' or 'auto')"
        )
    if config.amp_dtype == "auto":
        return ("cuda", torch.bfloat16 if bf16 else torch.float16)
    return ("cuda", AMP_DTYPES[config.amp_dtype])
