"""Calibration maths, shared by training (the prior shift and temperature a model is saved with) and the
evaluations (ECE).

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


def prior_shift(weights: np.ndarray) -> np.ndarray:
    """What calibration adds to a head's logits to undo the class weights it was trained with: -log w_c.

    Weighted cross-entropy teaches p(c|x) w_c / Z, the posterior of a training mix where every class is equally
    common: good for balanced recall, but it is sure of rare classes and unsure of common ones (a shipped head said
    0.49 on its neutral calls, right 0.76 of the time, and 0.86 on its surprised calls, right 0.63). Dividing by w_c
    (logit adjustment) gives the posterior under the training mix, on which a temperature can then be fitted.
    A class absent from training (weight 0) is left as trained.
    """
    w = np.asarray(weights, dtype=np.float64)
    shift = np.zeros(len(w))
    shift[w > 0] = -np.log(w[w > 0])
    return shift.astype(np.float32)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE with `bins` equal-width confidence bins: sum_b |acc_b - conf_b| * n_b / n."""
    if len(labels) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    where = _bin(conf, bins)
    ece = 0.0
    for b in np.unique(where):
        m = where == b
        ece += abs(correct[m].mean() - conf[m].mean()) * m.mean()
    return float(ece)


def _bin(conf: np.ndarray, bins: int) -> np.ndarray:
    """Each confidence's bin: (k/bins, (k+1)/bins] is bin k."""
    return np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)


def ece_noise_floor(probs: np.ndarray, bins: int = 15, draws: int = 2000, seed: int = 0) -> tuple[float, float]:
    """The ECE that a perfectly calibrated model with these confidences would show on this many clips.

    ECE over a few hundred clips is not zero even when every confidence is exactly right: each bin's
    accuracy is a sample. Draws which clips are right from their confidences (right with probability
    conf) `draws` times and returns the median and the 95th percentile of the ECE so measured; an ECE
    inside that range is what sampling alone gives, one above it is miscalibration.
    """
    if len(probs) == 0:
        return 0.0, 0.0
    conf = probs.max(axis=1)
    where = _bin(conf, bins)
    onehot = np.zeros((len(conf), bins))
    onehot[np.arange(len(conf)), where] = 1.0
    used = onehot.any(axis=0)
    conf_sum = conf @ onehot
    right = (np.random.default_rng(seed).random((draws, len(conf))) < conf).astype(float) @ onehot  # (draws, bins)
    ece = np.abs(right[:, used] - conf_sum[used]).sum(axis=1) / len(conf)  # sum_b |acc_b - conf_b| * n_b / n
    return float(np.median(ece)), float(np.percentile(ece, 95))
