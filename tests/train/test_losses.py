"""Losses against hand arithmetic, and the centers' update that must not depend on lambda1."""

import math

import pytest
import torch
import torch.nn.functional as F

from fer3d_bench.train.losses import (
    FerLoss,
    LossConfig,
    center_loss,
    centers_optimizer,
    class_weights,
    island_term,
)

F64 = torch.float64


def t64(rows):
    return torch.tensor(rows, dtype=F64)


def angle(a, b):
    return math.acos(float(torch.dot(a, b) / (a.norm() * b.norm())))


def test_center_loss_by_hand():
    x = t64([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    centers = t64([[1.0, 1.0], [2.0, 2.0]])
    labels = torch.tensor([0, 1, 0])
    # ||(0, 1)||^2 = 1, ||(1, -2)||^2 = 5, ||(-1, -1)||^2 = 2 -> 0.5 * (8 / 3) = 4 / 3
    assert center_loss(x, centers, labels).item() == pytest.approx(4 / 3, abs=1e-10)


def test_island_term_by_hand_3_4_5():
    # all norms 5; cos(c0, c1) = 24/25, cos(c0, c2) = -25/25, cos(c1, c2) = -24/25
    # unordered sum of cos = -1, ordered = -2, plus one per ordered pair (6) -> 4
    centers = t64([[3.0, 4.0], [4.0, 3.0], [-3.0, -4.0]])
    assert island_term(centers).item() == pytest.approx(4.0, abs=1e-10)


def test_island_term_by_hand_axes_and_diagonal():
    # cos(e1, e2) = 0, cos(e1, (1, 1)) = cos(e2, (1, 1)) = 1/sqrt(2)
    # ordered sum of cos = 2 * 2/sqrt(2) = 2 sqrt(2), plus 6 -> 6 + 2 sqrt(2)
    centers = t64([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert island_term(centers).item() == pytest.approx(6 + 2 * math.sqrt(2), abs=1e-10)


def test_island_term_zero_for_opposite_centers():
    # (3, 4) . (-6, -8) = -50, norms 5 * 10 = 50 -> cos = -1 exactly, both terms 0
    assert island_term(t64([[3.0, 4.0], [-6.0, -8.0]])).item() == 0.0


def test_island_term_is_2_c_c_minus_1_for_one_direction():
    centers = t64([[1.0, 1.0], [2.0, 2.0], [0.5, 0.5]])
    assert island_term(centers).item() == pytest.approx(2 * 3 * 2, abs=1e-12)


def test_island_term_single_center_is_zero():
    assert island_term(t64([[1.0, 2.0]])).item() == 0.0


def test_zero_center_counts_as_orthogonal_without_nan():
    centers = t64([[0.0, 0.0], [1.0, 0.0]]).requires_grad_()
    value = island_term(centers)
    value.backward()
    assert value.item() == pytest.approx(2.0, abs=1e-12)
    assert torch.isfinite(centers.grad).all()


def test_island_gradient_pushes_nearly_parallel_centers_apart():
    centers = t64([[1.0, 0.0], [1.0, 0.1]]).requires_grad_()
    before = angle(*centers.detach())
    island_term(centers).backward()
    with torch.no_grad():
        centers -= 0.1 * centers.grad
    assert angle(*centers.detach()) > before + 1e-3


def test_island_gradient_vanishes_for_opposite_centers():
    centers = t64([[1.0, 2.0], [-2.0, -4.0]]).requires_grad_()
    island_term(centers).backward()
    assert centers.grad.abs().max().item() < 1e-12
    with torch.no_grad():
        centers -= 0.1 * centers.grad
    assert angle(*centers.detach()) == pytest.approx(math.pi, abs=1e-6)


def test_class_weights_by_hand_with_absent_class():
    # n = 6, counts (3, 1, 0, 2), present classes 3 -> 6/9, 6/3, 0 (absent), 6/6
    weights = class_weights([0, 0, 0, 1, 3, 3], num_classes=4)
    assert weights.dtype == torch.float32
    assert weights.tolist() == pytest.approx([2 / 3, 2.0, 0.0, 1.0], abs=1e-7)


def test_class_weights_accepts_a_tensor_and_balances_to_uniform():
    weights = class_weights(torch.tensor([0, 1, 2, 0, 1, 2]), num_classes=3)
    assert weights.tolist() == pytest.approx([1.0, 1.0, 1.0])


@pytest.mark.parametrize("labels", [[], [0, 3], [-1, 0]])
def test_class_weights_rejects_empty_or_out_of_range(labels):
    with pytest.raises(ValueError):
        class_weights(labels, num_classes=3)


def batch(seed=0, b=8, c=4, d=5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, generator=g, dtype=F64)
    embedding = torch.randn(b, d, generator=g, dtype=F64)
    labels = torch.tensor([0, 1, 1, 3, 0, 3, 3, 1])[:b]
    return logits, embedding, labels


def criterion(config=None, weights=None, seed=0, c=4, d=5):
    torch.manual_seed(seed)
    return FerLoss(c, d, weights, config or LossConfig()).double()


def test_weighted_ce_matches_torch():
    logits, embedding, labels = batch()
    weights = class_weights(labels, 4)
    _, parts = criterion(weights=weights)(logits, embedding, labels)
    expected = F.cross_entropy(logits, labels, weight=weights.double())
    assert parts["ce"] == pytest.approx(expected.item(), abs=1e-12)


def test_total_is_ce_plus_lambda1_times_center_plus_lambda2_island():
    logits, embedding, labels = batch()
    config = LossConfig(lambda1=0.03, lambda2=7.0)
    crit = criterion(config, weights=class_weights(labels, 4))
    total, parts = crit(logits, embedding, labels)
    assert parts["center"] == pytest.approx(center_loss(embedding, crit.centers, labels).item())
    assert parts["island"] == pytest.approx(island_term(crit.centers).item())
    expected = parts["ce"] + 0.03 * (parts["center"] + 7.0 * parts["island"])
    assert parts["total"] == pytest.approx(expected, abs=1e-12)
    assert total.item() == pytest.approx(expected, abs=1e-12)


def stepped_centers(config, seed=0):
    """Centers after one loss.backward / rescale / centers step on a fixed batch."""
    logits, embedding, labels = batch()
    crit = criterion(config, seed=seed)
    opt = centers_optimizer(crit)
    loss, _ = crit(logits.requires_grad_(), embedding.requires_grad_(), labels)
    loss.backward()
    crit.rescale_center_grads()
    opt.step()
    return crit.centers.detach()


@pytest.mark.parametrize("lambda1", [0.1, 0.0])
def test_centers_update_does_not_depend_on_lambda1(lambda1):
    reference = stepped_centers(LossConfig(lambda1=0.01))
    other = stepped_centers(LossConfig(lambda1=lambda1))
    assert torch.allclose(reference, other, rtol=0, atol=1e-12)


def test_centers_step_is_alpha_times_unscaled_gradient():
    logits, embedding, labels = batch()
    crit = criterion()
    start = crit.centers.detach().clone()
    expected_grad = torch.autograd.grad(
        center_loss(embedding, crit.centers, labels) + 10.0 * island_term(crit.centers),
        crit.centers,
    )[0]
    assert torch.allclose(stepped_centers(LossConfig()), start - 0.5 * expected_grad, atol=1e-12)


def test_centers_move_toward_their_class_mean():
    # lambda2 = 0 isolates the center-loss step: c_k <- c_k - alpha * (n_k / B) * (c_k - mean_k)
    logits, embedding, labels = batch()
    config = LossConfig(lambda2=0.0)
    start = criterion(config).centers.detach()
    stepped = stepped_centers(config)
    for k, n_k in [(0, 2), (1, 3), (2, 0), (3, 3)]:
        mean_k = embedding[labels == k].mean(0) if n_k else start[k]
        expected = start[k] - 0.5 * (n_k / 8) * (start[k] - mean_k)
        assert torch.allclose(stepped[k], expected, atol=1e-12)
    before = center_loss(embedding, start, labels).item()
    assert center_loss(embedding, stepped, labels).item() < before


def test_gradient_reaches_the_embedding_scaled_by_lambda1():
    logits, embedding, labels = batch()
    grads = []
    for lambda1 in (0.01, 0.02):
        x = embedding.clone().requires_grad_()
        loss, _ = criterion(LossConfig(lambda1=lambda1))(logits, x, labels)
        loss.backward()
        grads.append(x.grad)
    assert torch.allclose(grads[1], 2 * grads[0], atol=1e-15)


def test_centers_optimizer_holds_only_centers_at_alpha_without_decay():
    crit = criterion()
    opt = centers_optimizer(crit)
    (group,) = opt.param_groups
    assert group["lr"] == 0.5
    assert group["weight_decay"] == 0.0
    assert group["momentum"] == 0.0
    assert len(group["params"]) == 1 and group["params"][0] is crit.centers
    assert centers_optimizer(crit, alpha=0.2).param_groups[0]["lr"] == 0.2


def test_centers_init_is_unit_scale_and_seeded():
    a, b = criterion(seed=3).centers, criterion(seed=3).centers
    assert torch.equal(a, b)
    assert a.shape == (4, 5) and 0.3 < a.std().item() < 3.0


def test_parts_are_float32_under_bf16_autocast():
    torch.manual_seed(0)
    crit = FerLoss(4, 5, class_weights([0, 1, 1, 3], 4))
    logits = torch.randn(4, 4)
    embedding = torch.randn(4, 5)
    labels = torch.tensor([0, 1, 1, 3])
    _, reference = crit(logits, embedding, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, parts = crit(logits.bfloat16(), embedding.bfloat16(), labels)
    assert total.dtype == torch.float32
    assert parts["island"] == pytest.approx(reference["island"], rel=1e-6)
    assert parts["total"] == pytest.approx(reference["total"], rel=2e-2)


def test_wrong_shapes_are_rejected():
    logits, embedding, labels = batch()
    with pytest.raises(ValueError, match="embedding"):
        criterion()(logits, embedding[:, :3], labels)
    with pytest.raises(ValueError, match="logits"):
        criterion()(logits[:, :2], embedding, labels)
