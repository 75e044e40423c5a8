"""A training run's pieces, built from the seed: datasets, model, loss, optimisers, schedule;
and the same pieces continued from a checkpoint, or put into one (with the history and the
epoch of best test accuracy so far, so that a resumed run ends as an uninterrupted one).

The speed levers (`environment.Speed`) are applied here too: the memory layout, the compiled
forward and the fused optimiser. None of them enters the checkpoint's signature, so a fold
started with some may be resumed with others."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
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
from fer3d_bench.train.environment import Speed
from fer3d_bench.train.fold import TrainingFold
from fer3d_bench.train.losses import FerLoss, centers_optimizer, class_weights
from fer3d_bench.train.model import FerNet


@dataclass
class BestEpoch:
    """The first epoch that reached the best test accuracy so far, with its predictions: what
    `--epoch-selection best-test` reports for the fold (optimistic: the test fold chooses it).
    A later epoch replaces it only with a strictly higher accuracy."""

    epoch: int  # 1-based
    accuracy: float
    predictions: dict[str, int]  # sample id -> predicted dataset class index (test samples)


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
    forward: Callable  # the model, or its torch.compile'd form (same parameters, same state)
    cuda_graphs: bool = False  # `forward` replays CUDA graphs: each call starts a new step
    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best: BestEpoch | None = None  # None before the first epoch

    def run_model(self, rgb: torch.Tensor, depth: torch.Tensor):
        """(logits, embedding) of a batch, through the compiled forward where there is one.

        With CUDA graphs the outputs live in the graph's memory until its next replay; marking
        each call a new step tells torch that the previous outputs are no longer read.
        """
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        return self.forward(rgb, depth)


def build_fit(
    data: H5Dataset,
    fold: TrainingFold,
    config: TrainConfig,
    dev: torch.device,
    resident: bool,
    speed: Speed | None = None,
) -> Fit:
    """Datasets (resident on `dev` if asked), model, loss, optimisers and schedule, freshly
    initialised from the seed, with the speed levers asked for (default: none, and
    channels-last on CUDA only)."""
    speed = speed or Speed()
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
    # channels-last: faster on GPUs, slower on CPUs (unless the placement says otherwise)
    last = dev.type == "cuda" if speed.channels_last is None else speed.channels_last
    layout = torch.channels_last if last else torch.contiguous_format
    weights = class_weights(label_map[data.labels[train_indices]], len(names)).to(dev)
    criterion = FerLoss(len(names), config.model.token_dim, weights, config.loss).to(dev)
    optimizer = torch.optim.AdamW(
        [
            {"params": model.backbone_parameters(), "lr": config.lr_backbone},
            {"params": model.head_parameters(), "lr": config.lr_head},
        ],
        weight_decay=config.weight_decay,
        fused=speed.fused_adamw or None,  # None: torch's own choice, as before the lever
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
        forward=compiled(model, speed.compile),
        cuda_graphs=speed.compile == "cuda-graphs",
    )


def compiled(model: FerNet, mode: str) -> Callable:
    """The model's forward as `Speed.compile` asks: itself ("off"), or torch.compile'd.

    Compiling happens on the first call (timed apart by benchmarks/gpu_bench.py). Shapes are
    kept static (`dynamic=False`): a fold has at most two batch sizes per pass (the full one and
    the epoch's last), each its own graph, which CUDA graphs need anyway. The compiled module
    shares the model's parameters, so checkpoints are written from the model itself and keep
    their keys.
    """
    if mode == "off":
        return model
    graphs = mode == "cuda-graphs"
    return torch.compile(model, mode="reduce-overhead" if graphs else None, dynamic=False)


def one_cycle(optimizer, max_lrs: list[float], steps: int, config: TrainConfig):
    """torch's one-cycle schedule (cosine, no momentum cycle) from `config.min_lr` up to each
    group's maximum and back down to `config.min_lr` (Table III: min LR 1e-6 for both groups).

    OneCycleLR starts every group at its max / `div_factor` (one factor for all groups, so it
    cannot start two maxima at one minimum) and ends it at that / `final_div_factor`; its phases
    read both ends from each group's "initial_lr" and "min_lr", so these are set there. Its
    constructor already took step 0 at the old start: step 0 lies at the first phase's start,
    "initial_lr", so that is what each group's rate (and the scheduler's record of it) becomes.
    """
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lrs,
        total_steps=max(steps, 1),
        pct_start=config.pct_start,
        anneal_strategy="cos",
        cycle_momentum=False,
    )
    for group in optimizer.param_groups:
        group["initial_lr"] = group["min_lr"] = group["lr"] = config.min_lr
    scheduler.base_lrs = [config.min_lr for _ in optimizer.param_groups]
    scheduler._last_lr = [config.min_lr for _ in optimizer.param_groups]  # get_last_lr()
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
    problem = problem or _best_problem(saved, fit)
    if problem:
        raise RecordDamaged(checkpoint, f"does not fit this run ({problem}); delete it")
    try:
        fit.model.load_state_dict(saved["model"])
        fit.criterion.load_state_dict(saved["criterion"])
        fit.optimizer.load_state_dict(saved["optimizer"])
        _keep_fused(fit.optimizer, fit.optimizer.defaults.get("fused"))
        fit.centers_opt.load_state_dict(saved["centers_optimizer"])
        fit.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"].cpu())
        if fit.device.type == "cuda" and isinstance(saved.get("cuda_rng"), torch.Tensor):
            torch.cuda.set_rng_state(saved["cuda_rng"].cpu(), fit.device)
        problem = _state_problem(fit.optimizer) or _state_problem(fit.centers_opt)
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if problem:
        raise RecordDamaged(checkpoint, f"does not fit this model ({problem})")
    fit.epoch = saved["epoch"]
    fit.history = [renamed_history(e) for e in saved["history"]]
    fit.best = None if saved["best_test"] is None else BestEpoch(**saved["best_test"])


def _keep_fused(optimizer: torch.optim.Optimizer, fused: bool | None) -> None:
    """The fused choice of this run, not the checkpoint's: `load_state_dict` takes each group's
    options from the file, `fused` among them, so a fold started with --fused-adamw would stay
    fused when resumed without it (and the reverse). AdamW's step counts move to where the
    chosen implementation keeps them: on the parameter's device when fused, else on the CPU."""
    for group in optimizer.param_groups:
        group["fused"] = fused
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if isinstance(state.get("step"), torch.Tensor):
                where = param.device if fused else torch.device("cpu")
                state["step"] = state["step"].to(device=where, dtype=torch.float32)


def _best_problem(saved: dict, fit: Fit) -> str | None:
    """What keeps a saved best-test record from being one of this fold's epochs, or None.

    `read_checkpoint` checked its layout and that it is the first epoch of the history's best
    test accuracy; here its predictions must be of this fold's test samples, as many, each a
    class this classifier has, and their accuracy the one recorded.
    """
    if "best_test" not in saved:  # written before 0.16: the earlier epochs' best is lost
        return "it holds no best-test epoch (written before 0.16)"
    best = saved["best_test"]
    if best is None:
        return None
    indices = [int(i) for i in fit.test_set.indices]
    labels = {fit.data.sample_ids[i]: int(fit.data.labels[i]) for i in indices}
    predictions = best["predictions"]
    if predictions.keys() != labels.keys():
        return (
            f"its best-test predictions name {len(predictions)} samples, not exactly this "
            f"fold's {len(labels)} test samples"
        )
    if not set(predictions.values()) <= set(fit.outputs):
        return "its best-test predictions hold classes this classifier does not have"
    accuracy = sum(predictions[s] == k for s, k in labels.items()) / max(len(labels), 1)
    if accuracy != best["accuracy"]:
        return f"its best-test predictions score {accuracy}, not the {best['accuracy']} recorded"
    return None


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
    """What a checkpoint of `fit` holds after its latest epoch. On CUDA that includes the
    device's generator (`cuda_rng`): dropout draws from it there, so a fold resumed without it
    would draw other masks than the uninterrupted one (a checkpoint without it, written on the
    CPU or before 0.17, resumes with the generator as seeded)."""
    cuda = {"cuda_rng": torch.cuda.get_rng_state(fit.device)} if fit.device.type == "cuda" else {}
    return cuda | {
        "model": fit.model.state_dict(),
        "criterion": fit.criterion.state_dict(),
        "optimizer": fit.optimizer.state_dict(),
        "centers_optimizer": fit.centers_opt.state_dict(),
        "scheduler": fit.scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "epoch": fit.epoch,
        "history": fit.history,
        "best_test": None if fit.best is None else asdict(fit.best),
        "signature": fit.signature,
        "normalisation": fit.norm.as_dict(),
    }


def _digest(indices: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()
