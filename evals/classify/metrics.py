"""Classification and regression metrics for SER, computed by hand with NumPy (no hidden defaults).

UAR (unweighted average recall, the MERaLiON paper's metric) = mean recall over the classes present
in the reference labels; WA (weighted accuracy) = plain accuracy; macro-F1 over the same classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FOUR_CLASS = ("neutral", "happy", "sad", "angry")  # the paper's 4-class view


def confusion(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Rows: reference class, columns: predicted class."""
    m = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(y_true, y_pred):
        m[t, p] += 1
    return m


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """UAR, WA, macro-F1, per-class recall/F1 and the confusion matrix over `labels`."""
    cm = confusion(y_true, y_pred, len(labels))
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    present = support > 0
    recall = np.divide(np.diag(cm), support, out=np.zeros(len(labels)), where=present)
    precision = np.divide(np.diag(cm), predicted, out=np.zeros(len(labels)), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(labels)), where=(precision + recall) > 0)
    n = int(support.sum())
    return {
        "n": n,
        "uar": float(recall[present].mean()) if present.any() else None,
        "wa": float(np.trace(cm) / n) if n else None,
        "macro_f1": float(f1[present].mean()) if present.any() else None,
        "per_class_recall": {lab: float(recall[i]) for i, lab in enumerate(labels) if present[i]},
        "per_class_f1": {lab: float(f1[i]) for i, lab in enumerate(labels) if present[i]},
        "support": {lab: int(support[i]) for i, lab in enumerate(labels)},
        "labels": list(labels),
        "confusion": cm.tolist(),
    }


def ccc(y: np.ndarray, p: np.ndarray) -> float:
    """Lin's concordance correlation coefficient of two 1-D arrays (population moments)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    my, mp = y.mean(), p.mean()
    denom = y.var() + p.var() + (my - mp) ** 2
    return float(2 * ((y - my) * (p - mp)).mean() / denom) if denom > 0 else 0.0


def restrict(probabilities: np.ndarray, y_true: np.ndarray, labels: Sequence[str], keep: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The paper's reduced views: samples of the `keep` classes only, predicted among those classes."""
    idx = [list(labels).index(k) for k in keep]
    mask = np.isin(y_true, idx)
    sub = probabilities[mask][:, idx]
    remap = {old: new for new, old in enumerate(idx)}
    return np.array([remap[t] for t in y_true[mask]], dtype=int), sub.argmax(axis=1) if len(sub) else np.zeros(0, dtype=int)
