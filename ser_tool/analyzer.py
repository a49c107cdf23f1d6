"""The Analyzer: owns one loaded backend and turns audio into AffectReports.

audio -> open (16 kHz mono, limits) -> detect speech -> plan windows -> model, batch by batch
-> aggregate -> AffectReport; `transcribe` adds a speech recogniser's words, aligned with that
report's timeline (an EmotionTranscript). Beyond the 10 minutes an audio file keeps decoded (ser_tool.audio),
only `batch_size` windows of audio are in memory at a time, so memory stays flat however long the recording is.

Work per call is bounded too: a plan of more than `max_windows` windows is refused before the model
runs, and a cancel hook and an optional time limit are checked before every batch (and every 30 s
block of the speech-detection pass), so a call can be stopped within one batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ser_tool.aggregate import affect_from, covered_seconds, mean_affect
from ser_tool.align import align
from ser_tool.asr import ASR, Transcript
from ser_tool.audio import SAMPLE_RATE, AudioLimits, AudioSource, format_seconds, open_audio
from ser_tool.backends import DEFAULT_BACKEND, Backend, BackendSpec, load_backend
from ser_tool.describe import NOT_A_VOICE, describe, describe_runs
from ser_tool.errors import AnalysisCancelled, AnalysisTimeLimitError, ConfigError, NoSpeechError, TooManyWindowsError
from ser_tool.labels import EMOTIONS
from ser_tool.level import model_inputs
from ser_tool.report import Affect, AffectReport, EmotionTranscript, Segment, SpeakerSummary
from ser_tool.segment import PlannedSegment, SegmentationOptions, SpeechScan, plan_segments, scan_speech
from ser_tool.segment import STEADY_SHARE, steady_tone_share
from ser_tool.speakers import SpeakerCount, parse_speakers

ProgressCallback = Callable[[int, int], None]  # (windows done, windows total)
ScanProgress = Callable[[float, float], None]  # (seconds scanned for speech, seconds in total)
# Set the event (or return True) to stop an analysis; it is checked before every batch.
CancelHook = threading.Event | Callable[[], bool]

# A 2-h recording (the default duration limit) at the default 10-s window has 720 windows, at a 5-s hop
# 1440: the cap leaves room for those and refuses plans that would multiply the work (e.g. 0.5-s windows
# every 0.25 s: 28 800 windows, 40x the default's number of model calls).
MAX_WINDOWS = 2000

SILENCE_PEAK = 1e-4  # peak amplitude below this (-80 dBFS) is digital silence
SHORT_SPEECH = 1.0  # seconds; less speech than this makes the scores shaky


@dataclass(frozen=True)
class AnalysisOptions:
    segmentation: SegmentationOptions = field(default_factory=SegmentationOptions)
    limits: AudioLimits = field(default_factory=AudioLimits)
    batch_size: int = 8
    max_windows: int | None = MAX_WINDOWS  # most model windows one analysis may run; None = no cap
    time_limit: float | None = None  # seconds one analysis may take (decoding included); None = no limit
    # Bring every window to the backend's speech level before a model that does not normalise its own
    # input (ser_tool.level), so the reading does not follow the recording's volume. False: as recorded.
    normalise_loudness: bool = True
    speakers: SpeakerCount | None = None  # attribute speech to speakers: a number, "auto", or None (don't)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {self.batch_size}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ConfigError(f"max_windows must be at least 1 (or None for no cap), got {self.max_windows}")
        object.__setattr__(self, "speakers", parse_speakers(self.speakers))
        if self.time_limit is not None and not self.time_limit > 0:
            raise ConfigError(f"time_limit must be positive seconds (or None for no limit), got {self.time_limit}")


class StopCheck:
    """Raises AnalysisCancelled once `cancel` is set, AnalysisTimeLimitError once `time_limit` seconds
    have passed since it was made. Call it between units of work."""

    def __init__(self, cancel: CancelHook | None = None, time_limit: float | None = None) -> None:
        self._cancelled = None if cancel is None else (cancel.is_set if isinstance(cancel, threading.Event) else cancel)
        self._time_limit = time_limit
        self._deadline = None if time_limit is None else time.monotonic() + time_limit

    def __call__(self) -> None:
        if self._cancelled is not None and self._cancelled():
            raise AnalysisCancelled("the analysis was cancelled before it finished; no report was made")
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise AnalysisTimeLimitError(
                f"the analysis took longer than its time limit ({self._time_limit:g} s) and was stopped. Analyse a "
                "shorter recording (or a part of it), or use a longer window and hop (fewer windows to run)"
            )


class _ScanReporter:
    """The audio source as speech detection sees it, reporting after each block how far the pass has come."""

    def __init__(self, source: AudioSource, report: ScanProgress) -> None:
        self._source, self._report = source, report

    def __getattr__(self, name: str):
        return getattr(self._source, name)

    def blocks(self, *args, **kwargs):
        total = self._source.duration
        for start, block in self._source.blocks(*args, **kwargs):
            yield start, block
            self._report(min(total, (start + len(block)) / SAMPLE_RATE), total)


class Analyzer:
    """Turns audio into AffectReports with one backend, loaded once (lazily) and reused.

    Thread-safe: the model loads under a lock and forward passes are serialised.
    """

    def __init__(
        self,
        backend: Backend | BackendSpec | str = DEFAULT_BACKEND,
        options: AnalysisOptions | None = None,
        **backend_kwargs,
    ) -> None:
        if isinstance(backend, str):
            backend = BackendSpec(name=backend, **backend_kwargs)
        elif backend_kwargs:
            raise ConfigError("backend options go with a backend name, not with a loaded backend")
        self._spec = backend if isinstance(backend, BackendSpec) else None
        self._backend: Backend | None = None if isinstance(backend, BackendSpec) else backend
        self.options = options or AnalysisOptions()
        self._lock = threading.Lock()

    @property
    def spec(self) -> BackendSpec | None:
        """How the model is (or will be) loaded; None when this analyzer was given a loaded backend."""
        return self._spec

    @property
    def backend(self) -> Backend:
        """The loaded model (loads it on first access)."""
        if self._backend is None:
            with self._lock:
                if self._backend is None:
                    self._backend = load_backend(self._spec)
        return self._backend

    def analyze(
        self,
        audio: str | Path | bytes | BinaryIO | np.ndarray,
        *,
        sample_rate: int | None = None,
        name: str | None = None,
        timeline: bool | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelHook | None = None,
        speakers: SpeakerCount | None = None,
        scan_progress: ScanProgress | None = None,
    ) -> AffectReport:
        """Analyse one recording.

        audio: path, bytes of an audio file, an open binary file (e.g. from `AllowedFolders.open_file`;
        decoded from that object, never reopened by name), or a NumPy array (with `sample_rate`).
        timeline: True = always include the segment timeline, False = never, None = only when the
        recording is longer than one analysis window.
        cancel: a threading.Event (or a callable returning True) that stops the analysis with
        AnalysisCancelled when set; checked before every batch, so it stops within one batch.
        progress(windows done, windows total): after each batch of model windows. scan_progress(seconds
        scanned, seconds total): while speech is detected, before the windows are planned (on a long
        recording that pass takes seconds; a progress display can show it instead of "0 windows").
        Raises TooManyWindowsError before the model runs when the plan exceeds options.max_windows, and
        AnalysisTimeLimitError when options.time_limit passes.
        speakers: attribute the speech to speakers - a number of speakers, or "auto" to estimate it
        (default: options.speakers; None = no attribution). Then windows are cut at speaker changes, the
        timeline is always included, each speech segment carries `speaker`, and the report has `speakers`.
        """
        opts = self.options
        speakers = opts.speakers if speakers is None else parse_speakers(speakers)
        check = StopCheck(cancel, opts.time_limit)
        with open_audio(audio, sample_rate=sample_rate, name=name, limits=opts.limits) as source:
            scanned = source if scan_progress is None else _ScanReporter(source, scan_progress)
            scan = scan_speech(scanned, opts.segmentation, check)
            regions, peak = scan.regions, scan.peak
            label = source.name
            if peak < SILENCE_PEAK:
                raise NoSpeechError(f"{label} is silent ({format_seconds(source.duration)} of digital silence); there is no voice to analyse")
            if not regions:
                raise NoSpeechError(
                    f"no speech detected in {label} ({format_seconds(source.duration)} of audio; nothing above "
                    f"{scan.floor_db:.0f} dBFS sounded like speech). If it does contain speech that is quiet or noisy, "
                    "try the energy speech detector, which analyses everything above the noise floor", setting="vad", value="energy"
                )
            turns = None
            if speakers is not None:
                from ser_tool.speakers import diarize

                # Speaker turns are timed at their edges: regions whose edges lie nearer the speech (the default
                # ones reach up to 0.5 s further out, to a coarser grid)
                regions = scan.fine_regions(source.duration, opts.segmentation) or regions
                turns = [(t.start, t.end, t.speaker) for t in diarize(source, regions, speakers, check)]
                timeline = True if timeline is None else timeline
            backend = self.backend
            try:
                plan = plan_segments(regions, source.duration, opts.segmentation, backend.max_input_seconds,
                                     opts.max_windows, turns)
            except TooManyWindowsError as e:
                raise TooManyWindowsError(f"{label}: {e.message}", hints=e.hints) from None
            speech = [seg for seg in plan if seg.speech]
            results = dict(zip(speech, self._predict(source, speech, progress, check), strict=True))
            report = self._report(source, label, plan, results, timeline, _dropped_sound(scan))
            return _not_a_voice(report) if steady_tone_share(source, speech) > STEADY_SHARE else report

    def transcribe(
        self,
        audio: str | Path | bytes | BinaryIO | np.ndarray,
        asr: ASR,
        *,
        sample_rate: int | None = None,
        name: str | None = None,
        limits: AudioLimits | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelHook | None = None,
        speakers: SpeakerCount | None = None,
    ) -> EmotionTranscript:
        """ASR + SER on one recording, aligned: each transcript segment with its expressed emotion.

        The audio (a path, bytes, an open binary file or an array) is decoded once (16 kHz mono) and the
        same samples go to both models, so it is held in memory whole and an open file is read only once.
        `cancel` stops the emotion analysis within one batch (see `analyze`) and the recogniser
        before it starts; a recogniser pass already running finishes first.
        speakers: as for `analyze` (default: options.speakers); then each transcript segment also says
        which speaker holds most of it.
        """
        with open_audio(audio, sample_rate=sample_rate, name=name, limits=limits or self.options.limits) as src:
            label = src.name
            wave = src.read(0, src.num_samples)
            decode_warnings = list(src.warnings)
        report = self.analyze(wave, sample_rate=SAMPLE_RATE, name=label, timeline=True, progress=progress, cancel=cancel,
                              speakers=speakers)
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

    def _predict(self, source: AudioSource, segments: Sequence[PlannedSegment], progress: ProgressCallback | None,
                 check: Callable[[], None]) -> list[Affect]:
        backend = self.backend
        if backend.sample_rate != SAMPLE_RATE:
            raise ConfigError(f"backend {backend.model_id} expects {backend.sample_rate} Hz audio; ser-tool feeds {SAMPLE_RATE} Hz")
        n_supported = len(backend.emotions_supported)
        out: list[Affect] = []
        for i in range(0, len(segments), self.options.batch_size):
            check()
            batch = segments[i: i + self.options.batch_size]
            waves = [source.read(int(round(s.start * SAMPLE_RATE)), int(round(s.end * SAMPLE_RATE))) for s in batch]
            waves = model_inputs(backend, waves, self.options.normalise_loudness)
            with self._lock:
                pred = backend.predict(waves)
            for j in range(len(batch)):
                out.append(affect_from(
                    pred.probabilities[j],
                    None if pred.dimensions is None else pred.dimensions[j],
                    None if pred.unmapped is None else float(pred.unmapped[j]),
                    n_supported,
                ))
            if progress:
                progress(len(out), len(segments))
        return out

    def _report(self, source: AudioSource, label: str, plan: list[PlannedSegment],
                results: dict[PlannedSegment, Affect], timeline: bool | None, notes: Sequence[str] = ()) -> AffectReport:
        backend, seg_opts = self.backend, self.options.segmentation
        overall = mean_affect(list(results.values()), [s.duration for s in results], len(backend.emotions_supported))
        speech_duration = covered_seconds((s.start, s.end) for s in results)
        segments = [Segment(start=s.start, end=s.end, speech=s.speech, affect=results.get(s), speaker=s.speaker) for s in plan]
        include = timeline if timeline is not None else (source.duration > seg_opts.window or len(plan) > 1)
        speakers = _speaker_summaries(segments, speech_duration, len(backend.emotions_supported)) \
            if any(s.speaker is not None for s in plan) else None
        description = describe(overall, duration=source.duration, speech_duration=speech_duration, timeline=segments,
                                speakers=speakers)
        return AffectReport(
            source=label,
            duration=round(source.duration, 3),
            speech_duration=round(speech_duration, 3),
            sample_rate=SAMPLE_RATE,
            backend=backend.name,
            model_id=backend.model_id,
            emotions_supported=list(backend.emotions_supported),
            overall=overall,
            timeline=segments if include else None,
            speakers=speakers,
            window=seg_opts.window,
            hop=seg_opts.step,
            description=description,
            warnings=[*source.warnings, *_warnings(overall, speech_duration, backend), *notes],  # decoding first
        )


def _dropped_sound(scan: SpeechScan) -> list[str]:
    """A warning when sound that stands out from the background was left out of the analysis."""
    if not scan.dropped:
        return []
    n = len(scan.dropped)
    where = f"at {format_seconds(scan.dropped[0][0])}" if n == 1 else f"{n} stretches, the first at {format_seconds(scan.dropped[0][0])}"
    return [
        f"{format_seconds(scan.dropped_seconds)} of sound ({where}) stands well above the background but was not "
        "taken as speech, so it is not in this report. If it is speech (a quiet or distant voice), analyse again "
        "with the energy speech detector (setting vad='energy') or a lower speech floor (setting vad_floor_db)."
    ]


def _speaker_summaries(segments: list[Segment], speech_duration: float,
                       n_supported: int) -> list[SpeakerSummary]:
    """One summary per speaker, in order of first speech, from the speech segments that carry a speaker."""
    out = []
    numbers = sorted({s.speaker for s in segments if s.speaker is not None},
                     key=lambda k: min(s.start for s in segments if s.speaker == k))
    for k in numbers:
        mine = [s for s in segments if s.speaker == k and s.affect is not None]
        turns, last = 0, None
        for s in segments:  # a turn ends when another speaker speaks (non-speech gaps do not end it)
            if s.speaker is not None and s.speaker != last:
                turns += s.speaker == k
                last = s.speaker
        time = covered_seconds((s.start, s.end) for s in mine)
        out.append(SpeakerSummary(
            speaker=k, name=f"speaker {k}", first_speech=mine[0].start, speaking_time=round(time, 3),
            share=round(min(1.0, time / speech_duration), 4) if speech_duration else 0.0, turns=max(1, turns),
            overall=mean_affect([s.affect for s in mine], [s.end - s.start for s in mine], n_supported),
            change=describe_runs(mine),
        ))
    return out


def _warnings(overall: Affect, speech_duration: float, backend: Backend) -> list[str]:
    out = []
    if speech_duration < SHORT_SPEECH:
        out.append(f"Only {speech_duration:.1f} s of speech was found; scores from so little speech are unreliable.")
    if overall.uncertain:
        out.append("No emotion clearly dominates (low confidence); treat the top emotion as a guess.")
    missing = [e for e in EMOTIONS if e not in backend.emotions_supported]
    if missing:
        out.append(f"This model cannot detect: {', '.join(missing)} (their probability is always 0).")
    if overall.unmapped_probability is not None and overall.unmapped_probability > 0.25:
        out.append(f"{overall.unmapped_probability:.0%} of the model's probability went to labels outside the 7 emotions; they were removed.")
    if not backend.has_dimensions:
        out.append("This model has no valence/arousal/dominance head; dimensions are null.")
    return out


def _not_a_voice(report: AffectReport) -> AffectReport:
    """The report of audio that is mostly steady tones (sine, hum, chord): the caveat leads the description
    and joins the warnings; the scores stay as the model gave them."""
    return report.model_copy(update={"description": f"{NOT_A_VOICE} {report.description}",
                                     "warnings": [NOT_A_VOICE, *report.warnings]})


def transcribe_with_emotion(audio, *, analyzer: Analyzer, asr: ASR, **kwargs) -> EmotionTranscript:
    """`analyzer.transcribe(audio, asr, **kwargs)`: the words of one recording, each segment with its expressed emotion."""
    return analyzer.transcribe(audio, asr, **kwargs)
