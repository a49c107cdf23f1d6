"""The hybrid objective of MERaLiON-SER-v1: L = CE_weighted(label smoothing 0.1) + 0.5 * (1 - CCC).

CCC (Lin's concordance correlation) is computed over the batch, per dimension, and averaged over
valence, arousal and dominance. It is undefined when both sides are constant (a batch of one, or
constant targets with constant predictions); the small epsilon in the denominator makes it 0 there,
so that term then adds a constant 1 and no gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

EPS = 1e-8


def ccc(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Concordance correlation per column: (B, D) x (B, D) -> (D,). Population (biased) moments."""
    mp, mt = pred.mean(dim=0), target.mean(dim=0)
    vp = ((pred - mp) ** 2).mean(dim=0)
    vt = ((target - mt) ** 2).mean(dim=0)
    cov = ((pred - mp) * (target - mt)).mean(dim=0)
    return 2 * cov / (vp + vt + (mp - mt) ** 2 + EPS)


def class_weights(counts: np.ndarray) -> torch.Tensor:
    """Inverse class frequency, n / (k * count_c) as in scikit-learn's "balanced" (absent classes: 0).

    counts: how often each class is seen (per epoch; may be fractional).
    """
    counts = np.asarray(counts, dtype=np.float64)
    w = np.zeros(len(counts))
    present = counts > 0
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return torch.tensor(w, dtype=torch.float32)


class HybridLoss(nn.Module):
    """CE_weighted(label_smoothing) + ccc_weight * (1 - mean CCC over the dimensions)."""

    def __init__(self, weights: torch.Tensor | None = None, label_smoothing: float = 0.1, ccc_weight: float = 0.5):
        super().__init__()
        self.register_buffer("weights", weights if weights is not None else torch.ones(0))
        self.label_smoothing = label_smoothing
        self.ccc_weight = ccc_weight

    def forward(self, logits: torch.Tensor, dims: torch.Tensor, target_probs: torch.Tensor,
                target_dims: torch.Tensor) -> dict[str, torch.Tensor]:
        """target_probs: (B, C) class distributions (one-hot, or mixed by MixUp); target_dims: (B, 3).

        Partly labelled clips (a corpus with arousal levels but no categories): a row of target_probs that sums
        to m < 1 counts m times in the cross-entropy (0: not at all), and a NaN in target_dims leaves that clip
        out of that dimension's CCC. A fully labelled batch takes exactly the plain path."""
        weights = self.weights if self.weights.numel() else None
        mass = target_probs.sum(dim=1)
        known = torch.isfinite(target_dims)
        if bool((mass > 1 - 1e-6).all()) and bool(known.all()):
            ce = F.cross_entropy(logits, target_probs, weight=weights, label_smoothing=self.label_smoothing)
            agreement = ccc(dims, target_dims).mean()
        else:
            rows = F.cross_entropy(logits, target_probs / mass.clamp_min(EPS)[:, None], weight=weights,
                                   label_smoothing=self.label_smoothing, reduction="none")
            ce = (rows * mass).sum() / mass.sum().clamp_min(EPS)
            per_dim = [ccc(dims[known[:, j], j:j + 1], target_dims[known[:, j], j:j + 1])[0]
                       for j in range(target_dims.shape[1]) if int(known[:, j].sum()) >= 2]
            agreement = torch.stack(per_dim).mean() if per_dim else dims.sum() * 0.0
        ccc_loss = 1.0 - agreement
        return {"loss": ce + self.ccc_weight * ccc_loss, "ce": ce.detach(), "ccc": (1.0 - ccc_loss).detach()}


def hybrid_step(model, loss_fn: HybridLoss, opt, sched, x, labels, dims, rng, mixup_p: float, mixup_alpha: float) -> dict:
    """One optimiser step of the hybrid objective, shared by the compact model and the voice head: one-hot targets,
    MixUp (probability `mixup_p`, Beta(alpha, alpha)) of inputs, classes and V/A/D targets, forward, loss, gradient
    clipped at norm 5, optimiser and scheduler step. x: input tensor; labels: int array (-1: no category);
    dims: (B, 3) array (NaN: unknown).
    Returns the loss terms (tensors)."""
    from ser_tool.labels import EMOTIONS

    lab = torch.from_numpy(labels)
    if bool((lab >= 0).all()):
        y = F.one_hot(lab, len(EMOTIONS)).float()
    else:  # -1: a clip with no category (its row stays 0: no cross-entropy for it)
        y = torch.zeros(len(lab), len(EMOTIONS))
        y[lab >= 0] = F.one_hot(lab[lab >= 0], len(EMOTIONS)).float()
    d = torch.from_numpy(dims)  # NaN: a dimension unknown for that clip (a mix with it stays unknown)
    if rng.random() < mixup_p:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        perm = torch.from_numpy(rng.permutation(len(labels)))
        x, y, d = (lam * t + (1 - lam) * t[perm] for t in (x, y, d))
    logits, out_dims = model(x)
    losses = loss_fn(logits, out_dims, y, d)
    opt.zero_grad()
    losses["loss"].backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    sched.step()
    return losses
