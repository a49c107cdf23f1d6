"""Diarization error rate (DER), scored the standard way (NIST md-eval, as pyannote.metrics does):

    DER = (missed speech + false alarm + speaker confusion) / reference speech

over the scored time, which excludes a collar (default 0.25 s) on each side of every reference segment
boundary; hypothesis speakers are mapped one-to-one onto reference speakers to maximise their overlap
(Hungarian assignment). Time is sampled on a 10-ms grid. Segments may not overlap within one side here
(the generated conversations have no overlapping speech).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

Segments = Sequence[tuple[float, float, Hashable]]  # (start, end, speaker)
STEP = 0.01


@dataclass(frozen=True)
class DERParts:
    missed: float  # seconds of reference speech with no hypothesis speech
    false_alarm: float  # seconds of hypothesis speech where the reference has none
    confusion: float  # seconds where both have speech but the mapped speakers differ
    total: float  # seconds of scored reference speech

    @property
    def der(self) -> float:
        return (self.missed + self.false_alarm + self.confusion) / self.total if self.total else 0.0

    def __add__(self, other: DERParts) -> DERParts:
        return DERParts(self.missed + other.missed, self.false_alarm + other.false_alarm,
                        self.confusion + other.confusion, self.total + other.total)


def _labels(segments: Segments, n: int) -> tuple[np.ndarray, list[Hashable]]:
    names = list(dict.fromkeys(s for _, _, s in segments))
    out = np.full(n, -1, dtype=int)
    for start, end, spk in segments:
        out[int(round(start / STEP)): int(round(end / STEP))] = names.index(spk)
    return out, names


def der_parts(reference: Segments, hypothesis: Segments, collar: float = 0.25) -> DERParts:
    """Missed, false-alarm and confusion seconds of `hypothesis` against `reference`, collar excluded."""
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, e, _ in reference] + [e for _, e, _ in hypothesis] + [0.0])
    n = int(round(end / STEP)) + 1
    ref, ref_names = _labels(reference, n)
    hyp, hyp_names = _labels(hypothesis, n)
    scored = np.ones(n, dtype=bool)
    c = int(round(collar / STEP))
    if c:
        for start, stop, _ in reference:
            for t in (start, stop):
                i = int(round(t / STEP))
                scored[max(0, i - c): i + c] = False
    ref, hyp = ref[scored], hyp[scored]
    mapping = {}
    if ref_names and hyp_names:
        overlap = np.zeros((len(ref_names), len(hyp_names)))
        both = (ref >= 0) & (hyp >= 0)
        np.add.at(overlap, (ref[both], hyp[both]), 1)
        rows, cols = linear_sum_assignment(-overlap)
        mapping = {h: r for r, h in zip(rows, cols)}
    mapped = np.array([mapping.get(h, -2) if h >= 0 else -1 for h in hyp], dtype=int)
    missed = np.sum((ref >= 0) & (hyp < 0))
    false_alarm = np.sum((ref < 0) & (hyp >= 0))
    confusion = np.sum((ref >= 0) & (hyp >= 0) & (mapped != ref))
    return DERParts(missed * STEP, false_alarm * STEP, confusion * STEP, np.sum(ref >= 0) * STEP)


def diarization_error_rate(reference: Segments, hypothesis: Segments, collar: float = 0.25) -> float:
    """DER of one recording (0 = perfect; can exceed 1)."""
    return der_parts(reference, hypothesis, collar).der
