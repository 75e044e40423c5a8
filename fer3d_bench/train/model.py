"""The reference RGB+depth network: two timm backbones, cross-modal attention, a token transformer.

Backbones are built through timm (never copied) with `features_only=True`, so the features come
from the last feature stage (for EfficientNet: after the last inverted-residual block, before the
conv head), which keeps a spatial grid for the attention and the tokens.
"""

from __future__ import annotations

import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer3d_bench.errors import ConfigError, Fer3dError
from fer3d_bench.train.config import ModelConfig
from fer3d_bench.weights.files import read_safetensors
from fer3d_bench.weights.known import is_safetensors, refuse_other_architecture


class SpatialAttention(nn.Module):
    """One LANet-style module: a cheap bottleneck that scores every position in (0, 1)."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.score = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1, bias=False),
            nn.BatchNorm2d(1),
            nn.Sigmoid(),
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.score(features)


class FerNet(nn.Module):
    """RGB and depth backbones, fused by attention (or sum), then tokens and a classifier.

    fusion="rgb-attention" (table VI) has no depth backbone and weighs the RGB features by the RGB
    stream's own attention map alone.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.rgb_backbone = build_backbone(config.backbone)
        self.depth_backbone = (
            None if config.fusion == "rgb-attention" else build_backbone(config.backbone)
        )
        channels = self.rgb_backbone.feature_info.channels()[-1]
        self.feature_channels = channels
        self.grid = feature_grid(self.rgb_backbone, config.input_size)
        if config.fusion in ("attention", "rgb-attention"):
            # rgb-only keeps the RGB stream's own attention, so that table VI removes depth alone
            self.rgb_attention = attention_modules(channels, config)
        if config.fusion == "attention":
            self.depth_attention = attention_modules(channels, config)
        self.project = nn.Conv2d(channels, config.token_dim, 1)
        if config.head == "transformer":
            self.class_token = nn.Parameter(torch.zeros(1, 1, config.token_dim))
            positions = self.grid[0] * self.grid[1] + 1
            self.position = nn.Parameter(torch.zeros(1, positions, config.token_dim))
            nn.init.trunc_normal_(self.class_token, std=0.02)
            nn.init.trunc_normal_(self.position, std=0.02)
            self.encoder = token_encoder(config)
            self.norm = nn.LayerNorm(config.token_dim)
        self.classifier = nn.Sequential(
            nn.Linear(config.token_dim, config.mlp_hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.mlp_hidden, config.num_classes),
        )

    def forward(self, rgb: Tensor, depth: Tensor) -> tuple[Tensor, Tensor]:
        """rgb (B,3,S,S), depth (B,1,S,S), both normalised -> (logits (B,C), embedding (B,D)).

        The embedding is what the center/island losses pull together: the class-token output,
        or the pooled token for head="pool".
        """
        f_rgb = self.rgb_backbone(rgb)[-1]
        if self.depth_backbone is None:
            fused = f_rgb * self.rgb_map(f_rgb)
        else:
            f_depth = self.depth_backbone(depth.expand(-1, 3, -1, -1))[-1]
            fused = self.fuse(f_rgb, f_depth)
        tokens = self.project(fused).flatten(2).transpose(1, 2)  # (B, H*W, D)
        if self.config.head == "pool":
            embedding = tokens.mean(dim=1)
        else:
            embedding = self.encode(tokens, fused.shape[-2:])
        return self.classifier(embedding), embedding

    def fuse(self, f_rgb: Tensor, f_depth: Tensor) -> Tensor:
        """Depth steers where to look in the RGB features; it is not mixed into their values."""
        if self.config.fusion == "sum":
            return f_rgb + f_depth
        return f_rgb * self.attention_map(f_rgb, f_depth)

    def attention_map(self, f_rgb: Tensor, f_depth: Tensor) -> Tensor:
        """(B,1,H,W) in (0,1): max over each modality's S maps, then the mean of the modalities."""
        if self.config.fusion != "attention":
            raise Fer3dError(f"fusion {self.config.fusion!r} has no attention map")
        depth = torch.stack([module(f_depth) for module in self.depth_attention]).amax(dim=0)
        return (self.rgb_map(f_rgb) + depth) / 2

    def rgb_map(self, f_rgb: Tensor) -> Tensor:
        """(B,1,H,W) in (0,1): the max over the RGB stream's S maps (rgb-only's whole attention)."""
        return torch.stack([module(f_rgb) for module in self.rgb_attention]).amax(dim=0)

    def encode(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        """The class-token output after the transformer and the final norm."""
        cls = self.class_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1) + self.positions_for(tuple(grid))
        return self.norm(self.encoder(tokens))[:, 0]

    def positions_for(self, grid: tuple[int, int]) -> Tensor:
        """Position embeddings for a feature grid; other input sizes get the grid resampled."""
        if grid == self.grid:
            return self.position
        cls, table = self.position[:, :1], self.position[:, 1:]
        table = table.reshape(1, *self.grid, -1).permute(0, 3, 1, 2)
        table = F.interpolate(table, size=grid, mode="bilinear", align_corners=False)
        return torch.cat([cls, table.flatten(2).transpose(1, 2)], dim=1)

    def backbones(self) -> list[nn.Module]:
        return [b for b in (self.rgb_backbone, self.depth_backbone) if b is not None]

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Pretrained parameters, usually trained with a smaller learning rate."""
        return [p for backbone in self.backbones() for p in backbone.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        """Every parameter not in a backbone (attention, projection, transformer, classifier)."""
        owned = {id(p) for p in self.backbone_parameters()}
        return [p for p in self.parameters() if id(p) not in owned]


def build_backbone(name: str) -> nn.Module:
    """A features_only timm model returning only its last stage (the deepest spatial grid)."""
    try:
        probe = timm.create_model(name, pretrained=False, features_only=True)
    except RuntimeError as err:  # timm raises RuntimeError for unknown names
        raise ConfigError(f"backbone {name!r} is not a timm model: {err}") from err
    last = len(probe.feature_info) - 1
    return timm.create_model(name, pretrained=False, features_only=True, out_indices=(last,))


def feature_grid(backbone: nn.Module, input_size: int) -> tuple[int, int]:
    """(H, W) of the backbone output at `input_size`, measured: padding rules differ per model."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, input_size, input_size))[-1]
    backbone.train(was_training)
    return int(features.shape[-2]), int(features.shape[-1])


def attention_modules(channels: int, config: ModelConfig) -> nn.ModuleList:
    return nn.ModuleList(
        SpatialAttention(channels, config.attention_reduction)
        for _ in range(config.attention_modules)
    )


def token_encoder(config: ModelConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        config.token_dim,
        config.heads,
        dim_feedforward=config.mlp_hidden,
        dropout=config.dropout,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    # Nested tensors are unavailable with norm_first; saying so up front silences a warning.
    return nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)


@dataclass
class LoadReport:
    missing: list[str]  # backbone keys the file did not provide
    unexpected: list[str]  # file keys not loaded (the classification head, by design)
    source: str  # "state_dict" or "pickle"


def load_backbone_weights(
    model: FerNet, path: Path, trust_pickle: bool = False, allow_architecture_mismatch: bool = False
) -> LoadReport:
    """Load a local classification checkpoint into both backbones (depth too, as in the paper).

    Nothing is downloaded. A safetensors file (what `weights import` writes) or a state dict
    holds only tensors; a whole-model pickle (the HSEmotion emotion models) runs code when read,
    so it is only accepted with `trust_pickle`. A known file (by hash, or the safetensors made
    from one) is refused for a backbone it was not trained as, unless
    `allow_architecture_mismatch` (then it is warned about, and recorded by the caller).
    """
    path = Path(path)
    if path.is_file():  # before anything is read: a trusted pickle would run on reading
        backbone = model.config.backbone
        if refuse_other_architecture(path, backbone, allow_architecture_mismatch):
            warnings.warn(
                f"{path}: loaded into {backbone}, not the architecture it was made for "
                "(--allow-architecture-mismatch); its features will differ from the original's",
                stacklevel=2,
            )
    if path.is_file() and is_safetensors(path):
        state, source = read_safetensors(path)[0], "safetensors"
    else:
        state, source = read_checkpoint(path, trust_pickle)
    target = model.rgb_backbone.state_dict()
    mapped, unexpected = map_backbone_keys(state, target)
    if not mapped:
        raise Fer3dError(
            f"{path}: no key matches the {model.config.backbone} backbone "
            f"(first keys in the file: {sorted(state)[:5]})"
        )
    refuse_shape_mismatch(path, mapped, target, model.config.backbone)
    missing: list[str] = []
    for backbone in model.backbones():
        missing = backbone.load_state_dict(mapped, strict=False).missing_keys
    return LoadReport(missing=sorted(missing), unexpected=sorted(unexpected), source=source)


def read_checkpoint(path: Path, trust_pickle: bool) -> tuple[dict[str, Tensor], str]:
    """(state dict, "state_dict" | "pickle"): the safe loader first, the pickle only if trusted."""
    if not path.is_file():
        raise Fer3dError(f"{path}: weights file not found")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors come in many types; all mean "not safe"
        safe_error = err
    else:
        return state_dict_of(path, loaded), "state_dict"
    if not trust_pickle:
        if zipfile.is_zipfile(path):
            raise Fer3dError(
                f"{path}: holds pickled objects (a whole saved model?), which run arbitrary code "
                "when loaded; convert it without running anything with `fer3d-bench weights "
                f"import {path} --out backbone.safetensors`, or pass --trust-pickle if you trust "
                "where this file came from"
            ) from safe_error
        raise Fer3dError(
            f"{path}: not a torch weights file ({safe_error}); a legacy whole-model pickle "
            "needs `fer3d-bench weights import` (safe) or --trust-pickle"
        ) from safe_error
    warnings.warn(
        f"{path}: loading a pickle, which can run arbitrary code; only do this for trusted files",
        stacklevel=3,  # the caller of load_backbone_weights
    )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise Fer3dError(
            f"{path}: not a torch file ({err}); a whole model saved by another timm version "
            "loads with `fer3d-bench weights import`"
        ) from err
    return state_dict_of(path, loaded), "pickle"


def state_dict_of(path: Path, loaded: object) -> dict[str, Tensor]:
    """Tensors by key from a module, a state dict, or a training checkpoint that wraps one."""
    if isinstance(loaded, nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, Mapping):
        for wrapper in ("state_dict", "model", "state_dict_ema"):
            if isinstance(loaded.get(wrapper), Mapping):
                loaded = loaded[wrapper]
                break
        tensors = {k: v for k, v in loaded.items() if isinstance(v, Tensor)}
        if tensors:
            return {k.removeprefix("module."): v for k, v in tensors.items()}
    raise Fer3dError(f"{path}: holds a {type(loaded).__name__}, not model weights")


def map_backbone_keys(
    state: Mapping[str, Tensor], target: Mapping[str, Tensor]
) -> tuple[dict[str, Tensor], list[str]]:
    """(weights under backbone keys, file keys left out).

    timm's EfficientNet/MobileNet feature models keep the classifier's names (`conv_stem`, `bn1`,
    `blocks.*`); generic FeatureListNet wrappers flatten the first level (`stages.0` ->
    `stages_0`). Head keys (`conv_head`, `bn2`, `classifier`, ...) match nothing and are reported.
    """
    mapped: dict[str, Tensor] = {}
    left_out: list[str] = []
    for key, value in state.items():
        name = next((k for k in (key, key.replace(".", "_", 1)) if k in target), None)
        if name is None:
            left_out.append(key)
        else:
            mapped[name] = value
    return mapped, left_out


def refuse_shape_mismatch(
    path: Path, mapped: Mapping[str, Tensor], target: Mapping[str, Tensor], backbone: str
) -> None:
    wrong = [k for k, v in mapped.items() if v.shape != target[k].shape]
    if wrong:
        raise Fer3dError(
            f"{path}: weights do not fit the {backbone} backbone; {len(wrong)} tensors differ "
            f"in shape, e.g. {wrong[0]}: {tuple(mapped[wrong[0]].shape)} in the file, "
            f"{tuple(target[wrong[0]].shape)} expected"
        )
