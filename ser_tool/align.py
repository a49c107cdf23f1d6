"""The emotion-aware transcript: transcript segments aligned with the SER timeline, so each spoken
segment carries its expressed emotion, confidence and valence/arousal/dominance.

Alignment rules (`align`):
- a transcript segment takes every *speech* window of the timeline it overlaps, each weighted by the
  seconds of overlap; probabilities, dimensions and unmapped share are the weighted means, and the top
  emotion and confidence are computed from that mean (the rule the report's `overall` uses);
- so a segment spanning two windows blends them in proportion to its time in each;
- non-speech stretches carry no weight; a segment that overlaps no speech window (e.g. words the
  recogniser heard in what the VAD called silence) gets `affect = null` and `speech_coverage = 0`;
- a zero-length segment (a point in time) takes the speech window containing that point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ser_tool.analyzer import Analyzer, CancelHook, ProgressCallback, StopCheck, affect_from
from ser_tool.asr import ASR, Transcript, TranscriptSegment
from ser_tool.audio import SAMPLE_RATE, AudioLimits, format_seconds, open_audio
from ser_tool.report import Affect, AffectReport, Segment

__all__ = ["EmotionTranscript", "SpokenSegment", "align", "transcribe_with_emotion", "transcript_lines"]


class SpokenSegment(BaseModel):
    """One transcript segment with the affect the voice expresses while it is spoken."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float = Field(ge=0.0, description="Start time in seconds from the beginning of the recording.")
    end: float = Field(ge=0.0, description="End time in seconds from the beginning of the recording.")
    text: str = Field(description="The words spoken in this segment.")
    affect: Affect | None = Field(
        default=None,
        description="Expressed emotion, confidence and valence/arousal/dominance over this segment (the overlapping speech "
                    "windows, weighted by overlap); null when no analysed speech overlaps it.",
    )
    speech_coverage: float = Field(
        ge=0.0, le=1.0, description="Share of this segment's time covered by analysed speech windows (0..1)."
    )


class EmotionTranscript(BaseModel):
    """What was said and how: the transcript, segment by segment, with the expressed emotion of each.

    Emotion describes the tone of voice (expressed, not felt), not the meaning of the words.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="What was analysed (file name, or '<bytes>' / '<array>').")
    duration: float = Field(ge=0.0, description="Length of the recording in seconds.")
    text: str = Field(description="The whole transcript.")
    language: str | None = Field(default=None, description="Language code when known.")
    asr_model: str = Field(description="Which speech recogniser produced the words ('given' for a transcript passed in).")
    segments: list[SpokenSegment] = Field(description="Transcript segments in time order, each with its expressed affect.")
    report: AffectReport = Field(description="The full affect report of the recording (overall affect, timeline, description).")


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
        if not affects:
            out.append(SpokenSegment(start=seg.start, end=seg.end, text=seg.text, affect=None, speech_coverage=0.0))
            continue
        coverage = 1.0 if length <= 0 else min(1.0, _covered(seg, speech) / length)
        out.append(SpokenSegment(start=seg.start, end=seg.end, text=seg.text,
                                 affect=_blend(affects, np.asarray(weights), n_supported), speech_coverage=round(coverage, 4)))
    return out


def _blend(affects: Sequence[Affect], w: np.ndarray, n_supported: int) -> Affect:
    if len(affects) == 1:
        return affects[0]
    w = w / w.sum()
    probs = w @ np.array([a.probabilities.as_tuple() for a in affects])
    dims = None
    if all(a.dimensions is not None for a in affects):
        dims = w @ np.array([[a.dimensions.valence, a.dimensions.arousal, a.dimensions.dominance] for a in affects])
    unmapped = None
    if all(a.unmapped_probability is not None for a in affects):
        unmapped = float(w @ np.array([a.unmapped_probability for a in affects]))
    return affect_from(probs, dims, unmapped, n_supported)


def _covered(seg: TranscriptSegment, windows: Sequence[Segment]) -> float:
    """Seconds of `seg` inside the union of the windows (overlapping windows count once)."""
    spans = sorted((max(seg.start, w.start), min(seg.end, w.end)) for w in windows)
    total, end = 0.0, seg.start
    for s, e in spans:
        if e <= s or e <= end:
            continue
        total += e - max(s, end)
        end = e
    return total


def transcribe_with_emotion(
    audio: str | Path | bytes | BinaryIO | np.ndarray,
    *,
    analyzer: Analyzer,
    asr: ASR,
    sample_rate: int | None = None,
    name: str | None = None,
    limits: AudioLimits | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelHook | None = None,
) -> EmotionTranscript:
    """ASR + SER on one recording, aligned: each transcript segment with its expressed emotion.

    The audio (a path, bytes, an open binary file or an array) is decoded once (16 kHz mono) and the
    same samples go to both models, so it is held in memory whole and an open file is read only once.
    `cancel` stops the emotion analysis within one batch (see Analyzer.analyze) and the recogniser
    before it starts; a recogniser pass already running finishes first.
    """
    with open_audio(audio, sample_rate=sample_rate, name=name, limits=limits or analyzer.options.limits) as src:
        label = src.name
        wave = src.read(0, src.num_samples)
        decode_warnings = list(src.warnings)
    report = analyzer.analyze(wave, sample_rate=SAMPLE_RATE, name=label, timeline=True, progress=progress, cancel=cancel)
    if decode_warnings:  # the report was made from the decoded array, which no longer knows
        report = report.model_copy(update={"warnings": [*decode_warnings, *report.warnings]})
    StopCheck(cancel)()
    transcript: Transcript = asr.transcribe(wave)
    timeline = report.timeline or [Segment(start=0.0, end=report.duration, speech=True, affect=report.overall)]
    return EmotionTranscript(
        source=label,
        duration=report.duration,
        text=transcript.text,
        language=transcript.language,
        asr_model=transcript.model_id,
        segments=align(transcript.segments, timeline, n_supported=len(report.emotions_supported)),
        report=report,
    )


def transcript_lines(transcript: EmotionTranscript) -> list[str]:
    """One readable line per segment: time span, expressed emotion with confidence, the words."""
    lines = []
    for s in transcript.segments:
        span = f"[{format_seconds(s.start)}-{format_seconds(s.end)}]"
        if s.affect is None:
            tone = "(no speech analysed)"
        else:
            a = s.affect
            dims = f", V {a.dimensions.valence:.2f} A {a.dimensions.arousal:.2f} D {a.dimensions.dominance:.2f}" if a.dimensions else ""
            tone = f"({a.emotion}, confidence {a.confidence:.2f}{dims})"
        lines.append(f"{span} {tone} {s.text}")
    return lines
