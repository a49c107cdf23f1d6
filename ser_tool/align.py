"""Transcript segments aligned with the SER timeline, so each spoken segment carries its expressed
emotion, confidence and valence/arousal/dominance (the EmotionTranscript schema is in report.py, the
run that makes one is `Analyzer.transcribe`).

Alignment rules (`align`):
- a transcript segment takes every *speech* window of the timeline it overlaps, each weighted by the
  seconds of overlap; probabilities, dimensions and unmapped share are the weighted means, and the top
  emotion and confidence are computed from that mean (ser_tool.aggregate: the rule the report's
  `overall` uses);
- so a segment spanning two windows blends them in proportion to its time in each;
- non-speech stretches carry no weight; a segment that overlaps no speech window (e.g. words the
  recogniser heard in what the VAD called silence) gets `affect = null` and `speech_coverage = 0`;
- a zero-length segment (a point in time) takes the speech window containing that point;
- with speaker attribution, a segment's `speaker` is the one whose windows it overlaps longest (words
  that run across a change of speaker go to the speaker who holds most of them).
"""

from __future__ import annotations

from collections.abc import Sequence

from ser_tool.aggregate import covered_seconds, mean_affect
from ser_tool.asr import TranscriptSegment
from ser_tool.report import Segment, SpokenSegment

__all__ = ["align"]


def align(segments: Sequence[TranscriptSegment], timeline: Sequence[Segment], *, n_supported: int = 7) -> list[SpokenSegment]:
    """Attach to each transcript segment the overlap-weighted affect of the speech windows it spans."""
    speech = [s for s in timeline if s.speech and s.affect is not None]
    out = []
    for seg in segments:
        weights, affects = [], []
        for win in speech:
            if seg.end > seg.start:
                w = min(seg.end, win.end) - max(seg.start, win.start)
            else:
                w = 1.0 if win.start <= seg.start <= win.end else 0.0
            if w > 0:
                weights.append(w)
                affects.append(win.affect)
        length = seg.end - seg.start
        speaker = _main_speaker(seg, speech)
        if not affects:
            out.append(SpokenSegment(start=seg.start, end=seg.end, text=seg.text, affect=None, speech_coverage=0.0))
            continue
        covered = covered_seconds((max(seg.start, w.start), min(seg.end, w.end)) for w in speech)
        coverage = 1.0 if length <= 0 else min(1.0, covered / length)
        # inside one window: that window's reading as it is; across several: their overlap-weighted mean
        affect = affects[0] if len(affects) == 1 else mean_affect(affects, weights, n_supported)
        out.append(SpokenSegment(start=seg.start, end=seg.end, text=seg.text, affect=affect, speech_coverage=round(coverage, 4),
                                 speaker=speaker))
    return out


def _main_speaker(seg: TranscriptSegment, speech: Sequence[Segment]) -> int | None:
    """The speaker whose windows overlap `seg` longest (a point in time: the window holding it); None without speakers."""
    held: dict[int, float] = {}
    for win in speech:
        if win.speaker is None:
            continue
        if seg.end > seg.start:
            w = min(seg.end, win.end) - max(seg.start, win.start)
        else:
            w = 1.0 if win.start <= seg.start <= win.end else 0.0
        if w > 0:
            held[win.speaker] = held.get(win.speaker, 0.0) + w
    return max(held, key=lambda k: (held[k], -k)) if held else None

