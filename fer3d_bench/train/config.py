"""What one training run is: the model, the loss, the optimiser schedule; presets and ablations.

Nothing here imports torch, so a run can be planned, checked and recorded on a machine (a login
node, a CI runner) that never trains. Defaults follow the paper (the README lists each setting
with its source); `as_dict()` is what run.json and result.json record, `config_from_dict` reads
it back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from fer3d_bench.errors import ConfigError
from fer3d_bench.records.io import read_toml
from fer3d_bench.records.job import FULL

DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when available
# "rgb-attention": RGB alone with its own attention; named apart from 0.9's "rgb-only" (no
# attention at all), so that a run folder of the old network is refused, not silently resumed
FUSIONS = ("attention", "sum", "rgb-attention")
HEADS = ("transformer", "pool")


@dataclass(frozen=True)
class ModelConfig:
    # TensorFlow-ported B2 ("same" padding, batch-norm eps 1e-3), as HSEmotion's face models were
    # built (docs: fer3d-bench weights inspect); any timm name with features_only support
    backbone: str = "tf_efficientnet_b2"
    token_dim: int = 256
    heads: int = 4
    layers: int = 4  # transformer encoder layers
    mlp_hidden: int = 512  # classifier hidden size, also the transformer feed-forward size
    attention_modules: int = 4  # S, per modality
    attention_reduction: int = 8  # channel reduction inside each attention module
    dropout: float = 0.1
    fusion: str = "attention"  # "attention" | "sum" | "rgb-attention"
    head: str = "transformer"  # "transformer" | "pool" (ablation: average pooling)
    num_classes: int = 7
    input_size: int = 260

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ConfigError(f"model fusion {self.fusion!r}: expected one of {FUSIONS}")
        if self.head not in HEADS:
            raise ConfigError(f"model head {self.head!r}: expected one of {HEADS}")
        if self.token_dim % self.heads:
            raise ConfigError(
                f"model token_dim {self.token_dim} is not divisible by heads {self.heads}"
            )
        if self.attention_modules < 1:
            raise ConfigError(f"model attention_modules {self.attention_modules}: expected >= 1")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms and the centers' learning rate (defaults: the original's)."""

    lambda1: float = 0.01
    lambda2: float = 10.0
    alpha: float = 0.5


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 20  # the paper: "in every setup ... 20 epochs on each fold"
    batch_size: int = 16  # per step; gradients accumulate up to effective_batch
    effective_batch: int = 128
    lr_backbone: float = 1e-4  # one-cycle maximum, backbones
    lr_head: float = 1e-3  # one-cycle maximum, fusion network and classifier
    final_lr: float = 1e-6  # both groups end here
    pct_start: float = 0.3
    weight_decay: float = 0.01
    augment: bool = True
    seed: int = 0
    workers: int = 0  # DataLoader workers; at most the torch threads of the job, less one
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with a grad scaler

    def as_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, TrainConfig] = {
    # the paper's configuration: for GPUs (a protocol's [train] table adds its own settings)
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
        # test accuracy on the sample (0.43 with, 0.64 without); it is tested on its own
        augment=False,
    ),
}

ABLATIONS: dict[str, dict] = {  # the paper's tables VI, VII and VIII, each changing one thing
    # table VI: depth removed; the RGB stream keeps its own spatial attention
    "rgb-only": {"model.fusion": "rgb-attention"},
    # table VII, row 1 (the paper's Eq. 8): softmax(MLP(AvgPool(X_rgb + X_depth)))
    "sum-no-transformer": {"model.fusion": "sum", "model.head": "pool"},
    # table VII, row 2: no cross-modal attention, transformer kept
    "sum-fusion": {"model.fusion": "sum"},
    # table VII, row 3: attention kept, average pooling instead of the transformer
    "no-transformer": {"model.head": "pool"},
    # table VIII: cross-entropy alone (the centers still follow the features, unused)
    "ce": {"loss.lambda1": 0.0},
    # table VIII: cross-entropy + center loss, without the island term
    "center": {"loss.lambda2": 0.0},
}

PAPER = "paper"  # the preset of the paper's configuration


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
        raise ConfigError(f"unknown configuration key: {exc}") from None


def variant_configs(
    preset: str,
    overrides: Mapping | None = None,
    ablations: Sequence[str] = (),
    protocol_train: Mapping | None = None,
) -> dict[str, TrainConfig]:
    """Variant name -> config: "full" (the preset with the overrides), then each ablation of it.

    The one place where presets, overrides and ablations are composed, for `train` and
    `evaluate` alike. `protocol_train` is a protocol's `[train]` table, the paper's settings for
    that protocol (batch 256 for the full 5-fold setup): it goes onto the `paper` preset before
    the user's overrides, and is left out for the other presets, which are deliberately smaller.
    """
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is not one of {sorted(PRESETS)}")
    unknown = sorted(set(ablations) - set(ABLATIONS))
    if unknown:
        raise ConfigError(f"unknown ablation(s) {unknown}; known: {sorted(ABLATIONS)}")
    base = with_overrides(PRESETS[preset], **applied_protocol_train(preset, protocol_train))
    base = with_overrides(base, **dict(overrides or {}))
    return {FULL: base} | {name: with_overrides(base, **ABLATIONS[name]) for name in ablations}


def applied_protocol_train(preset: str, protocol_train: Mapping | None) -> dict:
    """The part of a protocol's `[train]` table a run with `preset` takes (all of it for paper)."""
    return dict(protocol_train or {}) if preset == PAPER else {}


def protocol_train(protocol) -> dict:
    """A protocol's `[train]` table (`splits.Protocol.train_table`) as dotted overrides, its
    keys checked here, where training reads it; errors name the protocol file."""
    where = f"{protocol.source or protocol.name} [train]"
    return dict(sorted(table_overrides(protocol.train_table, where).items()))


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


@dataclass(frozen=True)
class ConfigFile:
    """A `--config` TOML: its preset (or None), its overrides, and where it came from."""

    preset: str | None
    overrides: dict
    source: dict  # {"file", "sha256"} and, for a file `tune` wrote, "tuned": its [tuned] table


def load_config_file(path: Path) -> ConfigFile:
    """A TOML config: `preset`, training keys, [model]/[loss] tables, and optionally the
    [tuned] table `fer3d-bench tune` writes (provenance only, recorded with the run); unknown
    keys are refused by name."""
    path = Path(path)
    data = read_toml(path, what="config file")
    preset = data.pop("preset", None)
    tuned = data.pop("tuned", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"{path}: preset {preset!r} is not one of {sorted(PRESETS)}")
    if tuned is not None and not isinstance(tuned, dict):
        raise ConfigError(f"{path}: [tuned] must be a table (what `fer3d-bench tune` wrote)")
    overrides = table_overrides(data, f"{path}", "preset, tuned, ")
    source = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return ConfigFile(preset, overrides, source | ({"tuned": tuned} if tuned else {}))


def table_overrides(data: Mapping, where: str, also: str = "") -> dict:
    """Dotted overrides from a TOML table (`[model]`/`[loss]` sub-tables or dotted keys);
    unknown keys are refused, naming `where` they were found."""
    overrides = {}
    for key, value in data.items():
        if isinstance(value, dict) and key in ("model", "loss"):
            overrides.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            overrides[key] = value
    unknown = sorted(set(overrides) - set(config_keys()))
    if unknown:
        raise ConfigError(
            f"{where}: unknown configuration key(s) {', '.join(unknown)}; "
            f"known: {also}{', '.join(config_keys())}"
        )
    return overrides
