"""Fidelity to the paper: the centers' step under a grad scaler, partial accumulation windows,
the paper's epochs, and ablations that change one thing at a time."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from fer3d_bench.train import loop
from fer3d_bench.train.config import ABLATIONS, PRESETS, TrainConfig, variant_configs
from fer3d_bench.train.losses import FerLoss, centers_optimizer
from fer3d_bench.train.model import FerNet

CLASSES, DIM, FEATURES = 3, 4, 5


class Toy(nn.Module):
    """(rgb, depth) -> (logits, embedding) from the RGB values alone: small enough to check."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Linear(FEATURES, DIM)
        self.classify = nn.Linear(DIM, CLASSES)
        self.seen: list[torch.Tensor] = []  # the RGB batches it was given, in order

    def forward(self, rgb, depth):
        self.seen.append(rgb)
        embedding = self.embed(rgb.flatten(1))
        return self.classify(embedding), embedding


def toy_fit(accumulate: int = 1, batch_size: int = 2):
    model = Toy()
    criterion = FerLoss(CLASSES, DIM, None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return SimpleNamespace(
        model=model,
        criterion=criterion,
        optimizer=optimizer,
        centers_opt=centers_optimizer(criterion),
        scheduler=torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0),
        steps=100,
        accumulate=accumulate,
        config=SimpleNamespace(batch_size=batch_size, workers=0, seed=0, epochs=1),
        device=torch.device("cpu"),
        layout=torch.contiguous_format,
        run_model=lambda rgb, depth: model(rgb, depth),
    )


def batch(seed: int = 0, size: int = 4):
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.randn(size, FEATURES, generator=generator)
    labels = torch.arange(size) % CLASSES
    return rgb, labels


def unscaled_center_step(fit, rgb, labels) -> torch.Tensor:
    """What the centers' SGD step should be: -alpha * d(L_C + lambda2 I)/dc, unscaled."""
    logits, embedding = fit.model(rgb, None)
    loss, _ = fit.criterion(logits, embedding, labels)
    (grad,) = torch.autograd.grad(loss, fit.criterion.centers)
    return -fit.criterion.config.alpha * grad / fit.criterion.config.lambda1


@pytest.mark.parametrize("enabled", [True, False])
def test_centers_step_on_unscaled_gradients_under_a_grad_scaler(enabled):
    fit = toy_fit()
    rgb, labels = batch()
    expected = unscaled_center_step(fit, rgb, labels)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, enabled=enabled)
    logits, embedding = fit.model(rgb, None)
    loss, _ = fit.criterion(logits, embedding, labels)
    scaler.scale(loss).backward()
    before = fit.criterion.centers.detach().clone()
    loop._step(fit, scaler)
    moved = fit.criterion.centers.detach() - before
    torch.testing.assert_close(moved, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step()`")  # the skipped step
def test_centers_do_not_move_when_the_scaler_skips_an_overflowing_step():
    fit = toy_fit()
    rgb, labels = batch()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    logits, embedding = fit.model(rgb, None)
    loss, _ = fit.criterion(logits, embedding, labels)
    scaler.scale(loss).backward()
    fit.model.embed.weight.grad[0, 0] = float("inf")  # an fp16 overflow in the network
    centers = fit.criterion.centers.detach().clone()
    weights = fit.model.embed.weight.detach().clone()
    loop._step(fit, scaler)
    assert torch.equal(fit.model.embed.weight.detach(), weights)  # the scaler skipped the model
    assert torch.equal(fit.criterion.centers.detach(), centers)  # and so the centers
    assert scaler.get_scale() < 2.0**16


class Batches(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.rgb, self.labels = batch(seed=1, size=n)

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.rgb[i], torch.zeros(1), self.labels[i]


def test_a_partial_last_window_is_the_mean_over_its_own_batches(monkeypatch):
    # 5 batches of 2, windows of 2: the last window holds one batch, so its gradient must be that
    # batch's gradient, not half of it
    fit = toy_fit(accumulate=2, batch_size=2)
    fit.train_set = Batches(10)
    grads = []

    def record(fit, scaler):
        grads.append(fit.model.embed.weight.grad.clone())
        fit.model.zero_grad(set_to_none=True)
        fit.criterion.zero_grad(set_to_none=True)

    monkeypatch.setattr(loop, "_step", record)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loop._train_epoch(fit, 0, None, scaler, progress=False)
    assert len(grads) == 3 and len(fit.model.seen) == 5
    labels = {
        tuple(r.tolist()): y for r, y in zip(fit.train_set.rgb, fit.train_set.labels, strict=True)
    }
    last_rgb = fit.model.seen[-1]
    last_labels = torch.stack([labels[tuple(r.tolist())] for r in last_rgb])
    logits, embedding = fit.model(last_rgb, None)
    loss, _ = fit.criterion(logits, embedding, last_labels)
    (expected,) = torch.autograd.grad(loss, fit.model.embed.weight)
    torch.testing.assert_close(grads[-1], expected)


def test_epochs_are_the_papers_twenty():
    assert TrainConfig().epochs == 20
    assert PRESETS["paper"].epochs == 20


def tiny_model(name: str) -> FerNet:
    config = variant_configs("tiny", ablations=[name])[name]
    torch.manual_seed(0)
    return FerNet(config.model).eval()


def tiny_inputs(model: FerNet):
    size = model.config.input_size
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, size, size, generator=generator), torch.randn(
        2, 1, size, size, generator=generator
    )


def test_rgb_only_keeps_the_rgb_streams_own_attention():
    model = tiny_model("rgb-only")
    assert model.depth_backbone is None
    assert len(model.rgb_attention) == model.config.attention_modules
    assert not hasattr(model, "depth_attention")
    head = {id(p) for p in model.head_parameters()}
    assert all(id(p) in head for p in model.rgb_attention.parameters())
    rgb, depth = tiny_inputs(model)
    with torch.no_grad():
        first = model(rgb, depth)[0]
        for module in model.rgb_attention:
            module.score[-2].bias.fill_(-5.0)  # the attention now masks nearly everything
        second = model(rgb, depth)[0]
    assert not torch.allclose(first, second)


def test_table_vii_first_row_is_a_named_variant():
    name = "sum-no-transformer"
    assert ABLATIONS[name] == {"model.fusion": "sum", "model.head": "pool"}
    model = tiny_model(name)
    assert model.depth_backbone is not None and not hasattr(model, "encoder")
    logits, embedding = model(*tiny_inputs(model))
    assert logits.shape == (2, model.config.num_classes)
    assert embedding.shape == (2, model.config.token_dim)
