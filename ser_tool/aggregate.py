"""Many readings of one voice -> one Affect: the one rule the report's overall affect and every
transcript segment use.

- A reading's confidence is how far its top probability sits above chance (`confidence_from`).
- Readings combine by weighted means (`mean_affect`): probabilities, valence/arousal/dominance (when
  every reading has them) and the unmapped share (when every reading has one); the top emotion and the
  confidence are then computed from the mean, never averaged themselves.
- Time covered by overlapping spans counts once (`covered_seconds`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from ser_tool.labels import EMOTIONS
from ser_tool.report import Affect, Dimensions, EmotionProbabilities

__all__ = ["affect_from", "confidence_from", "covered_seconds", "mean_affect"]


def confidence_from(probabilities: np.ndarray, n_supported: int) -> float:
    """How far the top probability sits above chance: 0 for a flat distribution, 1 for a certain one."""
    k = max(2, n_supported)
    return float(np.clip((probabilities.max() - 1.0 / k) / (1.0 - 1.0 / k), 0.0, 1.0))


def affect_from(p: np.ndarray, d: np.ndarray | None, unmapped: float | None, n_supported: int) -> Affect:
    """An Affect from probabilities over EMOTIONS (top emotion, confidence over n_supported), dims and unmapped mass."""
    probs = EmotionProbabilities.from_sequence(p)
    return Affect(
        emotion=EMOTIONS[int(np.argmax(p))],
        confidence=round(confidence_from(np.asarray(p, dtype=float) / np.sum(p), n_supported), 4),
        probabilities=probs,
        dimensions=None if d is None else Dimensions.from_sequence(d),
        unmapped_probability=None if unmapped is None else round(min(1.0, max(0.0, unmapped)), 4),
    )


def mean_affect(affects: Sequence[Affect], weights: Sequence[float] | np.ndarray, n_supported: int) -> Affect:
    """The weighted mean of several readings (weights: e.g. seconds), as one Affect.

    n_supported: how many emotions the model can output (the confidence's chance level)."""
    w = np.asarray(weights, dtype=float)
    if len(affects) == 0 or len(w) != len(affects) or not w.sum() > 0:
        raise ValueError(f"mean_affect needs readings with positive total weight (got {len(affects)} readings, {len(w)} weights)")
    probs = _mean(w, [a.probabilities.as_tuple() for a in affects])
    dims = None
    if all(a.dimensions is not None for a in affects):
        dims = _mean(w, [[a.dimensions.valence, a.dimensions.arousal, a.dimensions.dominance] for a in affects])
    unmapped = None
    if all(a.unmapped_probability is not None for a in affects):
        unmapped = float(_mean(w, [a.unmapped_probability for a in affects]))
    return affect_from(probs, dims, unmapped, n_supported)


def covered_seconds(spans: Iterable[tuple[float, float]]) -> float:
    """Length of the union of (start, end) spans: overlapping spans count once, empty ones not at all."""
    total, end = 0.0, -np.inf
    for s, e in sorted(spans):
        if e <= s or e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def _mean(w: np.ndarray, rows) -> np.ndarray:
    return w @ np.array(rows) / w.sum()
