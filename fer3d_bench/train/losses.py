"""Weighted cross-entropy plus island loss, as in the paper (Raimondo et al.) with its typo fixed.

The network is trained on ``L = CE_w + lambda1 * (L_C + lambda2 * I)``. This is the island loss
of Cai et al. (FG 2018), ``L = L_softmax + λ·L_IL`` with ``L_IL = L_C + λ1·Σ_{j≠k}(cos(c_j, c_k)
+ 1)``, λ = 0.01 and λ1 = 10: our ``lambda1`` is their λ and our ``lambda2`` is their λ1. The
paper prints the island denominator as a difference of norms; that is a typo. The original (and
this module) divides by the product of norms, i.e. uses the cosine, adds one so that each term is
in [0, 2], and sums over ordered pairs j != k.

The centers are updated by plain SGD on the loss itself, the common practice and what the
paper states (SGD, fixed rate alpha = 0.5); this is *not* the hand-written rule of Wen et al. and
Cai et al., which averages each class's residuals over ``1 + n_j`` (its count in the batch). Per
step, with ``B`` the batch size, whatever ``lambda1`` is (over an accumulation window, the
gradient is the mean of its batches')::

    c_j <- c_j - alpha * d(L_C + lambda2 * I)/dc_j
         = c_j - alpha * ( -(1/B) * sum_{i: y_i = j} (x_i - c_j)  +  lambda2 * dI/dc_j )

so a class's pull towards its samples is divided by the batch size, not by its own count. The
centers have their own SGD optimizer (no momentum, weight decay or LR schedule). Backward on the
total puts ``lambda1`` times that gradient on the centers, so one training step is::

    loss, parts = criterion(logits, embedding, labels)
    loss.backward()
    criterion.rescale_center_grads()  # once per backward (or accumulation window)
    opt.step()
    centers_opt.step()                # centers_opt = centers_optimizer(criterion)

and both optimizers are zeroed before the next backward. Under an fp16 grad scaler the centers'
gradients are unscaled through it first, and the centers skip the steps the scaler skips
(`fer3d_bench.train.loop._step`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer3d_bench.train.config import LossConfig


def _at_least_float32(t: Tensor) -> Tensor:
    """Upcast half precision so squared distances and cosines do not lose their low bits."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _full_precision(t: Tensor) -> AbstractContextManager:
    """Switch autocast off: otherwise the Gram matrix would be computed in bf16."""
    return torch.autocast(device_type=t.device.type, enabled=False)


def center_loss(x: Tensor, centers: Tensor, labels: Tensor) -> Tensor:
    """``(1/2) * mean_i ||x_i - c_{y_i}||^2`` for embeddings (B, D) and centers (C, D)."""
    with _full_precision(x):
        dtype = torch.promote_types(_at_least_float32(x).dtype, _at_least_float32(centers).dtype)
        diff = x.to(dtype) - centers.to(dtype)[labels]
        return 0.5 * diff.pow(2).sum(dim=1).mean()


def island_term(centers: Tensor, eps: float = 1e-8) -> Tensor:
    """``Σ_{j≠k} (cos(c_j, c_k) + 1)`` over ordered pairs; 0 when every pair is opposite.

    The norm product is clamped below by ``eps`` so a zero center counts as orthogonal (term 1)
    instead of producing NaN.
    """
    with _full_precision(centers):
        c = _at_least_float32(centers)
        norms = torch.linalg.vector_norm(c, dim=1)
        cos = (c @ c.T) / (norms[:, None] * norms[None, :]).clamp_min(eps)
        off_diagonal = ~torch.eye(c.shape[0], dtype=torch.bool, device=c.device)
        return (cos[off_diagonal] + 1.0).sum()


def class_weights(labels: Sequence[int] | Tensor, num_classes: int) -> Tensor:
    """Balanced weights ``n / (C_present * count_c)`` from a training fold's labels (float32).

    ``C_present`` counts only the classes that occur in the fold, so a fold missing a class is
    weighted like one that never had it. An absent class gets weight 0: it cannot be predicted
    correctly from this fold anyway, and a finite weight keeps the loss defined.
    """
    y = torch.as_tensor(labels, dtype=torch.long).reshape(-1).cpu()
    if y.numel() == 0:
        raise ValueError("class_weights needs at least one label")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}), got {y.min()}..{y.max()}")
    counts = torch.bincount(y, minlength=num_classes).double()
    present = counts > 0
    weights = torch.zeros(num_classes, dtype=torch.float64)
    weights[present] = y.numel() / (int(present.sum()) * counts[present])
    return weights.float()


class FerLoss(nn.Module):
    """Weighted CE on the logits plus the island loss on the embedding, with learnable centers."""

    def __init__(
        self,
        num_classes: int,
        dim: int,
        class_weights: Tensor | None,
        config: LossConfig = LossConfig(),  # noqa: B008  (frozen)
    ):
        super().__init__()
        if class_weights is not None and class_weights.shape != (num_classes,):
            raise ValueError(
                f"class_weights must have shape ({num_classes},), got {tuple(class_weights.shape)}"
            )
        self.num_classes = num_classes
        self.dim = dim
        self.config = config
        # unit-variance entries, the scale of the layer-normalised embeddings they track: with
        # centers 10x smaller, the first island step (alpha 0.5, lambda2 10) overshoots badly
        self.centers = nn.Parameter(torch.randn(num_classes, dim))
        weight = None if class_weights is None else class_weights.detach().clone().float()
        self.register_buffer("class_weights", weight)

    def forward(
        self, logits: Tensor, embedding: Tensor, labels: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """Total loss, and its parts as floats for logging: ce, center, island, total."""
        self._check_shapes(logits, embedding, labels)
        logits = _at_least_float32(logits)
        weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
        ce = F.cross_entropy(logits, labels, weight=weight)
        center = center_loss(embedding, self.centers, labels)
        island = island_term(self.centers)
        aux = center + self.config.lambda2 * island
        total = ce + self.config.lambda1 * aux
        if self.config.lambda1 == 0:
            total = total + self._zero_valued_center_driver(embedding, labels)
        parts = {"ce": ce, "center": center, "island": island, "total": total}
        values = torch.stack([v.detach().double() for v in parts.values()]).tolist()  # one sync
        return total, dict(zip(parts, values, strict=True))

    def _zero_valued_center_driver(self, embedding: Tensor, labels: Tensor) -> Tensor:
        """``a - a.detach()``: adds 0 to the loss but gives the centers the unscaled gradient.

        Needed only when lambda1 == 0, where the network term carries no gradient to rescale.
        """
        aux = center_loss(embedding.detach(), self.centers, labels)
        aux = aux + self.config.lambda2 * island_term(self.centers)
        return aux - aux.detach()

    def rescale_center_grads(self) -> None:
        """Divide the centers' gradient by lambda1 so their step does not depend on lambda1.

        Call exactly once after backward (or after the last backward of an accumulation window)
        and before the centers' step; a second call would divide again.
        """
        if self.config.lambda1 == 0 or self.centers.grad is None:
            return
        self.centers.grad.div_(self.config.lambda1)

    def _check_shapes(self, logits: Tensor, embedding: Tensor, labels: Tensor) -> None:
        """Fail with the shapes in the message rather than deep inside an indexing op."""
        batch = labels.shape[0]
        if labels.dim() != 1 or logits.shape != (batch, self.num_classes):
            raise ValueError(
                f"expected logits ({batch}, {self.num_classes}) and labels ({batch},), "
                f"got {tuple(logits.shape)} and {tuple(labels.shape)}"
            )
        if embedding.shape != (batch, self.dim):
            raise ValueError(
                f"expected embedding ({batch}, {self.dim}), got {tuple(embedding.shape)}"
            )


def centers_optimizer(criterion: FerLoss, alpha: float | None = None) -> torch.optim.SGD:
    """Plain SGD over the centers only: lr alpha (config default 0.5), no momentum or decay."""
    lr = criterion.config.alpha if alpha is None else alpha
    return torch.optim.SGD([criterion.centers], lr=lr, momentum=0.0, weight_decay=0.0)
