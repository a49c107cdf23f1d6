"""The training objective: CCC, the hybrid CE + CCC loss, class weights (corpora and targets: test_data.py)."""

import numpy as np
import pytest
import torch

from ser_tool.train.loss import HybridLoss, ccc, class_weights


def _ccc_np(y, p):
    my, mp = y.mean(), p.mean()
    cov = ((y - my) * (p - mp)).mean()
    return 2 * cov / (y.var() + p.var() + (my - mp) ** 2)


def test_ccc_matches_numpy():
    rng = np.random.default_rng(0)
    y, p = rng.random((16, 3)), rng.random((16, 3))
    got = ccc(torch.tensor(p), torch.tensor(y)).numpy()
    assert got == pytest.approx([_ccc_np(y[:, i], p[:, i]) for i in range(3)], abs=1e-6)
    same = ccc(torch.tensor(y), torch.tensor(y)).numpy()
    assert same == pytest.approx([1, 1, 1], abs=1e-6)
    flipped = ccc(torch.tensor(-y + 1), torch.tensor(y)).numpy()
    assert np.all(flipped < 0)


def test_ccc_edge_cases_are_finite():
    one = ccc(torch.tensor([[0.3, 0.5, 0.9]]), torch.tensor([[0.1, 0.5, 0.2]]))
    assert torch.all(torch.isfinite(one)) and torch.allclose(one, torch.zeros(3))
    constant = ccc(torch.rand(8, 3), torch.full((8, 3), 0.5))
    assert torch.all(torch.isfinite(constant)) and torch.allclose(constant, torch.zeros(3), atol=1e-6)


def test_hybrid_loss_is_ce_plus_half_one_minus_ccc():
    torch.manual_seed(0)
    logits, dims = torch.randn(6, 7, requires_grad=True), torch.rand(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    target = torch.nn.functional.one_hot(labels, 7).float()
    tdims = torch.rand(6, 3)
    w = class_weights(np.bincount([0, 0, 1, 2, 3, 4, 5, 6], minlength=7))
    out = HybridLoss(w)(logits, dims, target, tdims)
    ce = torch.nn.functional.cross_entropy(logits, labels, weight=w, label_smoothing=0.1, reduction="none").sum() / 6
    expected = ce + 0.5 * (1 - ccc(dims, tdims).mean())
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    out["loss"].backward()
    assert logits.grad is not None and dims.grad is not None


def test_class_weights_are_inverse_frequency():
    w = class_weights(np.array([3, 1, 0])).numpy()
    assert w[2] == 0 and w[1] == pytest.approx(3 * w[0]) and w[0] * 3 + w[1] * 1 == pytest.approx(4.0)
