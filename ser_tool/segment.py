"""Where is speech, and how is it cut into analysis windows.

Two steps, both cheap and independent of the model:
1. `scan_speech` streams the recording once through a voice-activity detector (WebRTC's GMM VAD,
   gated by an energy floor so silence and steady noise are never speech) and returns speech regions,
   plus the stretches that were loud enough to be speech but were not taken as such. The energy floor
   follows the recording's own level (`ser_tool.level`): quiet speech over a clean background is found,
   noise is not; `SegmentationOptions.vad_floor_db` fixes it instead.
2. `plan_segments` turns regions into a timeline: speech regions cut into windows, gaps reported as
   non-speech. Regions up to 1.5 x window stay whole; longer ones are cut into `window`-second pieces
   every `hop` seconds.

Why these defaults: MERaLiON-SER-v1 scored 53.9 UAR on 2-s segments but 60.2 on merged segments,
so longer, utterance-like units are better. A 10-s window keeps whole utterances together (regions
up to 15 s are not cut), still shows how affect moves through a long call, and stays well inside the
30-s context of Whisper-based models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ser_tool.audio import SAMPLE_RATE, AudioSource, format_seconds
from ser_tool.errors import ConfigError, TooManyWindowsError
from ser_tool.level import FLOOR_HIGHEST_DB, FRAME, SPEECH_ABOVE_NOISE_DB, adaptive_floor_db, frame_levels, noise_floor_db

VadMode = Literal["webrtc", "energy"]

_FRAME = FRAME  # 30 ms at 16 kHz: one of the frame sizes WebRTC's VAD accepts
MAX_VAD_GAIN_DB = 40.0  # the detector hears a block peaking at -46 dBFS at -6 dBFS; the floor keeps noise out
GRID = 0.5  # seconds: speech region boundaries are snapped to this grid
FINE_GRID = 0.25  # seconds: ... and to this one where their exact place matters (speaker turns)
FRAME_SECONDS = FRAME / SAMPLE_RATE  # the detector's frame
MIN_FLOOR_DB, MAX_FLOOR_DB = -120.0, 0.0  # the range a fixed floor may be set in
DROPPED_MIN_DB = -90.0  # quieter than this is never reported as dropped sound (codec and dither noise)
DROPPED_MIN_SECONDS = 1.0  # dropped stretches shorter than this (clicks, breaths, a cough) go unmentioned


@dataclass(frozen=True)
class SegmentationOptions:
    window: float = 10.0  # seconds per analysis window
    hop: float | None = None  # seconds between window starts; None = window (no overlap)
    vad: VadMode = "webrtc"  # "energy": anything above the energy floor counts as speech
    vad_aggressiveness: int = 2  # WebRTC VAD, 0 (keeps most) .. 3 (strictest)
    # Frames quieter than this (dBFS RMS) are never speech. None: follow the recording - 12 dB above its
    # background, at most 45 dB under its loud level, within -96..-50 dBFS (ser_tool.level.adaptive_floor_db).
    vad_floor_db: float | None = None
    min_speech: float = 0.3  # speech regions shorter than this are dropped (clicks, breaths)
    min_silence: float = 0.6  # pauses shorter than this are bridged (stay inside the utterance)
    pad: float = 0.15  # seconds added to each side of a speech region (onsets are quiet)

    def __post_init__(self) -> None:
        if not self.window > 0:
            raise ConfigError(f"window must be positive seconds, got {self.window}")
        if self.hop is not None and not 0 < self.hop <= self.window:
            raise ConfigError(f"hop must be > 0 and <= window ({self.window} s), got {self.hop}")
        if self.vad not in ("webrtc", "energy"):
            raise ConfigError(f"vad must be 'webrtc' or 'energy', got {self.vad!r}")
        if self.vad_aggressiveness not in (0, 1, 2, 3):
            raise ConfigError(f"vad_aggressiveness must be 0..3, got {self.vad_aggressiveness}")
        if self.vad_floor_db is not None and not MIN_FLOOR_DB <= self.vad_floor_db <= MAX_FLOOR_DB:
            raise ConfigError(
                f"vad_floor_db must be {MIN_FLOOR_DB:g} to {MAX_FLOOR_DB:g} dBFS (or None to follow the "
                f"recording), got {self.vad_floor_db:g}"
            )

    @property
    def step(self) -> float:
        return self.hop if self.hop is not None else self.window


@dataclass(frozen=True)
class PlannedSegment:
    start: float
    end: float
    speech: bool
    speaker: int | None = None  # who speaks (1, 2, ...) when speakers were attributed; else None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class SpeechScan:
    """What one pass over a recording found."""

    regions: list[tuple[float, float]]  # speech regions, seconds
    peak: float  # peak absolute amplitude
    floor_db: float  # the energy floor that was applied, dBFS (the lowest of the recording's 30-s blocks)
    # Stretches (seconds) at least DROPPED_MIN_SECONDS long that stand clearly above the noise floor but
    # are not speech regions: sound the detector rejected, or quieter than the floor.
    dropped: list[tuple[float, float]]
    # Per 30-ms frame (FRAME_SECONDS): did the detector hear speech there. What the regions were made of.
    voiced: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False, compare=False)

    @property
    def dropped_seconds(self) -> float:
        return sum(e - s for s, e in self.dropped)

    def fine_regions(self, duration: float, options: SegmentationOptions, grid: float = FINE_GRID) -> list[tuple[float, float]]:
        """The speech regions with their edges rounded to the nearest `grid` step instead of pushed outwards to
        GRID: up to 0.5 s closer to where speech starts and ends (speaker attribution scores these edges)."""
        return _regions_from_frames(self.voiced, duration, options, grid=grid, outwards=False)


def _block_frames(samples: np.ndarray, options: SegmentationOptions, vad) -> tuple[np.ndarray, np.ndarray, float]:
    """Per 30-ms frame of `samples` (16 kHz, whole frames): is it speech, is it clearly above the noise
    floor; and the energy floor applied (fixed, or from these frames' own levels)."""
    levels = frame_levels(samples)
    n = len(levels)
    noise = noise_floor_db(levels)
    audible = levels > max(noise + SPEECH_ABOVE_NOISE_DB, DROPPED_MIN_DB)
    floor = options.vad_floor_db if options.vad_floor_db is not None else adaptive_floor_db(levels)
    loud = levels > floor
    if options.vad == "energy" or n == 0:
        return loud, audible, floor
    frames = samples[: n * _FRAME].reshape(n, _FRAME)
    # WebRTC's VAD is level-dependent and misses quiet (distant) voices: judge a level-normalised
    # copy. The energy floor still keeps amplified background noise out.
    peak = float(np.max(np.abs(frames)))
    gain = min(0.5 / peak, 10 ** (MAX_VAD_GAIN_DB / 20)) if peak > 0 else 1.0
    pcm = (np.clip(frames * gain, -1.0, 1.0) * 32767).astype("<i2")
    # The detector hears every frame, the floor gates its verdicts afterwards: it adapts its noise and speech
    # models frame by frame, so feeding it only the frames above the floor made its verdicts depend on the
    # floor (and the floor's bounds on the volume), and starved it of the background it compares speech with:
    # short words ("help", "stop") went unheard (12 EmoSpeech test clips refused, 7 with every frame heard).
    heard = np.fromiter((vad.is_speech(pcm[i].tobytes(), SAMPLE_RATE) for i in range(n)), dtype=bool, count=n)
    return heard & loud, audible, floor


def scan_speech(
    source: AudioSource, options: SegmentationOptions, check: Callable[[], None] | None = None,
) -> SpeechScan:
    """Stream `source` once: speech regions, peak, the floor used and the sound that was left out.

    The energy floor is taken per block (30 s), so it follows a background that changes over a long
    recording. `check` runs before each block and may raise to stop the pass (cancel, time limit).
    """
    vad = None
    if options.vad == "webrtc":
        import webrtcvad

        vad = webrtcvad.Vad(options.vad_aggressiveness)
    voiced: list[np.ndarray] = []
    audible: list[np.ndarray] = []
    floors: list[float] = []
    peak = 0.0
    carry = np.zeros(0, dtype=np.float32)
    for _, block in source.blocks():
        if check is not None:
            check()
        peak = max(peak, float(np.max(np.abs(block))) if len(block) else 0.0)
        block = np.concatenate([carry, block]) if len(carry) else block
        usable = len(block) - len(block) % _FRAME
        if usable:
            v, a, f = _block_frames(block[:usable], options, vad)
            voiced.append(v)
            audible.append(a)
            floors.append(f)
        carry = block[usable:]
    speech = np.concatenate(voiced) if voiced else np.zeros(0, dtype=bool)
    regions = _regions_from_frames(speech, source.duration, options)
    heard = np.concatenate(audible) if audible else np.zeros(0, dtype=bool)
    floor = min(floors) if floors else (options.vad_floor_db if options.vad_floor_db is not None else FLOOR_HIGHEST_DB)
    return SpeechScan(regions, peak, floor, _dropped_stretches(heard, regions, options), speech)


def detect_speech(
    source: AudioSource, options: SegmentationOptions, check: Callable[[], None] | None = None,
) -> tuple[list[tuple[float, float]], float]:
    """Stream `source` once; return (speech regions in seconds, peak absolute amplitude). See `scan_speech`."""
    scan = scan_speech(source, options, check)
    return scan.regions, scan.peak


def _dropped_stretches(audible: np.ndarray, regions: list[tuple[float, float]],
                       options: SegmentationOptions) -> list[tuple[float, float]]:
    """Runs of audible frames outside the speech regions (short pauses bridged), DROPPED_MIN_SECONDS or longer."""
    frame_s = _FRAME / SAMPLE_RATE
    outside = audible.copy()
    for s, e in regions:
        outside[int(s / frame_s): int(np.ceil(e / frame_s))] = False
    if not outside.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], outside.astype(np.int8), [0]])))
    runs: list[list[float]] = []
    for a, b in zip(edges[::2], edges[1::2]):
        if runs and a * frame_s - runs[-1][1] < options.min_silence:
            runs[-1][1] = b * frame_s
        else:
            runs.append([a * frame_s, b * frame_s])
    return [(round(s, 2), round(e, 2)) for s, e in runs if e - s >= DROPPED_MIN_SECONDS]


def _regions_from_frames(voiced: np.ndarray, duration: float, options: SegmentationOptions, grid: float = GRID,
                         outwards: bool = True) -> list[tuple[float, float]]:
    frame_s = _FRAME / SAMPLE_RATE
    regions: list[list[float]] = []
    if len(voiced):
        edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            regions.append([a * frame_s, b * frame_s])
    # bridge short pauses, drop what is still too short, then pad (padding may join neighbours)
    bridged: list[list[float]] = []
    for s, e in regions:
        if bridged and s - bridged[-1][1] < options.min_silence:
            bridged[-1][1] = e
        else:
            bridged.append([s, e])
    kept = [r for r in bridged if r[1] - r[0] >= options.min_speech]
    padded: list[list[float]] = []
    for s, e in kept:
        # Snap to a coarse grid: models see a bounded set of input lengths, so shape-keyed kernel caches
        # (oneDNN) stop growing and memory stays flat on long recordings. Outwards by default (no speech
        # is cut); to the nearest step for speaker turns, whose edges are scored.
        if outwards:
            s = np.floor(max(0.0, s - options.pad) / grid) * grid
            e = min(duration, np.ceil((e + options.pad) / grid) * grid)
        else:
            s = max(0.0, np.round((s - options.pad) / grid) * grid)
            e = min(duration, np.round((e + options.pad) / grid) * grid)
            if e - s < grid / 2:
                continue
        if padded and s <= padded[-1][1]:
            padded[-1][1] = e
        else:
            padded.append([s, e])
    return [(round(float(s), 3), round(float(e), 3)) for s, e in padded]


def plan_segments(
    regions: list[tuple[float, float]],
    duration: float,
    options: SegmentationOptions,
    max_input_seconds: float | None = None,
    max_windows: int | None = None,
    turns: Sequence[tuple[float, float, int]] | None = None,
) -> list[PlannedSegment]:
    """Timeline covering [0, duration]: speech regions cut into windows, gaps as non-speech segments.

    turns: (start, end, speaker) spans of the speech; regions are first cut at every speaker change, so
    no window straddles one, and each speech window carries its speaker.
    Raises TooManyWindowsError as soon as the speech windows would exceed `max_windows` (None: no cap),
    so an extreme window/hop never builds a huge plan.
    """
    longest = 1.5 * options.window
    if max_input_seconds:
        longest = min(longest, max_input_seconds)
    window = min(options.window, longest)
    step = min(options.step, window)
    out: list[PlannedSegment] = []
    cursor = 0.0
    n_windows = 0
    pieces = [(s, e, None) for s, e in regions] if turns is None else split_at_turns(regions, turns)
    for start, end, speaker in pieces:
        if start - cursor > 1e-3:
            out.append(PlannedSegment(round(cursor, 3), start, False))
        budget = None if max_windows is None else max_windows - n_windows
        windows = _windows(start, end, window, step, longest, budget)
        if windows is None:
            raise _too_many_windows(regions, window, step, longest, max_windows)
        n_windows += len(windows)
        out.extend(windows if speaker is None else [replace(w, speaker=speaker) for w in windows])
        cursor = end
    if duration - cursor > 1e-3:
        out.append(PlannedSegment(round(cursor, 3), round(duration, 3), False))
    return out


def split_at_turns(regions: Sequence[tuple[float, float]], turns: Sequence[tuple[float, float, int]]
                   ) -> list[tuple[float, float, int | None]]:
    """The speech regions cut at speaker changes: (start, end, speaker) pieces in time order. Speech that no
    turn covers takes the speaker of the nearest turn (None when there are no turns)."""
    ordered = sorted(turns)
    out: list[tuple[float, float, int | None]] = []
    for start, end in regions:
        inside = [(max(start, s), min(end, e), spk) for s, e, spk in ordered if s < end and e > start]
        if not inside:
            near = min(ordered, key=lambda t: min(abs(t[0] - end), abs(t[1] - start)), default=None)
            out.append((start, end, None if near is None else near[2]))
            continue
        # stretch the pieces to cover the region: each change sits where one turn ends and the next begins
        pieces = [[s, e, spk] for s, e, spk in inside]
        pieces[0][0], pieces[-1][1] = start, end
        for a, b in zip(pieces, pieces[1:]):
            a[1] = b[0] = round((a[1] + b[0]) / 2, 3) if a[1] < b[0] else b[0]
        merged: list[list] = []
        for p in pieces:
            if merged and merged[-1][2] == p[2]:
                merged[-1][1] = p[1]
            elif p[1] - p[0] > 1e-6:
                merged.append(p)
        out.extend((round(s, 3), round(e, 3), spk) for s, e, spk in merged)
    return out


def _windows(start: float, end: float, window: float, step: float, longest: float,
             budget: int | None = None) -> list[PlannedSegment] | None:
    """The windows of one speech region; None when they would be more than `budget`."""
    if budget is not None and budget < 1:
        return None
    if end - start <= longest:
        return [PlannedSegment(start, end, True)]
    spans: list[list[float]] = []
    t = start
    while t + window < end - 1e-6:
        if budget is not None and len(spans) >= budget:
            return None
        spans.append([t, t + window])
        t += step
    tail = end - t
    if spans and tail < window / 2 and end - spans[-1][0] <= longest:
        spans[-1][1] = end  # a short tail joins the previous window rather than standing alone
    else:
        if budget is not None and len(spans) >= budget:
            return None
        spans.append([t, end])
    return [PlannedSegment(round(s, 3), round(e, 3), True) for s, e in spans]


def _too_many_windows(regions: list[tuple[float, float]], window: float, step: float, longest: float,
                      max_windows: int) -> TooManyWindowsError:
    speech = sum(e - s for s, e in regions)
    needed = sum(1 if e - s <= longest else max(1, math.ceil((e - s - window) / step) + 1) for s, e in regions)
    return TooManyWindowsError(
        f"analysing {format_seconds(speech)} of speech with {window:g}-s windows every {step:g} s needs about "
        f"{needed} windows, more than the {max_windows} one analysis may run. Use a longer window or hop "
        f"(e.g. the default 10 s), or a shorter recording (or a part of it)"
    )


# -- steady tones: is the "speech" a voice at all? -----------------------------------------------------------
#
# A voice never holds one spectrum: pitch, formants and loudness move from syllable to syllable, and even a
# held vowel drifts in pitch, so the magnitude spectra of two frames 256 ms apart differ (median cosine
# similarity 0.34-0.43 on acted speech, at most 0.80 over 4,489 clips of five corpora, singing included).
# Sine tones, sums of tones, held chords and mains hum repeat the same spectrum (0.98-1.0, also under noise
# at 10 dB SNR or with tremolo; 0.94 for gated beeps). The VAD (the energy detector more so) lets such
# sounds through as "speech"; this check catches them, independently of the model. The only real clips
# it flags are recordings of 48-Hz mains hum with no audible word (7 EmoSpeech "unknown" clips).
# benchmarks/steady_tones.py measures all of this. Cost: a bounded sample of windows, one FFT pass each.

TONE_NFFT = 2048  # 128-ms frames: single harmonics resolved
TONE_LAG = 4  # frames compared 4 hops (256 ms) apart: long enough for a held vowel's pitch to drift
STEADY_SIMILARITY = 0.93  # median frame-to-frame similarity above this: a steady tone, not a voice
STEADY_SHARE = 0.5  # warn when more than this share of the (sampled) speech time is steady tones
TONE_SAMPLE_WINDOWS = 24  # at most this many speech windows are checked, spread over the recording
TONE_SAMPLE_SECONDS = 4.0  # ... each at most this long (from its middle)
_TONE_BAND = (40.0, 7000.0)  # Hz; includes mains hum at 50/60 Hz


def spectral_steadiness(samples: np.ndarray) -> float | None:
    """Median cosine similarity of the magnitude spectra of 128-ms frames 256 ms apart (16 kHz audio), over
    frames within 30 dB of the loudest: about 1 for a steady tone or chord, well under 0.9 for a voice. None
    when the stretch is too short or too quiet to judge."""
    x = np.asarray(samples, dtype=np.float32)
    hop = TONE_NFFT // 2
    n = 1 + (len(x) - TONE_NFFT) // hop if len(x) >= TONE_NFFT else 0
    if n <= TONE_LAG:
        return None
    idx = np.arange(TONE_NFFT)[None, :] + hop * np.arange(n)[:, None]
    mag = np.abs(np.fft.rfft(x[idx] * np.hanning(TONE_NFFT).astype(np.float32), axis=1))
    lo, hi = (int(f * TONE_NFFT / SAMPLE_RATE) for f in _TONE_BAND)
    mag = mag[:, lo:hi]
    energy = np.sum(mag.astype(np.float64) ** 2, axis=1)
    if energy.max() <= 0:
        return None
    active = energy >= energy.max() * 1e-3
    pairs = active[TONE_LAG:] & active[:-TONE_LAG]
    if pairs.sum() < 2:
        return None
    unit = mag / np.maximum(np.linalg.norm(mag, axis=1, keepdims=True), 1e-12)
    similarity = np.sum(unit[TONE_LAG:] * unit[:-TONE_LAG], axis=1)
    return float(np.median(similarity[pairs]))


def steady_tone_share(source: AudioSource, speech: list[PlannedSegment], similarity: float = STEADY_SIMILARITY) -> float:
    """Share of the speech time (over a bounded, evenly spread sample of the speech windows) that sounds like
    steady tones - sine tones, hum, held chords - rather than a voice: windows whose steadiness is at least
    `similarity`. 0.0 when nothing could be judged."""
    if not speech:
        return 0.0
    step = max(1, -(-len(speech) // TONE_SAMPLE_WINDOWS))
    judged = steady = 0.0
    for seg in speech[::step]:
        length = min(seg.duration, TONE_SAMPLE_SECONDS)
        start = seg.start + (seg.duration - length) / 2
        a = int(round(start * SAMPLE_RATE))
        score = spectral_steadiness(source.read(a, a + int(round(length * SAMPLE_RATE))))
        if score is None:
            continue
        judged += seg.duration
        steady += seg.duration if score >= similarity else 0.0
    return steady / judged if judged else 0.0
