"""Calibration maths, shared by training (the temperature a model is saved with) and the evaluations (ECE).

Both work on plain arrays: (N, C) logits or probabilities and (N,) integer labels.
"""

from __future__ import annotations

import numpy as np


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of softmax(logits / T) (grid + refine)."""
    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(labels)), labels].mean())

    if len(labels) == 0:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    t = float(grid[np.argmin([nll(g) for g in grid])])
    fine = t * np.exp(np.linspace(-0.06, 0.06, 25))
    return float(fine[np.argmin([nll(g) for g in fine])])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE with `bins` equal-width confidence bins: sum_b |acc_b - conf_b| * n_b / n."""
    if len(labels) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += abs(correct[m].mean() - conf[m].mean()) * m.mean()
    return float(ece)
