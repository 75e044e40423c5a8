"""What one training run is: the model, the loss, the optimiser schedule; presets and ablations.

Nothing here imports torch, so a run can be planned, checked and recorded on a machine (a login
node, a CI runner) that never trains. Defaults follow the paper (the README lists each setting
with its source); `as_dict()` is what run.json and result.json record, `config_from_dict` reads
it back.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from fer3d_bench.errors import ConfigError
from fer3d_bench.records.io import read_toml
from fer3d_bench.records.job import FULL
from fer3d_bench.records.run import RECORDED_IF_SET

DEVICES = ("auto", "cpu", "cuda")  # auto: CUDA when available
# "rgb-attention": RGB alone with its own attention; named apart from 0.9's "rgb-only" (no
# attention at all), so that a run folder of the old network is refused, not silently resumed
FUSIONS = ("attention", "sum", "rgb-attention")
HEADS = ("transformer", "pool")
# the AMP dtype on CUDA: "auto" (bf16 where the GPU supports it, else fp16 with a grad scaler:
# what `amp` did before the choice existed), or either one
AMP_DTYPES = ("auto", "bf16", "fp16")
# The timm architectures a model may be built on: the paper's (the TensorFlow-ported B2 the
# HSEmotion face models were trained as), the plain B2, the B0s (the cpu-small preset, and the
# HSEmotion B0 files), and timm's tiny test network (the tiny preset). Any other name is refused
# wherever a configuration is read: an `hf-hub:`/`local-dir:` name would make timm fetch or read
# files, and no other architecture is checked to work with the attention and the tokens.
BACKBONES = (
    "tf_efficientnet_b2",
    "efficientnet_b2",
    "tf_efficientnet_b0",
    "efficientnet_b0",
    "test_efficientnet",
)


@dataclass(frozen=True)
class Rule:
    """What one configuration field accepts: a type and, for numbers, a range.

    `kind` is "int" (a whole number, not a boolean), "number" (an int or a finite float),
    "bool", or "choice" (one of `choices`). Upper bounds stand only where a value sizes memory
    or time (a small file must not ask for a model or a batch that takes all memory), far above
    any sensible value; a huge loss weight or learning rate only makes the fold diverge, which
    the trainer reports.
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False
    choices: tuple = ()

    def accepts(self, value: object) -> bool:
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "bool":
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if isinstance(value, float) and not math.isfinite(value):
            return False
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return low_ok and high_ok

    def expected(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        what = "a whole number" if self.kind == "int" else "a finite number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {_bound(self.low)}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {_bound(self.high)}")
        return f"{what} {' and '.join(bounds)}".rstrip()


_WEIGHT = Rule("number", 0)  # a loss weight: zero turns its term off
_RATE = Rule("number", 0, low_open=True)  # a learning rate
RULES: dict[str, Rule] = {  # every key a configuration may set
    "model.backbone": Rule("choice", choices=BACKBONES),
    "model.token_dim": Rule("int", 1, 4096),
    "model.heads": Rule("int", 1, 64),
    "model.layers": Rule("int", 1, 64),
    "model.mlp_hidden": Rule("int", 1, 16384),
    "model.attention_modules": Rule("int", 1, 64),
    "model.attention_reduction": Rule("int", 1, 4096),
    "model.dropout": Rule("number", 0, 1, high_open=True),
    "model.fusion": Rule("choice", choices=FUSIONS),
    "model.head": Rule("choice", choices=HEADS),
    "model.num_classes": Rule("int", 1, 10_000),
    "model.input_size": Rule("int", 32, 1024),  # the last stage is 32x smaller: 1 px at 32
    "loss.lambda1": _WEIGHT,
    "loss.lambda2": _WEIGHT,
    "loss.alpha": Rule("number", 0, 1),  # the centers' learning rate
    "epochs": Rule("int", 1, 100_000),
    "batch_size": Rule("int", 1, 65_536),
    "effective_batch": Rule("int", 1, 1 << 20),
    "lr_backbone": _RATE,
    "lr_head": _RATE,
    # the one-cycle schedule's start and end, both groups (at most each group's maximum: checked
    # in TrainConfig); zero is allowed: a schedule from and to a standstill
    "min_lr": Rule("number", 0),
    "pct_start": Rule("number", 0, 1, low_open=True, high_open=True),
    "weight_decay": _WEIGHT,
    "augment": Rule("bool"),
    "seed": Rule("int", 0, 2**32 - 1),  # numpy's seeds
    "workers": Rule("int", 0, 1024),
    "amp": Rule("bool"),
    "amp_dtype": Rule("choice", choices=AMP_DTYPES),
}


def _bound(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def check_value(key: str, value: object) -> None:
    """ConfigError "KEY = VALUE: expected ..." unless RULES[key] accepts `value`."""
    rule = RULES[key]
    if not rule.accepts(value):
        raise ConfigError(f"{key} = {_shown(value)}: expected {rule.expected()}")


def _shown(value: object) -> str:
    """A value as a message shows it: its repr cut short, or what kind of container it is."""
    if isinstance(value, dict | list):
        return "a table" if isinstance(value, dict) else "an array"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_fields(config: object, prefix: str) -> None:
    for item in fields(config):
        check_value(prefix + item.name, getattr(config, item.name))


@dataclass(frozen=True)
class ModelConfig:
    # TensorFlow-ported B2 ("same" padding, batch-norm eps 1e-3), as HSEmotion's face models were
    # built (docs: fer3d-bench weights inspect); one of BACKBONES
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
        """Every field checked (RULES) wherever a config is made: a preset, an override, a
        --config file, a result.json read back."""
        _check_fields(self, "model.")
        if self.token_dim % self.heads:
            raise ConfigError(
                f"model.heads = {self.heads}: expected a divisor of model.token_dim "
                f"({self.token_dim})"
            )


@dataclass(frozen=True)
class LossConfig:
    """Weights of the loss terms and the centers' learning rate (defaults: the original's)."""

    lambda1: float = 0.01
    lambda2: float = 10.0
    alpha: float = 0.5

    def __post_init__(self) -> None:
        _check_fields(self, "loss.")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 20  # the paper: "in every setup ... 20 epochs on each fold"
    batch_size: int = 16  # per step; gradients accumulate up to effective_batch
    effective_batch: int = 128
    lr_backbone: float = 1e-4  # one-cycle maximum, backbones
    lr_head: float = 1e-3  # one-cycle maximum, fusion network and classifier
    # one-cycle minimum, both groups: each starts here, rises to its maximum and comes back
    # down here (Table III: "min LR 1e-6" for both). Up to 0.15 it started at torch's default
    # max / 25, as the authors' code does, and only ended here (as `final_lr`)
    min_lr: float = 1e-6
    pct_start: float = 0.3
    weight_decay: float = 0.01
    augment: bool = True
    seed: int = 0
    workers: int = 0  # DataLoader workers; at most the torch threads of the job, less one
    amp: bool = True  # CUDA only: bf16 where supported, else fp16 with a grad scaler
    # which AMP dtype (AMP_DTYPES); part of the identity, since fp16 and bf16 round differently.
    # Like `amp`, CUDA only: the CPU trains in float32 whatever these say
    amp_dtype: str = "auto"

    def __post_init__(self) -> None:
        """Every field checked; the model and loss check theirs. Gradients accumulate whole
        batches, so the effective batch is a multiple of the batch (another would silently
        train with a different one than recorded)."""
        if not isinstance(self.model, ModelConfig) or not isinstance(self.loss, LossConfig):
            raise ConfigError("model and loss must be tables of settings")
        for item in fields(self):
            if item.name not in ("model", "loss"):
                check_value(item.name, getattr(self, item.name))
        if self.min_lr > min(self.lr_backbone, self.lr_head):
            raise ConfigError(
                f"min_lr = {_shown(self.min_lr)}: expected at most lr_backbone "
                f"({_shown(self.lr_backbone)}) and lr_head ({_shown(self.lr_head)}); the "
                "one-cycle schedule rises from it to each"
            )
        if not self.amp and self.amp_dtype != "auto":
            raise ConfigError(
                f"amp_dtype = {self.amp_dtype!r}: expected 'auto' with amp = false (there is "
                "no AMP to choose a dtype for)"
            )
        if self.effective_batch % self.batch_size:
            raise ConfigError(
                f"effective_batch = {self.effective_batch}: expected a multiple of batch_size "
                f"({self.batch_size}); gradients accumulate whole batches"
            )

    def as_dict(self) -> dict:
        """What run.json and result.json record, and the config hash is taken of: every field,
        except those of `RECORDED_IF_SET` at their default (absent, as before they existed)."""
        values = asdict(self)
        unset = {k for k, v in RECORDED_IF_SET.items() if values.get(k) == v}
        return {k: v for k, v in values.items() if k not in unset}


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
# keys a configuration recorded by an earlier version holds under another name. Up to 0.15 the
# schedule's end was `final_lr` (it started at torch's max / 25): read back (`explain` builds
# the model of an old fold), it becomes `min_lr`; a resume compares the recorded keys
# themselves, so an old folder is refused, never continued under the new schedule
RENAMED_KEYS = {"final_lr": "min_lr"}


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


def config_from_dict(values: object, where: Path | str | None = None) -> TrainConfig:
    """The TrainConfig that `as_dict()` gave `values` (as stored in result.json), every field
    checked: a ConfigError, naming `where` (the file the values were read from) if given."""
    try:
        if not isinstance(values, Mapping):
            raise ConfigError("the configuration is not a table of settings")
        values = dict(values)
        model, loss = values.pop("model", {}), values.pop("loss", {})
        for old, new in RENAMED_KEYS.items():
            if old in values and new not in values:
                values[new] = values.pop(old)
        if not isinstance(model, Mapping) or not isinstance(loss, Mapping):
            raise ConfigError("the configuration's model and loss are not tables of settings")
        keys = [*values, *(f"model.{k}" for k in model), *(f"loss.{k}" for k in loss)]
        unknown = sorted(set(map(str, keys)) - set(config_keys()))
        if unknown:
            raise ConfigError(f"unknown configuration key(s) {', '.join(unknown)}")
        return TrainConfig(model=ModelConfig(**model), loss=LossConfig(**loss), **values)
    except ConfigError as err:
        if where is None:
            raise
        raise ConfigError(f"{where}: {err}") from None


def config_keys() -> list[str]:
    """Every key a config file or override may set: `epochs`, `model.backbone`, ..."""
    base = TrainConfig()
    keys = [k.name for k in fields(base) if k.name not in ("model", "loss")]
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
    keys are refused by name, and every value is checked (RULES) before it is used: errors
    name the file, the key and what was expected. (read_toml refuses what is no regular file,
    too large or nested too deep.)"""
    path = Path(path)
    data = read_toml(path, what="config file")
    preset = data.pop("preset", None)
    tuned = data.pop("tuned", None)
    if preset is not None and not (isinstance(preset, str) and preset in PRESETS):
        raise ConfigError(
            f"{path}: preset = {_shown(preset)}: expected one of {', '.join(PRESETS)}"
        )
    if tuned is not None and not _flat_table(tuned):
        raise ConfigError(
            f"{path}: [tuned] must be a table of strings, numbers and booleans (what "
            "`fer3d-bench tune` wrote)"
        )
    overrides = table_overrides(data, f"{path}", "preset, tuned, ")
    source = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return ConfigFile(preset, overrides, source | ({"tuned": tuned} if tuned else {}))


def _flat_table(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(v, str | int | float | bool) for v in value.values()
    )


def table_overrides(data: Mapping, where: str, also: str = "") -> dict:
    """Dotted overrides from a TOML table (`[model]`/`[loss]` sub-tables or dotted keys);
    unknown keys and values that break a rule (RULES, and the two rules between fields the
    table sets both of) are refused, naming `where` they were found."""
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
    try:
        for key, value in overrides.items():
            check_value(key, value)
        _check_pairs(overrides)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return overrides


def _check_pairs(overrides: Mapping) -> None:
    """The rules between two fields, where one table sets both (with only one, the other comes
    from the preset, and the config made of them is checked when it is made)."""
    if {"model.token_dim", "model.heads"} <= overrides.keys():
        ModelConfig(token_dim=overrides["model.token_dim"], heads=overrides["model.heads"])
    if {"batch_size", "effective_batch"} <= overrides.keys():
        TrainConfig(
            batch_size=overrides["batch_size"], effective_batch=overrides["effective_batch"]
        )
    if {"amp", "amp_dtype"} <= overrides.keys():
        TrainConfig(amp=overrides["amp"], amp_dtype=overrides["amp_dtype"])
    for rate in ("lr_backbone", "lr_head"):
        if {"min_lr", rate} <= overrides.keys() and overrides["min_lr"] > overrides[rate]:
            raise ConfigError(
                f"min_lr = {_shown(overrides['min_lr'])}: expected at most {rate} "
                f"({_shown(overrides[rate])}); the one-cycle schedule rises from it to each"
            )
