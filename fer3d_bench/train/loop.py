"""The training loop of the reference model: AdamW, one-cycle, accumulation, AMP, exact resume.

Defaults follow the seed paper (README lists each with its source). Each epoch appends one JSON
line of metrics to `metrics.jsonl` and writes `checkpoint.pt` atomically; a run started again in
the same folder with the same configuration resumes from it and ends with the same weights as an
uninterrupted run (CPU, same machine).
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
from tqdm import tqdm

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.errors import Fer3dError
from fer3d_bench.io import atomic_path
from fer3d_bench.train.data import AugmentConfig, FerTorchDataset, Normalisation, fold_statistics
from fer3d_bench.train.losses import FerLoss, LossConfig, centers_optimizer, class_weights
from fer3d_bench.train.model import FerNet, ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 30
    batch_size: int = 16  # per step; gradients accumulate up to effective_batch
    effective_batch: int = 128
    lr_backbone: float = 1e-4  # one-cycle maximum, backbones
    lr_head: float = 1e-3  # one-cycle maximum, fusion network and classifier
    final_lr: float = 1e-6  # both groups end here
    pct_start: float = 0.3
    weight_decay: float = 0.01
    augment: bool = True
    seed: int = 0
    workers: int = 0
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with a grad scaler

    def as_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, TrainConfig] = {
    # the paper's configuration: for GPUs
    "paper": TrainConfig(),
    # the reference architecture at reduced size, for a CPU
    "cpu-small": TrainConfig(
        model=ModelConfig(backbone="efficientnet_b0", input_size=112, token_dim=128, layers=2),
        epochs=8,
        batch_size=16,
        effective_batch=32,
    ),
    # timm's tiny test network: for tests and the demo
    "tiny": TrainConfig(
        model=ModelConfig(
            backbone="test_efficientnet",
            input_size=64,
            token_dim=64,
            heads=4,
            layers=2,
            mlp_hidden=128,
        ),
        epochs=14,
        batch_size=16,
        effective_batch=16,
        lr_backbone=3e-3,
        lr_head=3e-3,
        # at 64 px, with about a hundred training samples and 14 epochs, augmentation cost
        # validation accuracy on the sample (0.43 with, 0.64 without); it is tested on its own
        augment=False,
    ),
}


ABLATIONS = {  # the seed paper's tables VI and VII
    "rgb-only": {"model.fusion": "rgb-only"},
    "sum-fusion": {"model.fusion": "sum"},
    "no-transformer": {"model.head": "pool"},
}


def with_overrides(config: TrainConfig, **changes) -> TrainConfig:
    """The config with top-level or `model.`/`loss.` fields replaced; unknown keys are refused."""
    model, loss, top = {}, {}, {}
    for key, value in changes.items():
        target, name = (model, key[6:]) if key.startswith("model.") else (top, key)
        if key.startswith("loss."):
            target, name = loss, key[5:]
        target[name] = value
    try:
        return replace(
            config,
            model=replace(config.model, **model),
            loss=replace(config.loss, **loss),
            **top,
        )
    except TypeError as exc:
        raise Fer3dError(f"unknown configuration key: {exc}") from None


def config_from_dict(values: dict) -> TrainConfig:
    """The TrainConfig that `as_dict()` gave `values` (as stored in result.json)."""
    values = dict(values)
    model = ModelConfig(**values.pop("model"))
    loss = LossConfig(**values.pop("loss"))
    return TrainConfig(model=model, loss=loss, **values)


def config_keys() -> list[str]:
    """Every key a config file or override may set: `epochs`, `model.backbone`, ..."""
    base = TrainConfig()
    keys = [k for k in base.as_dict() if k not in ("model", "loss")]
    keys += [f"model.{k}" for k in asdict(base.model)] + [f"loss.{k}" for k in asdict(base.loss)]
    return sorted(keys)


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
    val_accuracy: float
    predictions: dict[str, int]  # sample id -> predicted class index (validation)
    left_out: list[str] = field(default_factory=list)  # flagged training samples not used


def train(
    data_path: Path,
    train_indices: np.ndarray,
    val_indices: np.ndarray,
    out: Path,
    config: TrainConfig,
    *,
    device: str = "auto",
    backbone_weights: Path | None = None,
    trust_pickle: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    classes: Sequence[str] | None = None,
    exclude_flagged: bool = False,
) -> TrainResult:
    """Train on `train_indices`, validate on `val_indices` each epoch; resume from `out`.

    `stop_after` ends the call after that epoch, as an interruption would, leaving the
    checkpoint a later call resumes from. `classes` (names, default all the dataset's) sets the
    classifier's outputs: a six-class protocol gets a six-way classifier, so it can never
    predict a class the protocol leaves out. Predictions are dataset class indices either way.
    `exclude_flagged` leaves the training samples flagged low-quality by render-depth out (the
    test samples stay the protocol's); their ids are returned in `left_out`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    torch.manual_seed(config.seed)
    data = H5Dataset(data_path)
    left_out: list[str] = []
    if exclude_flagged:
        flagged = data.flagged[train_indices]
        left_out = sorted(data.sample_ids[i] for i in np.asarray(train_indices)[flagged])
        train_indices = np.asarray(train_indices)[~flagged]
        if not len(train_indices):
            data.close()
            raise Fer3dError("every training sample of this fold is flagged low-quality")
    names = list(data.classes) if classes is None else list(classes)
    outputs, label_map = _class_outputs(data, names, train_indices, val_indices)
    norm = fold_statistics(data, train_indices)
    size = config.model.input_size
    augment = AugmentConfig() if config.augment else None
    train_set = FerTorchDataset(data, train_indices, norm, size, augment, config.seed, label_map)
    val_set = FerTorchDataset(data, val_indices, norm, size, None, config.seed, label_map)
    model = FerNet(replace(config.model, num_classes=len(names)))
    if backbone_weights:
        from fer3d_bench.train.model import load_backbone_weights

        report = load_backbone_weights(model, backbone_weights, trust_pickle)
        (out / "weights_report.json").write_text(json.dumps(asdict(report), indent=1))
    layout = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    model = model.to(dev, memory_format=layout)  # channels-last: faster on GPUs, slower on CPUs
    weights = class_weights(label_map[data.labels[train_indices]], len(names)).to(dev)
    criterion = FerLoss(len(names), config.model.token_dim, weights, config.loss).to(dev)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.backbone_parameters(), "lr": config.lr_backbone},
            {"params": model.head_parameters(), "lr": config.lr_head},
        ],
        weight_decay=config.weight_decay,
    )
    centers_opt = centers_optimizer(criterion, config.loss.alpha)
    accumulate = max(1, config.effective_batch // config.batch_size)
    batches = math.ceil(len(train_set) / config.batch_size)
    steps = config.epochs * math.ceil(batches / accumulate)
    scheduler = one_cycle(optimizer, [config.lr_backbone, config.lr_head], steps, config)
    state = {"epoch": 0, "history": []}
    checkpoint = out / "checkpoint.pt"
    signature = {
        "config": config.as_dict(),
        "train": _digest(train_indices),
        "val": _digest(val_indices),
        "classes": names,
    }
    if checkpoint.exists():
        saved = torch.load(checkpoint, map_location=dev, weights_only=False)
        if saved["signature"] != signature:
            raise Fer3dError(f"{checkpoint} belongs to another configuration or fold")
        model.load_state_dict(saved["model"])
        criterion.load_state_dict(saved["criterion"])
        optimizer.load_state_dict(saved["optimizer"])
        centers_opt.load_state_dict(saved["centers_optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"])
        state = {"epoch": saved["epoch"], "history": saved["history"]}
    amp = _autocast(dev, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp is not None and amp[1] == torch.float16)
    predictions: dict[str, int] = {}
    last = config.epochs if stop_after is None else min(stop_after, config.epochs)
    for epoch in range(state["epoch"], last):
        started = time.perf_counter()
        train_set.set_epoch(epoch)
        loader = _loader(train_set, config, shuffle_seed=config.seed * 1000 + epoch)
        model.train()
        sums = {"ce": 0.0, "center": 0.0, "island": 0.0, "total": 0.0}
        correct = seen = 0
        bar = tqdm(
            loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False
        )
        for k, (rgb, depth, labels) in enumerate(bar):
            rgb, depth = rgb.to(dev, memory_format=layout), depth.to(dev, memory_format=layout)
            labels = labels.to(dev)
            cast = torch.autocast(dev.type, dtype=amp[1]) if amp else contextlib.nullcontext()
            with cast:
                logits, embedding = model(rgb, depth)
                loss, parts = criterion(logits.float(), embedding.float(), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} in epoch {epoch + 1}")
            scaler.scale(loss / accumulate).backward()
            for name in sums:
                sums[name] += parts[name] * len(labels)
            correct += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            if (k + 1) % accumulate == 0 or k + 1 == len(loader):
                criterion.rescale_center_grads()
                scaler.step(optimizer)
                scaler.update()
                centers_opt.step()
                optimizer.zero_grad(set_to_none=True)
                centers_opt.zero_grad(set_to_none=True)
                if scheduler.last_epoch < steps - 1:  # the last step runs at final_lr
                    scheduler.step()
        val_acc, predictions = evaluate(model, val_set, data, config, dev, layout, outputs)
        record = {
            "epoch": epoch + 1,
            **{f"loss_{name}": value / max(seen, 1) for name, value in sums.items()},
            "train_accuracy": correct / max(seen, 1),
            "val_accuracy": val_acc,
            "lr_backbone": optimizer.param_groups[0]["lr"],
            "lr_head": optimizer.param_groups[1]["lr"],
            "seconds": time.perf_counter() - started,
        }
        state["history"].append(record)
        with open(out / "metrics.jsonl", "a") as log:
            log.write(json.dumps(record, sort_keys=True) + "\n")
        _save(
            checkpoint,
            model,
            criterion,
            optimizer,
            centers_opt,
            scheduler,
            epoch + 1,
            state["history"],
            signature,
            norm,
        )
    if not predictions:
        _, predictions = evaluate(model, val_set, data, config, dev, layout, outputs)
    data.close()
    final = state["history"][-1]["val_accuracy"] if state["history"] else float("nan")
    return TrainResult(state["history"], checkpoint, final, predictions, left_out)


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


def _class_outputs(data: H5Dataset, names: list[str], *index_sets) -> tuple[list[int], np.ndarray]:
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
def evaluate(model, dataset: FerTorchDataset, data: H5Dataset, config, dev, layout, outputs=None):
    """Accuracy and predictions (dataset class indices) on a dataset, without augmentation."""
    model.eval()
    predictions: dict[str, int] = {}
    correct = 0
    loader = _loader(dataset, config, shuffle_seed=None)
    offset = 0
    for rgb, depth, labels in loader:
        logits, _ = model(rgb.to(dev, memory_format=layout), depth.to(dev, memory_format=layout))
        guess = logits.float().argmax(1).cpu()
        correct += int((guess == labels).sum())
        for j, value in enumerate(guess.tolist()):
            index = value if outputs is None else outputs[value]
            predictions[data.sample_ids[int(dataset.indices[offset + j])]] = index
        offset += len(labels)
    return correct / max(len(dataset), 1), predictions


def _loader(dataset, config: TrainConfig, shuffle_seed: int | None):
    generator = None
    if shuffle_seed is not None:
        generator = torch.Generator().manual_seed(shuffle_seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=shuffle_seed is not None,
        generator=generator,
        num_workers=config.workers,
        persistent_workers=False,
    )


def _autocast(dev: torch.device, wanted: bool):
    if not wanted or dev.type != "cuda":
        return None
    return ("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)


def _digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()


def _save(
    path,
    model,
    criterion,
    optimizer,
    centers_opt,
    scheduler,
    epoch,
    history,
    signature,
    norm: Normalisation,
) -> None:
    state = {
        "model": model.state_dict(),
        "criterion": criterion.state_dict(),
        "optimizer": optimizer.state_dict(),
        "centers_optimizer": centers_opt.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "epoch": epoch,
        "history": history,
        "signature": signature,
        "normalisation": norm.as_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
