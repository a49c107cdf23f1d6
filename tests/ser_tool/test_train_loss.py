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


def test_clips_without_a_category_or_a_dimension_are_left_out_of_that_term():
    """A corpus with arousal levels and no categories: its clips (an all-zero class row, NaN valence and dominance)
    add nothing to the cross-entropy and count only in the arousal CCC; a clip mixed half with one counts half."""
    torch.manual_seed(1)
    logits, dims = torch.randn(6, 7, requires_grad=True), torch.rand(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 0, 0])
    target = torch.nn.functional.one_hot(labels, 7).float()
    target[4:] = 0  # clips 4 and 5: no category
    tdims = torch.rand(6, 3)
    tdims[4:, 0] = tdims[4:, 2] = float("nan")
    w = class_weights(np.bincount([0, 1, 2, 3, 3], minlength=7))
    out = HybridLoss(w)(logits, dims, target, tdims)
    ce = torch.nn.functional.cross_entropy(logits[:4], labels[:4], weight=w, label_smoothing=0.1, reduction="none").mean()
    agreement = torch.stack([ccc(dims[:4, 0:1], tdims[:4, 0:1])[0], ccc(dims[:, 1:2], tdims[:, 1:2])[0],
                             ccc(dims[:4, 2:3], tdims[:4, 2:3])[0]]).mean()
    assert out["loss"].item() == pytest.approx((ce + 0.5 * (1 - agreement)).item(), rel=1e-5)
    out["loss"].backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(dims.grad).all()
    assert torch.all(logits.grad[4:] == 0)  # no category: no pull on its class scores
    half = target.clone()
    half[0] *= 0.5  # MixUp of clip 0 with a category-less clip at lambda 0.5
    rows = torch.nn.functional.cross_entropy(logits[:4], labels[:4], weight=w, label_smoothing=0.1, reduction="none").detach()
    expected = (0.5 * rows[0] + rows[1:].sum()) / 3.5
    assert HybridLoss(w)(logits, dims, half, tdims)["ce"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_hybrid_step_takes_category_less_clips():
    from ser_tool.train.loss import hybrid_step

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 10)

        def forward(self, x):
            out = self.lin(x)
            return out[:, :7], torch.sigmoid(out[:, 7:])

    model = net = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    labels = np.array([0, 3, -1, -1])
    dims = np.array([[0.5, 0.2, 0.4], [0.1, 0.8, 0.6], [np.nan, 0.1, np.nan], [np.nan, 0.8, np.nan]], dtype=np.float32)
    for p in (0.0, 1.0):  # without and with MixUp
        x = torch.randn(4, 4)
        with torch.no_grad():
            before = net(x)[0]
        losses = hybrid_step(net, HybridLoss(), opt, sched, x, labels, dims, np.random.default_rng(0), p, 0.3)
        assert torch.isfinite(losses["loss"]) and all(torch.isfinite(q).all() for q in model.parameters())
        if p == 0.0:  # the cross-entropy is over the two clips with a category only
            ce = torch.nn.functional.cross_entropy(before[:2], torch.tensor([0, 3]), label_smoothing=0.1)
            assert losses["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
