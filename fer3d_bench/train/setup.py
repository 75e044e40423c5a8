"""A training run's pieces, built from the seed: datasets, model, loss, optimisers, schedule;
and the same pieces continued from a checkpoint, or put into one."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from fer3d_bench.dataset import H5Dataset
from fer3d_bench.dataset.statistics import Normalisation, fold_statistics
from fer3d_bench.errors import Fer3dError
from fer3d_bench.records.io import RecordDamaged, shown
from fer3d_bench.records.result import renamed_history
from fer3d_bench.train.checkpoint import read_checkpoint
from fer3d_bench.train.config import TrainConfig
from fer3d_bench.train.data import AugmentConfig, FerTorchDataset, ResidentDataset, class_outputs
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.losses import FerLoss, centers_optimizer, class_weights
from fer3d_bench.train.model import FerNet


@dataclass
class Fit:
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


def build_fit(
    data: H5Dataset, fold: TrainingFold, config: TrainConfig, dev: torch.device, resident: bool
) -> Fit:
    """Datasets (resident on `dev` if asked), model, loss, optimisers and schedule, freshly
    initialised from the seed."""
    train_indices, test_indices = fold.train, fold.test
    names = list(data.classes) if fold.classes is None else list(fold.classes)
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
    return Fit(
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


def resume(fit: Fit, checkpoint: Path) -> None:
    """Continue from the checkpoint of an interrupted run of exactly this fold and config.

    `read_checkpoint` checked its layout; what only this fit can tell is checked here before
    training goes on (a value that loads but does not fit would fail an epoch later, far from
    the file): its epoch within the configuration's, its learning-rate schedule this one's,
    and its optimiser state of its parameters' shapes. Each problem names the file.
    """
    saved = read_checkpoint(checkpoint, fit.device)
    signature = dict(saved["signature"])
    if "val" in signature:  # written before 0.8, when the test fold was called "val"
        signature["test"] = signature.pop("val")
    if signature != fit.signature:
        raise Fer3dError(f"{checkpoint} belongs to another configuration or fold")
    problem = None
    if saved["epoch"] > fit.config.epochs:
        problem = f"epoch {saved['epoch']} of a configuration of {fit.config.epochs} epochs"
    problem = problem or _schedule_problem(saved["scheduler"], fit.scheduler.state_dict())
    if problem:
        raise RecordDamaged(checkpoint, f"does not fit this run ({problem}); delete it")
    try:
        fit.model.load_state_dict(saved["model"])
        fit.criterion.load_state_dict(saved["criterion"])
        fit.optimizer.load_state_dict(saved["optimizer"])
        fit.centers_opt.load_state_dict(saved["centers_optimizer"])
        fit.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"].cpu())
        problem = _state_problem(fit.optimizer) or _state_problem(fit.centers_opt)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if problem:
        raise RecordDamaged(checkpoint, f"does not fit this model ({problem})")
    fit.epoch = saved["epoch"]
    fit.history = [renamed_history(e) for e in saved["history"]]


def _schedule_problem(saved: dict, fresh: dict) -> str | None:
    """What keeps a saved one-cycle schedule from being this configuration's, or None.

    Its length and phases follow from the configuration, so they must equal those of the one
    just built; its position must lie within it; any other entry both know must be of the same
    kind (an entry only one torch version knows is left to it).
    """
    for key in ("total_steps", "_schedule_phases"):
        if key in fresh and saved.get(key) != fresh[key]:
            return f"its schedule's {key} is {shown(saved.get(key))}, this one's {fresh[key]}"
    last = saved.get("last_epoch")
    if not isinstance(last, int) or isinstance(last, bool) or not 0 <= last <= fresh["total_steps"]:
        return f"its schedule's step {shown(last)} is not within its {fresh['total_steps']} steps"
    for key in saved.keys() & fresh.keys():
        if not _same_kind(saved[key], fresh[key]):
            return f"its schedule's {key} is {shown(saved[key])}"
    return None


def _same_kind(value: object, like: object) -> bool:
    numbers = (int, float)
    if isinstance(like, numbers) and not isinstance(like, bool):
        return isinstance(value, numbers) and not isinstance(value, bool)
    if isinstance(like, list):
        return isinstance(value, list) and len(value) == len(like)
    return type(value) is type(like)


def _state_problem(optimizer: torch.optim.Optimizer) -> str | None:
    """A loaded optimiser state that does not have its parameter's shape, or None."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for name, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    return (
                        f"optimiser state {name!r} of shape {list(value.shape)} for a "
                        f"parameter of shape {list(param.shape)}"
                    )
    return None


def checkpoint_state(fit: Fit) -> dict:
    """What a checkpoint of `fit` holds after its latest epoch."""
    return {
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


def _digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()
