"""The reference network: shapes per ablation, the attention rule, its parameter groups."""

import itertools
from dataclasses import replace

import pytest
import torch
from torch import nn

from fer3d_bench.train.model import FerNet, ModelConfig, build_backbone

SIZE = 64
TINY = ModelConfig(
    backbone="test_efficientnet",
    token_dim=32,
    heads=2,
    layers=1,
    mlp_hidden=48,
    attention_modules=3,
    attention_reduction=4,
    num_classes=7,
    input_size=SIZE,
)


def tiny(**changes) -> FerNet:
    return FerNet(replace(TINY, **changes)).eval()


def inputs(batch: int = 2, size: int = SIZE, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.randn(batch, 3, size, size, generator=generator)
    depth = torch.randn(batch, 1, size, size, generator=generator)
    return rgb, depth


def count(parameters) -> int:
    return sum(p.numel() for p in parameters)


@pytest.mark.parametrize(
    ("fusion", "head"),
    list(itertools.product(("attention", "sum", "rgb-attention"), ("transformer", "pool"))),
)
def test_output_shapes_for_every_ablation(fusion, head):
    model = tiny(fusion=fusion, head=head)
    logits, embedding = model(*inputs(batch=3))
    assert logits.shape == (3, TINY.num_classes)
    assert embedding.shape == (3, TINY.token_dim)


def test_rgb_only_builds_no_depth_backbone_and_ignores_depth():
    rgb_only, fused = tiny(fusion="rgb-attention"), tiny(fusion="sum")
    assert rgb_only.depth_backbone is None
    assert count(rgb_only.parameters()) < count(fused.parameters())
    rgb, depth = inputs()
    with torch.no_grad():
        first = rgb_only(rgb, depth)[0]
        second = rgb_only(rgb, torch.randn_like(depth))[0]
    assert torch.equal(first, second)


def test_attention_fusion_listens_to_depth():
    model = tiny(fusion="attention")
    rgb, depth = inputs()
    with torch.no_grad():
        first = model(rgb, depth)[0]
        second = model(rgb, depth + 1.0)[0]
    assert not torch.allclose(first, second)


class Constant(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.full_like(features[:, :1], self.value)


def test_attention_map_is_max_over_modules_then_mean_over_modalities():
    model = tiny(fusion="attention")
    model.rgb_attention = nn.ModuleList(Constant(v) for v in (0.2, 0.7, 0.4))
    model.depth_attention = nn.ModuleList(Constant(v) for v in (0.5, 0.1, 0.3))
    features = torch.randn(2, model.feature_channels, 3, 3)
    attention = model.attention_map(features, features)
    assert attention.shape == (2, 1, 3, 3)
    assert torch.allclose(attention, torch.full_like(attention, (0.7 + 0.5) / 2))
    assert torch.allclose(model.fuse(features, features), features * 0.6)


def test_real_attention_map_lies_in_open_unit_interval():
    model = tiny(fusion="attention")
    f_rgb = torch.randn(2, model.feature_channels, 4, 4)
    attention = model.attention_map(f_rgb, torch.randn_like(f_rgb))
    assert attention.shape == (2, 1, 4, 4)
    assert (attention > 0).all() and (attention < 1).all()


def test_position_embeddings_fit_the_grid_and_other_sizes_still_run():
    model = tiny()
    height, width = model.grid
    assert model.position.shape == (1, height * width + 1, TINY.token_dim)
    logits, embedding = model(*inputs(size=96))
    assert logits.shape == (2, TINY.num_classes) and embedding.shape == (2, TINY.token_dim)


@pytest.mark.parametrize("fusion", ["attention", "sum", "rgb-attention"])
def test_backbone_and_head_parameters_partition_the_model(fusion):
    model = tiny(fusion=fusion)
    backbone = {id(p) for p in model.backbone_parameters()}
    head = {id(p) for p in model.head_parameters()}
    assert backbone and head and not backbone & head
    assert backbone | head == {id(p) for p in model.parameters()}
    assert len(model.backbone_parameters()) == len(backbone)


def test_channels_last_forward_and_backward():
    model = tiny().train().to(memory_format=torch.channels_last)
    rgb, depth = (x.to(memory_format=torch.channels_last) for x in inputs())
    logits, embedding = model(rgb, depth)
    (logits.sum() + embedding.sum()).backward()
    assert all(p.grad is not None for p in model.head_parameters())


def test_efficientnet_b2_features_come_after_the_last_block_not_the_conv_head():
    backbone = build_backbone("efficientnet_b2").eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, 3, 260, 260))
    assert len(features) == 1
    assert features[0].shape == (1, 352, 9, 9)
    assert not any(name.startswith("conv_head") for name in backbone.state_dict())


def test_models_built_after_the_same_seed_are_identical():
    torch.manual_seed(0)
    first = FerNet(TINY).state_dict()
    torch.manual_seed(0)
    second = FerNet(TINY).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
