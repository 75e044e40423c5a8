"""The training loop of the reference model: AdamW, one-cycle, accumulation, AMP, exact resume.

`train` is set-up, resume, epochs, checkpoints. Each epoch trains on the fold's training
samples, then scores its test samples (for the curves and the final predictions; the test fold
never chooses anything; the last epoch's pass also gives each test sample's embedding, for the
report's t-SNE), appends one JSON line to `metrics.jsonl` and writes `checkpoint.pt`
atomically. A run started again in the same folder with the same configuration resumes from it
and ends with the same weights as an uninterrupted run (CPU, same machine).

Run folders are shared and copied from clusters, so a checkpoint is untrusted input: it holds
only tensors and plain containers and is read with `weights_only=True` (a pickle that would
build any other object is refused unread), its layout and signature are checked before any of
it is used, and `metrics.jsonl` is rewritten from the checkpoint's history on resume, so an
epoch logged just before a kill is not logged twice. One process trains in a folder at a time
(its lock, `fer3d_bench.processes.folder_lock`).

On a GPU the fold's samples are read once onto it and batched and augmented there
(`train.data.ResidentDataset`), so that several folds trained at once keep it busy; elsewhere a
DataLoader reads them from the file. Both give the same batches, so the same run either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import Normalisation, fold_statistics
from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import atomic_path, inside
from fer3d_bench.processes import folder_lock
from fer3d_bench.progress import progress as progress_bar
from fer3d_bench.records.io import RecordDamaged, read_jsonl
from fer3d_bench.records.result import renamed_history
from fer3d_bench.train.config import TrainConfig
from fer3d_bench.train.data import AugmentConfig, FerTorchDataset, ResidentBatches, ResidentDataset
from fer3d_bench.train.losses import FerLoss, centers_optimizer, class_weights
from fer3d_bench.train.model import FerNet, load_backbone_weights

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
# what a checkpoint holds, and the type each entry must have before any of it is used
_CHECKPOINT_KEYS = {
    "model": dict,
    "criterion": dict,
    "optimizer": dict,
    "centers_optimizer": dict,
    "scheduler": dict,
    "rng": torch.Tensor,
    "epoch": int,
    "history": list,
    "signature": dict,
    "normalisation": dict,
}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise Fer3dError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


@dataclass
class TrainResult:
    history: list[dict]
    checkpoint: Path
    test_accuracy: float
    predictions: dict[str, int]  # sample id -> predicted class index (test samples)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)  # sample id -> (D,) float32
    left_out: list[str] = field(default_factory=list)  # flagged training samples not used


@dataclass
class _Fit:
    """Everything one training run holds between epochs."""

    data: H5Dataset
    config: TrainConfig
    device: torch.device
    layout: torch.memory_format
    train_set: FerTorchDataset  # or ResidentDataset, its subclass
    test_set: FerTorchDataset
    outputs: list[int]  # dataset class index of each classifier output
    norm: Normalisation
    model: FerNet
    criterion: FerLoss
    optimizer: torch.optim.Optimizer
    centers_opt: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    steps: int
    accumulate: int
    signature: dict
    epoch: int = 0
    history: list[dict] = field(default_factory=list)


def train(
    data_path: Path,
    train_indices: np.ndarray,
    test_indices: np.ndarray,
    out: Path,
    config: TrainConfig,
    *,
    device: str = "auto",
    backbone_weights: Path | None = None,
    trust_pickle: bool = False,
    allow_architecture_mismatch: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    classes: Sequence[str] | None = None,
    exclude_flagged: bool = False,
    resident: bool | None = None,
) -> TrainResult:
    """Train on `train_indices`, score `test_indices` after each epoch; resume from `out`.

    `stop_after` ends the call after that epoch, as an interruption would, leaving the
    checkpoint a later call resumes from. `classes` (names, default all the dataset's) sets the
    classifier's outputs: a six-class protocol gets a six-way classifier, so it can never
    predict a class the protocol leaves out. Predictions are dataset class indices either way.
    `exclude_flagged` leaves the training samples flagged low-quality by render-depth out (the
    test samples stay the protocol's); their ids are returned in `left_out`. `resident`: hold
    the fold's samples on the device and augment there (None: on CUDA only); the history,
    predictions and weights are the same either way.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    torch.manual_seed(config.seed)
    checkpoint = out / CHECKPOINT
    with folder_lock(out), H5Dataset(data_path) as data:
        train_indices, left_out = _training_indices(data, train_indices, exclude_flagged)
        resident = dev.type == "cuda" if resident is None else resident
        fit = _setup(data, train_indices, test_indices, config, dev, classes, resident)
        if backbone_weights:
            report = load_backbone_weights(
                fit.model, backbone_weights, trust_pickle, allow_architecture_mismatch
            )
            with atomic_path(out / "weights_report.json") as tmp:
                tmp.write_text(json.dumps(asdict(report), indent=1))
        fit.model.to(dev, memory_format=fit.layout)
        if checkpoint.exists():
            _resume(fit, checkpoint)
        _rewrite_metrics(out / METRICS, fit.history)
        metrics = inside(out, out / METRICS)  # appended to below: never through a link out
        amp = _autocast(dev, config.amp)
        scaler = torch.amp.GradScaler("cuda", enabled=amp is not None and amp[1] == torch.float16)
        predictions: dict[str, int] = {}
        embeddings: dict[str, np.ndarray] = {}
        last = config.epochs if stop_after is None else min(stop_after, config.epochs)
        for epoch in range(fit.epoch, last):
            started = time.perf_counter()
            record = _train_epoch(fit, epoch, amp, scaler, progress)
            test_accuracy, predictions, embeddings = predict(fit.model, fit.test_set, fit)
            record |= {
                "test_accuracy": test_accuracy,
                "lr_backbone": fit.optimizer.param_groups[0]["lr"],
                "lr_head": fit.optimizer.param_groups[1]["lr"],
                "seconds": time.perf_counter() - started,
            }
            fit.history.append(record)
            fit.epoch = epoch + 1
            with open(metrics, "a") as log:
                log.write(json.dumps(record, sort_keys=True) + "\n")
            _save_checkpoint(fit, checkpoint)
        if not predictions:  # resumed after the last epoch: score the test fold once more
            _, predictions, embeddings = predict(fit.model, fit.test_set, fit)
    final = fit.history[-1]["test_accuracy"] if fit.history else float("nan")
    return TrainResult(fit.history, checkpoint, final, predictions, embeddings, left_out)


def _training_indices(data: H5Dataset, indices: np.ndarray, exclude_flagged: bool):
    """(training indices, ids left out): without the flagged samples if asked."""
    if not exclude_flagged:
        return indices, []
    indices = np.asarray(indices)
    flagged = data.flagged[indices]
    left_out = sorted(data.sample_ids[i] for i in indices[flagged])
    if flagged.all():
        raise Fer3dError("every training sample of this fold is flagged low-quality")
    return indices[~flagged], left_out


def _setup(data, train_indices, test_indices, config, dev, classes, resident=False) -> _Fit:
    """Datasets (resident on `dev` if asked), model, loss, optimisers and schedule, freshly
    initialised from the seed."""
    names = list(data.classes) if classes is None else list(classes)
    outputs, label_map = class_outputs(data, names, train_indices, test_indices)
    norm = fold_statistics(data, train_indices)
    size = config.model.input_size
    augment = AugmentConfig() if config.augment else None
    kind, where = (ResidentDataset, {"device": dev}) if resident else (FerTorchDataset, {})
    train_set = kind(data, train_indices, norm, size, augment, config.seed, label_map, **where)
    test_set = kind(data, test_indices, norm, size, None, config.seed, label_map, **where)
    model = FerNet(replace(config.model, num_classes=len(names)))
    # channels-last: faster on GPUs, slower on CPUs
    layout = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    weights = class_weights(label_map[data.labels[train_indices]], len(names)).to(dev)
    criterion = FerLoss(len(names), config.model.token_dim, weights, config.loss).to(dev)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.backbone_parameters(), "lr": config.lr_backbone},
            {"params": model.head_parameters(), "lr": config.lr_head},
        ],
        weight_decay=config.weight_decay,
    )
    accumulate = max(1, config.effective_batch // config.batch_size)
    batches = math.ceil(len(train_set) / config.batch_size)
    steps = config.epochs * math.ceil(batches / accumulate)
    signature = {
        "config": config.as_dict(),
        "train": _digest(train_indices),
        "test": _digest(test_indices),
        "classes": names,
    }
    return _Fit(
        data=data,
        config=config,
        device=dev,
        layout=layout,
        train_set=train_set,
        test_set=test_set,
        outputs=outputs,
        norm=norm,
        model=model,
        criterion=criterion,
        optimizer=optimizer,
        centers_opt=centers_optimizer(criterion, config.loss.alpha),
        scheduler=one_cycle(optimizer, [config.lr_backbone, config.lr_head], steps, config),
        steps=steps,
        accumulate=accumulate,
        signature=signature,
    )


def _resume(fit: _Fit, checkpoint: Path) -> None:
    """Continue from the checkpoint of an interrupted run of exactly this fold and config."""
    saved = read_checkpoint(checkpoint, fit.device)
    signature = dict(saved["signature"])
    if "val" in signature:  # written before 0.8, when the test fold was called "val"
        signature["test"] = signature.pop("val")
    if signature != fit.signature:
        raise Fer3dError(f"{checkpoint} belongs to another configuration or fold")
    try:
        fit.model.load_state_dict(saved["model"])
        fit.criterion.load_state_dict(saved["criterion"])
        fit.optimizer.load_state_dict(saved["optimizer"])
        fit.centers_opt.load_state_dict(saved["centers_optimizer"])
        fit.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"].cpu())
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        problem = str(exc).strip().splitlines()[0]
        raise RecordDamaged(checkpoint, f"does not fit this model ({problem})") from None
    fit.epoch = saved["epoch"]
    fit.history = [renamed_history(e) for e in saved["history"]]


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint's content, read without running anything it holds; its layout checked.

    Errors name the file: one that would build objects other than tensors and plain containers
    (a crafted pickle) is refused without being loaded; a truncated or damaged one, or one
    missing an entry, is reported as damaged.
    """
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only load failed" in problem.lower():
            raise RecordDamaged(
                path,
                "holds objects other than tensors and plain containers, so it was not loaded "
                "(loading it could run code); delete it to train this fold from scratch",
            ) from None
        raise RecordDamaged(
            path, f"damaged or truncated checkpoint ({problem}); delete it to train again"
        ) from None
    wrong = [
        key
        for key, kind in _CHECKPOINT_KEYS.items()
        if not isinstance(saved, dict) or not isinstance(saved.get(key), kind)
    ]
    if wrong:
        raise RecordDamaged(path, f"not a fer3d-bench checkpoint (missing or wrong: {wrong})")
    history = saved["history"]
    if saved["epoch"] != len(history) or not all(isinstance(e, dict) for e in history):
        raise RecordDamaged(path, "its epoch count and its history disagree")
    return saved


def _rewrite_metrics(path: Path, history: list[dict]) -> None:
    """metrics.jsonl as the checkpoint's history says: one line per finished epoch.

    A kill between an epoch's metrics line and its checkpoint leaves a line the resumed run
    would log again; the checkpoint is what the run continues from, so it decides.
    """
    if not history and not path.exists():
        return
    try:
        if path.exists() and [renamed_history(r) for r in read_jsonl(path)] == history:
            return  # as it should be: leave the file (and its bytes) alone
    except RecordDamaged:  # a line cut short by the kill: rewritten below
        pass
    lines = [json.dumps(record, sort_keys=True) + "\n" for record in history]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(lines))


def _train_epoch(fit: _Fit, epoch: int, amp, scaler, progress: bool) -> dict:
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
            logits, embedding = fit.model(rgb, depth)
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


def _step(fit: _Fit, scaler) -> None:
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
    if fit.scheduler.last_epoch < fit.steps - 1:  # the last step runs at final_lr
        fit.scheduler.step()


def one_cycle(optimizer, max_lrs: list[float], steps: int, config: TrainConfig):
    """torch's one-cycle schedule, with every group ending at `config.final_lr`."""
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lrs,
        total_steps=max(steps, 1),
        pct_start=config.pct_start,
        anneal_strategy="cos",
        cycle_momentum=False,
    )
    for group in optimizer.param_groups:
        group["min_lr"] = config.final_lr  # OneCycleLR reads this per group
    return scheduler


def class_outputs(data: H5Dataset, names: list[str], *index_sets) -> tuple[list[int], np.ndarray]:
    """(dataset class index of each output, dataset label -> output index or -1)."""
    unknown = [n for n in names if n not in data.classes]
    if unknown or len(set(names)) != len(names):
        raise Fer3dError(f"classes {names} are not distinct classes of {data.path}")
    outputs = [list(data.classes).index(n) for n in names]
    label_map = np.full(len(data.classes), -1, dtype=np.int64)
    label_map[outputs] = np.arange(len(outputs))
    for indices in index_sets:
        stray = sorted({data.classes[k] for k in data.labels[indices] if label_map[k] < 0})
        if stray:
            raise Fer3dError(f"the fold holds samples of {stray}, which are not among {names}")
    return outputs, label_map


@torch.no_grad()
def predict(
    model, dataset: FerTorchDataset, fit: _Fit
) -> tuple[float, dict[str, int], dict[str, np.ndarray]]:
    """Accuracy, predictions (dataset class indices) and embeddings (float32) on a dataset,
    without augmentation; the embeddings come from the same forward pass as the predictions."""
    model.eval()
    predictions: dict[str, int] = {}
    embeddings: dict[str, np.ndarray] = {}
    correct = 0
    loader = _loader(dataset, fit.config, shuffle_seed=None)
    offset = 0
    for rgb, depth, labels in loader:
        logits, embedding = model(
            rgb.to(fit.device, memory_format=fit.layout),
            depth.to(fit.device, memory_format=fit.layout),
        )
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


def _autocast(dev: torch.device, wanted: bool):
    if not wanted or dev.type != "cuda":
        return None
    return ("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def _digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()


def _save_checkpoint(fit: _Fit, path: Path) -> None:
    state = {
        "model": fit.model.state_dict(),
        "criterion": fit.criterion.state_dict(),
        "optimizer": fit.optimizer.state_dict(),
        "centers_optimizer": fit.centers_opt.state_dict(),
        "scheduler": fit.scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "epoch": fit.epoch,
        "history": fit.history,
        "signature": fit.signature,
        "normalisation": fit.norm.as_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
