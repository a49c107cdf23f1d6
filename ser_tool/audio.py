"""Audio in: the only module that decodes. Every source becomes 16 kHz mono float32.

Files are read lazily through libsndfile (WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, AIFF, ...), so a
one-hour recording is never held in memory whole: callers stream it in blocks or read the stretch
they need. Formats libsndfile cannot read (m4a, aac, webm, ...) fall back to ffmpeg through
audioread and are decoded into memory, after the duration limit has been checked.
"""

from __future__ import annotations

import io
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ser_tool.errors import (
    AudioDecodeError,
    AudioError,
    AudioNotFoundError,
    AudioTooLargeError,
    AudioTooLongError,
    EmptyAudioError,
    InvalidAudioError,
)

SAMPLE_RATE = 16_000

__all__ = ["SAMPLE_RATE", "AudioLimits", "AudioSource", "open_audio", "load_audio", "format_seconds", "write_wav"]


@dataclass(frozen=True)
class AudioLimits:
    """Limits enforced before any decoding. Both are configurable (SER_MAX_DURATION, SER_MAX_FILE_MB)."""

    max_duration: float = 2 * 3600.0  # seconds
    max_file_bytes: int = 1024 * 1024 * 1024  # 1 GiB

    def check_size(self, n_bytes: int, name: str) -> None:
        if n_bytes > self.max_file_bytes:
            raise AudioTooLargeError(
                f"{name} is {n_bytes / 2**20:.1f} MiB; the limit is {self.max_file_bytes / 2**20:.0f} MiB. "
                "Compress it (e.g. to Opus or FLAC), split it, or raise the limit with --max-file-mb / SER_MAX_FILE_MB."
            )

    def check_duration(self, seconds: float, name: str) -> None:
        if seconds > self.max_duration:
            raise AudioTooLongError(
                f"{name} is {format_seconds(seconds)} long; the limit is {format_seconds(self.max_duration)}. "
                "Split the recording, or raise the limit with --max-duration / SER_MAX_DURATION (seconds)."
            )


def format_seconds(seconds: float) -> str:
    """1:02:03 / 2:03 / 0:04.5 style time stamps."""
    seconds = max(0.0, float(seconds))
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}:{m:02d}:{s:02d}"
    frac = seconds - int(seconds)
    return f"{m}:{s:02d}" + (f".{int(frac * 10)}" if frac >= 0.05 and seconds < 60 else "")


class AudioSource:
    """A recording as 16 kHz mono float32, read on demand. Use as a context manager."""

    name: str
    num_samples: int

    @property
    def duration(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) at 16 kHz, mono float32."""
        raise NotImplementedError

    def blocks(self, block_samples: int = 30 * SAMPLE_RATE) -> Iterator[tuple[int, np.ndarray]]:
        """Stream the whole recording as (offset, samples) blocks, in order."""
        for start in range(0, self.num_samples, block_samples):
            yield start, self.read(start, min(start + block_samples, self.num_samples))

    def close(self) -> None:
        pass

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _ArrayAudio(AudioSource):
    def __init__(self, samples: np.ndarray, name: str) -> None:
        self.samples = samples
        self.name = name
        self.num_samples = len(samples)

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.samples[max(0, start):max(0, stop)]


class _SoundFileAudio(AudioSource):
    """A libsndfile handle; each read decodes only the requested stretch (plus a resampling margin)."""

    _MARGIN = 0.05  # seconds decoded either side so that resampling has context at the edges

    def __init__(self, handle: sf.SoundFile, name: str) -> None:
        self.handle = handle
        self.name = name
        self.rate = handle.samplerate
        self.num_samples = int(round(handle.frames * SAMPLE_RATE / self.rate))

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(stop, self.num_samples)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        if self.rate == SAMPLE_RATE:
            return self._decode(start, stop - start)
        margin = int(self._MARGIN * self.rate)
        n0 = max(0, int(np.floor(start * self.rate / SAMPLE_RATE)) - margin)
        n1 = min(self.handle.frames, int(np.ceil(stop * self.rate / SAMPLE_RATE)) + margin)
        native = self._decode(n0, n1 - n0)
        resampled = soxr.resample(native, self.rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
        offset = int(round(n0 * SAMPLE_RATE / self.rate))
        out = resampled[start - offset: stop - offset]
        if len(out) < stop - start:  # rounding at the very end of the file
            out = np.pad(out, (0, stop - start - len(out)))
        return out

    def _decode(self, frame: int, count: int) -> np.ndarray:
        try:
            self.handle.seek(frame)
            data = self.handle.read(count, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioDecodeError(f"{self.name}: decoding failed at {format_seconds(frame / self.rate)} ({e}); the file is probably truncated or corrupt") from e
        mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if not np.all(np.isfinite(mono)):
            bad = int(np.argmin(np.isfinite(mono)))
            raise InvalidAudioError(
                f"{self.name} contains NaN or infinite samples (first at {format_seconds((frame + bad) / self.rate)}); "
                "the file is corrupt or was written from broken data - re-export it"
            )
        return np.ascontiguousarray(mono, dtype=np.float32)

    def close(self) -> None:
        self.handle.close()


def open_audio(
    audio: str | os.PathLike | bytes | np.ndarray,
    *,
    sample_rate: int | None = None,
    name: str | None = None,
    limits: AudioLimits | None = None,
) -> AudioSource:
    """Open any supported audio for reading at 16 kHz mono.

    audio: a file path, the raw bytes of an audio file, or a NumPy array of samples (then
    `sample_rate` is required; shape (n,), (n, channels) or (channels, n) with channels <= 8;
    integer samples are scaled to [-1, 1]).
    Raises an AudioError subclass with a message saying what is wrong and what to do.
    """
    limits = limits or AudioLimits()
    if isinstance(audio, np.ndarray):
        return _ArrayAudio(_array_to_mono16k(audio, sample_rate, name or "<array>", limits), name or "<array>")
    if isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        label = name or "<bytes>"
        limits.check_size(len(data), label)
        if not data:
            raise EmptyAudioError(f"{label} is empty (0 bytes); send the content of an audio file")
        return _open_file_like(io.BytesIO(data), label, limits, raw=data)
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio).expanduser()
        label = name or str(audio)
        _check_path(path, label)
        limits.check_size(path.stat().st_size, label)
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"{label} is an empty file (0 bytes); it holds no audio")
        return _open_file_like(path, label, limits)
    raise InvalidAudioError(
        f"cannot read audio from a {type(audio).__name__}; pass a file path, the bytes of an audio file, "
        "or a NumPy array with its sample rate"
    )


def load_audio(audio, *, sample_rate: int | None = None, limits: AudioLimits | None = None) -> np.ndarray:
    """Decode a whole recording into memory as 16 kHz mono float32 (for short clips)."""
    with open_audio(audio, sample_rate=sample_rate, limits=limits) as src:
        return src.read(0, src.num_samples)


def _check_path(path: Path, label: str) -> None:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise AudioNotFoundError(f"{label}: no such file; check the path (relative paths start from {os.getcwd()})") from None
    except PermissionError:
        raise AudioError(f"{label}: permission denied; make the file readable for this user") from None
    except OSError as e:
        raise AudioNotFoundError(f"{label}: cannot access the file ({e.strerror})") from e
    if stat.S_ISDIR(st.st_mode):
        raise AudioNotFoundError(f"{label} is a directory, not an audio file; pass the files inside it (e.g. '{label}/*.wav')")
    if not stat.S_ISREG(st.st_mode):
        raise AudioNotFoundError(f"{label} is not a regular file (a device, pipe or socket); save the audio to a file first")
    if not os.access(path, os.R_OK):
        raise AudioError(f"{label}: permission denied; make the file readable for this user")


def _open_file_like(target, label: str, limits: AudioLimits, raw: bytes | None = None) -> AudioSource:
    try:
        handle = sf.SoundFile(target)
    except sf.LibsndfileError as e:
        return _decode_with_ffmpeg(target, label, limits, raw, reason=str(e))
    except PermissionError:
        raise AudioError(f"{label}: permission denied; make the file readable for this user") from None
    try:
        if handle.samplerate <= 0 or handle.channels <= 0:
            raise AudioDecodeError(f"{label}: the header says {handle.samplerate} Hz / {handle.channels} channels; the file is corrupt")
        if handle.frames <= 0:
            raise EmptyAudioError(f"{label} contains no audio samples (zero length); record or export it again")
        limits.check_duration(handle.frames / handle.samplerate, label)
    except AudioError:
        handle.close()
        raise
    return _SoundFileAudio(handle, label)


def _decode_with_ffmpeg(target, label: str, limits: AudioLimits, raw: bytes | None, reason: str) -> AudioSource:
    """Fallback for containers libsndfile does not know (m4a, aac, webm, ...), via audioread + ffmpeg."""
    hint = (
        f"{label} is not an audio file ser-tool can decode ({reason}). Supported: WAV, FLAC, OGG/Vorbis, "
        "OGG/Opus, MP3, AIFF; with ffmpeg installed also m4a/aac/webm and most others. If the file is audio, "
        "it may be truncated or corrupt."
    )
    try:
        import audioread
    except ImportError:
        raise AudioDecodeError(hint) from None
    tmp_path = None
    try:
        if raw is not None:
            with tempfile.NamedTemporaryFile(suffix=".audio", delete=False) as tmp:
                tmp.write(raw)
                tmp_path = tmp.name
        path = tmp_path or str(target)
        try:
            with audioread.audio_open(path) as f:
                rate, channels, duration = f.samplerate, f.channels, f.duration
                if not duration or rate <= 0:
                    raise AudioDecodeError(hint)
                limits.check_duration(duration, label)
                pcm = b"".join(f)
        except (audioread.exceptions.DecodeError, EOFError, OSError) as e:
            raise AudioDecodeError(hint) from e
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if channels > 1:
            samples = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
        return _ArrayAudio(_array_to_mono16k(samples, rate, label, limits), label)
    finally:
        if tmp_path:
            os.unlink(tmp_path)


def _array_to_mono16k(x: np.ndarray, sample_rate: int | None, label: str, limits: AudioLimits) -> np.ndarray:
    if sample_rate is None or int(sample_rate) <= 0:
        raise InvalidAudioError(f"{label}: a NumPy array needs its sample rate (e.g. sample_rate=16000); got {sample_rate!r}")
    sample_rate = int(sample_rate)
    if x.dtype.kind not in "iuf":
        raise InvalidAudioError(f"{label}: samples must be integers or floats, not {x.dtype}")
    if x.ndim == 2:
        if x.shape[0] <= 8 and x.shape[0] < x.shape[1]:
            x = x.T  # (channels, n) -> (n, channels)
        x = x.astype(np.float32) if x.dtype.kind == "f" else x
    elif x.ndim != 1:
        raise InvalidAudioError(f"{label}: expected a 1-D (mono) or 2-D (multi-channel) array, got shape {x.shape}")
    if x.shape[0] == 0:
        raise EmptyAudioError(f"{label} holds no samples")
    limits.check_duration(x.shape[0] / sample_rate, label)
    if x.dtype.kind == "i":
        x = x.astype(np.float32) / float(2 ** (8 * x.dtype.itemsize - 1))
    elif x.dtype.kind == "u":
        half = float(2 ** (8 * x.dtype.itemsize - 1))
        x = (x.astype(np.float32) - half) / half
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if not np.all(np.isfinite(x)):
        raise InvalidAudioError(f"{label} contains NaN or infinite samples; clean the signal (e.g. np.nan_to_num) before analysis")
    if sample_rate != SAMPLE_RATE:
        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(x)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float samples (-1..1) as a 16-bit PCM WAV file (e.g. recordings an evaluation builds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16")
    return path
