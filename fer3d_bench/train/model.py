"""The reference RGB+depth network: two timm backbones, cross-modal attention, a token transformer.

Backbones are built through timm (never copied) with `features_only=True`, so the features come
from the last feature stage (for EfficientNet: after the last inverted-residual block, before the
conv head), which keeps a spatial grid for the attention and the tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer3d_bench.errors import ConfigError, Fer3dError
from fer3d_bench.train.config import BACKBONES, ModelConfig
from fer3d_bench.weights.hub import offline_timm


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
    """A features_only timm model returning only its last stage (the deepest spatial grid).

    Every model the toolkit builds comes through here, whatever config it came from (a preset,
    a --config file, a result.json being explained): only a name of BACKBONES is built, never
    pretrained and with the hub offline, so no name (`hf-hub:...`, `local-dir:...`, a URL, a
    path) makes timm download or read anything. ModelConfig refuses such names earlier, naming
    the field; this keeps the rule where timm is called."""
    if not isinstance(name, str) or name not in BACKBONES:
        raise ConfigError(f"model.backbone = {name!r}: expected one of {', '.join(BACKBONES)}")
    timm = offline_timm()
    probe = timm.create_model(name, pretrained=False, features_only=True)
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
