"""Audio in: the only module that decodes. Every source becomes 16 kHz mono float32.

Files are read lazily through libsndfile (WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, AIFF, ...), so a
one-hour recording is never held in memory whole: callers stream it in blocks or read the stretch
they need. Containers libsndfile cannot read (M4A/MP4, WebM/Matroska, AAC, AMR, WMA, CAF, ...) fall
back to ffmpeg, which decodes them into memory.

The ffmpeg fallback is hostile-input safe by construction: ffmpeg gets the bytes through a pipe
(`-i pipe:0`, protocol whitelist `pipe` only, never a file name), with a demuxer forced from a small
allow-list of audio containers sniffed from the magic bytes - anything else (playlists such as HLS,
concat scripts, text, images, SDP, ...) is refused before ffmpeg starts. So ffmpeg can only decode
the bytes it was given and cannot open any other file or URL. Its output is streamed and counted:
decoding stops at the duration limit whatever the header claims, so memory stays bounded by it.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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

# Header sample rates outside this range are corrupt (or not speech); resampling them is pointless or huge.
MIN_FILE_RATE, MAX_FILE_RATE = 1_000, 768_000
FFMPEG_TIMEOUT = 300.0  # seconds; a backstop for a stuck ffmpeg (2 h of AAC decodes in well under a minute)
KEEP_FIRST_PASS = 600.0  # seconds of ffmpeg output kept on the first pass; longer streams are counted, then decoded again
_DURATION_MARGIN = 1.0  # seconds ffmpeg decodes past the limit, so that "longer than the limit" is seen
_READ_BUDGET = 1 << 22  # samples (all channels) per libsndfile read: bounds memory for many-channel files
_CHUNK = 1 << 20  # bytes per pipe write / read
_SUPPORTED = (
    "Supported: WAV, FLAC, OGG/Vorbis, OGG/Opus, MP3, AIFF; with ffmpeg installed also M4A/MP4/MOV, "
    "WebM/Matroska, AAC (ADTS), AMR, WMA/ASF and CAF"
)


@dataclass(frozen=True)
class AudioLimits:
    """Limits enforced before any decoding. Both are settings (max_duration, max_file_mb)."""

    max_duration: float = 2 * 3600.0  # seconds
    max_file_bytes: int = 1024 * 1024 * 1024  # 1 GiB

    def check_size(self, n_bytes: int, name: str) -> None:
        if n_bytes > self.max_file_bytes:
            raise AudioTooLargeError(
                f"{name} is {n_bytes / 2**20:.1f} MiB; the limit is {self.max_file_bytes / 2**20:.0f} MiB. "
                "Compress it (e.g. to Opus or FLAC), split it, or raise the limit", setting="max_file_mb"
            )

    def check_duration(self, seconds: float, name: str) -> None:
        if seconds > self.max_duration:
            raise AudioTooLongError(
                f"{name} is {format_seconds(seconds)} long; the limit is {format_seconds(self.max_duration)}. "
                "Split the recording, or raise the limit", setting="max_duration"
            )

    def too_long_while_decoding(self, name: str) -> AudioTooLongError:
        """The error for audio found to run past the limit while decoding (its header said otherwise or nothing)."""
        return AudioTooLongError(
            f"{name} is longer than the limit of {format_seconds(self.max_duration)} (decoding stopped at the limit; "
            "the file's header did not announce its real length). Split the recording, or raise the limit",
            setting="max_duration",
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
    """A recording as 16 kHz mono float32, read on demand. Use as a context manager.

    `read` and `blocks` may be called any number of times, in any order. `warnings` collects what a
    reader of the analysis should know about the decoding (e.g. a truncated file); it can grow while
    the source is read, since some damage only shows when the decoder reaches it. `num_samples` can
    shrink at the same moment (to the part that decodes).
    """

    name: str
    num_samples: int
    warnings: list[str]

    def __init__(self, name: str, num_samples: int, warnings: list[str] | None = None) -> None:
        self.name = name
        self.num_samples = num_samples
        self.warnings = list(warnings or [])

    @property
    def duration(self) -> float:
        return self.num_samples / SAMPLE_RATE

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) at 16 kHz, mono float32 (shorter only where the file proves shorter)."""
        raise NotImplementedError

    def blocks(self, block_samples: int = 30 * SAMPLE_RATE) -> Iterator[tuple[int, np.ndarray]]:
        """Stream the whole recording as (offset, samples) blocks, in order."""
        start = 0
        while start < self.num_samples:
            block = self.read(start, min(start + block_samples, self.num_samples))
            if not len(block):
                return
            yield start, block
            start += block_samples

    def close(self) -> None:
        pass

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _ArrayAudio(AudioSource):
    def __init__(self, samples: np.ndarray, name: str, warnings: list[str] | None = None) -> None:
        super().__init__(name, len(samples), warnings)
        self.samples = samples

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.samples[max(0, start):max(0, stop)]


class _BlocksAudio(AudioSource):
    """Decoded samples held in memory as consecutive equal-size blocks (see _PcmBuffer)."""

    def __init__(self, blocks: list[np.ndarray], name: str, warnings: list[str] | None = None) -> None:
        super().__init__(name, sum(len(b) for b in blocks), warnings)
        self._blocks = blocks
        self._size = len(blocks[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(stop, self.num_samples)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        first, last = start // self._size, (stop - 1) // self._size
        if first == last:
            return self._blocks[first][start - first * self._size: stop - first * self._size]
        parts = [self._blocks[first][start - first * self._size:]]
        parts += self._blocks[first + 1: last]
        parts.append(self._blocks[last][: stop - last * self._size])
        return np.concatenate(parts)


class _Input:
    """The bytes of one audio file, read by position from an already-open descriptor or buffer.

    Nothing is ever reopened by name: a path is opened once here, a caller's file object is used as is.
    """

    def __init__(self, label: str, size: int, *, fd: int | None = None, fileobj: BinaryIO | None = None,
                 owns_fd: bool = False) -> None:
        self.label, self.size, self.fd, self.fileobj, self.owns_fd = label, size, fd, fileobj, owns_fd
        self._lock = threading.Lock()

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to n bytes at offset (fewer only at the end of the file)."""
        n = max(0, min(n, self.size - offset))
        if n == 0:
            return b""
        if self.fd is not None and hasattr(os, "pread"):
            parts, got = [], 0
            while got < n:
                part = os.pread(self.fd, n - got, offset + got)
                if not part:
                    break
                parts.append(part)
                got += len(part)
            return b"".join(parts)
        with self._lock:
            if self.fd is not None:
                os.lseek(self.fd, offset, os.SEEK_SET)
                return os.read(self.fd, n)
            self.fileobj.seek(offset)
            data = self.fileobj.read(n)
        if not isinstance(data, (bytes, bytearray)):
            raise InvalidAudioError(f"{self.label}: the file object returned {type(data).__name__}, not bytes; open it in binary mode ('rb')")
        return bytes(data)

    def soundfile(self) -> sf.SoundFile:
        """A libsndfile handle on the same descriptor / buffer, from its first byte."""
        with decoder_stderr_captured():  # probing a file may wake libmpg123, which talks on stderr
            if self.fd is not None:
                os.lseek(self.fd, 0, os.SEEK_SET)  # sf_open_fd treats the current offset as the file's start
                return sf.SoundFile(self.fd, closefd=False)
            self.fileobj.seek(0)
            return sf.SoundFile(self.fileobj)

    def close(self) -> None:
        if self.owns_fd and self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _SoundFileAudio(AudioSource):
    """A libsndfile handle. A recording up to WHOLE_SECONDS long is decoded once, on its first read, and kept
    (at most 38 MB): the speech scan and the model's windows then share one decoding. A longer one is decoded
    stretch by stretch, each read only the requested stretch (plus a resampling margin), so memory stays flat;
    its first pass through `blocks` (the speech scan) also writes what it decoded to a temporary file (16 kHz
    float32, 230 MB an hour, removed when the source closes or the process ends), so the model's windows are read
    back from disk instead of decoded a second time. Where that file cannot be written (no space), reads decode."""

    _MARGIN = 0.05  # seconds decoded either side so that resampling has context at the edges
    WHOLE_SECONDS = 600.0

    def __init__(self, handle: sf.SoundFile, name: str, source: _Input, warnings: list[str]) -> None:
        self.handle, self.source = handle, source
        # libsndfile decodes MP3 with libmpg123, which prints to stderr on good files (after a seek the first
        # frame misses its bit reservoir: "part2_3_length ... too large"); the other formats are quiet.
        self._quiet = decoder_stderr_captured if handle.format == "MP3" else contextlib.nullcontext
        self.rate, self.channels = handle.samplerate, handle.channels
        self.frames = handle.frames  # native frames that decode; lowered if the file proves shorter
        self.announced = handle.frames
        self._whole: np.ndarray | None = None  # the decoded recording, when it is short enough to keep
        self._spill: BinaryIO | None = None  # a long recording's decoded samples, written by the first `blocks` pass
        self._spilled = 0  # samples from the start that are in the spill file
        super().__init__(name, int(round(self.frames * SAMPLE_RATE / self.rate)), warnings)

    def read(self, start: int, stop: int) -> np.ndarray:
        if self._whole is None and self.num_samples <= self.WHOLE_SECONDS * SAMPLE_RATE:
            self._whole = self._read(0, self.num_samples)  # may find the file shorter: num_samples follows
        if self._whole is not None:
            start, stop = max(0, start), min(stop, len(self._whole))
            return self._whole[start:stop].copy() if stop > start else np.zeros(0, dtype=np.float32)
        start, stop = max(0, start), min(stop, self.num_samples)
        if self._spill is not None and stop <= self._spilled:
            if stop <= start:
                return np.zeros(0, dtype=np.float32)
            data = os.pread(self._spill.fileno(), 4 * (stop - start), 4 * start)
            if len(data) == 4 * (stop - start):
                return np.frombuffer(data, dtype=np.float32).copy()
            self._drop_spill()  # cut short behind our back: decode instead
        return self._read(start, stop)

    def blocks(self, block_samples: int = 30 * SAMPLE_RATE) -> Iterator[tuple[int, np.ndarray]]:
        if self._whole is not None or self._spill is not None or self.num_samples <= self.WHOLE_SECONDS * SAMPLE_RATE \
                or not hasattr(os, "pread"):
            yield from super().blocks(block_samples)
            return
        try:
            self._spill = _spill_file()
        except OSError:
            self._spill = None
        for start, block in super().blocks(block_samples):
            if self._spill is not None and start == self._spilled:
                try:
                    self._spill.write(np.ascontiguousarray(block, dtype=np.float32).tobytes())
                    self._spill.flush()
                    self._spilled += len(block)
                except OSError:  # no space: this recording is decoded again where it is read
                    self._drop_spill()
            yield start, block

    def _drop_spill(self) -> None:
        if self._spill is not None:
            with contextlib.suppress(OSError):
                self._spill.close()
        self._spill, self._spilled = None, 0

    def _read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(stop, self.num_samples)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        with _translate_errors(self.name):
            if self.rate == SAMPLE_RATE:
                out = self._decode(start, stop - start)
                return out[: max(0, min(stop, self.num_samples) - start)]
            margin = int(self._MARGIN * self.rate)
            n0 = max(0, int(np.floor(start * self.rate / SAMPLE_RATE)) - margin)
            n1 = min(self.frames, int(np.ceil(stop * self.rate / SAMPLE_RATE)) + margin)
            native = self._decode(n0, n1 - n0)
            stop = min(stop, self.num_samples)  # the file may have proved shorter
            if stop <= start or not len(native):
                return np.zeros(0, dtype=np.float32)
            resampled = _resample(native, self.rate, self.name)
            offset = int(round(n0 * SAMPLE_RATE / self.rate))
            out = resampled[start - offset: stop - offset]
            if len(out) < stop - start:  # rounding at the very end of the file
                out = np.pad(out, (0, stop - start - len(out)))
            return out

    def _decode(self, frame: int, count: int) -> np.ndarray:
        """Native-rate mono samples [frame, frame + count); shorter if the file ends early or breaks."""
        step = max(1, _READ_BUDGET // max(1, self.channels))
        pieces, pos, end = [], frame, frame + count
        while pos < end:
            n = min(step, end - pos)
            try:
                with self._quiet():
                    self.handle.seek(pos)
                    data = self.handle.read(n, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError) as e:
                data = self._salvage(pos, n)
                pieces.append(self._mono(data, pos))
                self._ends_early(pos + len(data), _sf_reason(e))
                break
            pieces.append(self._mono(data, pos))
            if len(data) < n:
                self._ends_early(pos + len(data), "the file ends before the length its header announces", quiet_below=1.0)
                break
            pos += n
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def _salvage(self, frame: int, count: int) -> np.ndarray:
        """After a failed read: the frames that still decode from `frame`, in small steps.

        libsndfile's handle stays broken after a decoding error, so each attempt starts from a fresh
        handle on the same descriptor / buffer (never the path).
        """
        step = max(1, self.rate // 10)
        got, pos = [], frame
        self._reopen()
        while pos < frame + count:
            try:
                with self._quiet():
                    self.handle.seek(pos)
                    data = self.handle.read(min(step, frame + count - pos), dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError):
                self._reopen()
                break
            if not len(data):
                break
            got.append(data)
            pos += len(data)
        return np.concatenate(got) if got else np.zeros((0, self.channels), dtype=np.float32)

    def _reopen(self) -> None:
        self.handle.close()
        self.handle = self.source.soundfile()

    def _ends_early(self, end_frame: int, reason: str, quiet_below: float = 0.0) -> None:
        """The file decodes only up to end_frame: analyse that part and say so, or fail if nothing decodes.

        quiet_below: a shortfall under this many seconds (and 2 %) is not worth a warning - MP3 lengths
        without a Xing header are estimates that miss by a frame or two.
        """
        if end_frame >= self.frames:
            return
        if end_frame <= 0:
            raise AudioDecodeError(f"{self.name}: no audio could be decoded ({reason}); the file is corrupt or truncated - re-export it")
        missing = (self.frames - end_frame) / self.rate
        self.frames = end_frame
        self.num_samples = int(round(end_frame * SAMPLE_RATE / self.rate))
        if missing < quiet_below and missing < 0.02 * self.announced / self.rate:
            return
        self.warnings.append(
            f"The audio file is damaged or truncated: decoding stopped at {format_seconds(end_frame / self.rate)} of the "
            f"{format_seconds(self.announced / self.rate)} its header announces ({reason}); only the part before that was analysed."
        )

    def _mono(self, data: np.ndarray, frame: int) -> np.ndarray:
        mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if not np.all(np.isfinite(mono)):
            bad = int(np.argmin(np.isfinite(mono)))
            raise InvalidAudioError(
                f"{self.name} contains NaN or infinite samples (first at {format_seconds((frame + bad) / self.rate)}); "
                "the file is corrupt or was written from broken data - re-export it"
            )
        return np.ascontiguousarray(mono, dtype=np.float32)

    def close(self) -> None:
        try:
            self._drop_spill()
            self.handle.close()
        finally:
            self.source.close()


def _spill_file() -> BinaryIO:
    """A temporary file for decoded samples ($TMPDIR honoured), unlinked at once where the OS allows."""
    return tempfile.TemporaryFile(prefix="ser-tool-decoded-")


def open_audio(
    audio: str | os.PathLike | bytes | BinaryIO | np.ndarray,
    *,
    sample_rate: int | None = None,
    name: str | None = None,
    limits: AudioLimits | None = None,
) -> AudioSource:
    """Open any supported audio for reading at 16 kHz mono.

    audio: a file path, the raw bytes of an audio file, an open binary file object, or a NumPy array
    of samples (then `sample_rate` is required; shape (n,), (n, channels) or (channels, n) with
    channels <= 8; integer samples are scaled to [-1, 1]).

    A file object (e.g. `open(path, "rb")` or `os.fdopen(fd, "rb")`) is decoded from its own
    descriptor, never reopened by name; the whole file is decoded from byte 0, whatever its position.
    The caller keeps ownership: it must stay open, and not be used by anyone else, until the returned
    source is closed; it is not closed here and its position afterwards is unspecified. A file object
    that is not seekable (a pipe) is read into memory first, up to the size limit. Give it a `name`
    for messages (default "<file object>").

    Raises an AudioError subclass with a message saying what is wrong and what to do; the message
    names the source by `name` (or the path as given) only.
    """
    limits = limits or AudioLimits()
    if isinstance(audio, np.ndarray):
        label = name or "<array>"
        with _translate_errors(label):
            return _ArrayAudio(_array_to_mono16k(audio, sample_rate, label, limits), label)
    if isinstance(audio, (bytes, bytearray, memoryview)):
        data = bytes(audio)
        label = name or "<bytes>"
        limits.check_size(len(data), label)
        if not data:
            raise EmptyAudioError(f"{label} is empty (0 bytes); send the content of an audio file")
        return _open_input(_Input(label, len(data), fileobj=io.BytesIO(data)), limits)
    if isinstance(audio, (str, os.PathLike)):
        label = name or str(audio)
        with _translate_errors(label):
            inp = _open_path(Path(audio).expanduser(), label, limits)
        return _open_input(inp, limits)
    if hasattr(audio, "read"):
        label = name or "<file object>"
        with _translate_errors(label):
            inp = _from_file_object(audio, label, limits)
        return _open_input(inp, limits)
    raise InvalidAudioError(
        f"cannot read audio from a {type(audio).__name__}; pass a file path, the bytes of an audio file, "
        "an open binary file, or a NumPy array with its sample rate"
    )


def load_audio(audio, *, sample_rate: int | None = None, limits: AudioLimits | None = None) -> np.ndarray:
    """Decode a whole recording into memory as 16 kHz mono float32 (for short clips)."""
    with open_audio(audio, sample_rate=sample_rate, limits=limits) as src:
        return src.read(0, src.num_samples)


# -- what C decoders print ---------------------------------------------------------------------------------
#
# libmpg123 (linked into libsndfile for MP3) writes its notes straight to the process's stderr (fd 2), where
# Python cannot catch them: a good MP3 read in blocks printed a line after every seek. While libsndfile works
# on an MP3 (or probes an unknown file), fd 2 points at a temporary file; afterwards the decoder's lines are
# dropped and anything else written there meanwhile (another thread's log line) is passed on. Nested and
# concurrent users share one redirection (a count), so decoding in several threads is not serialised.

# libmpg123's lines: "[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: ..." (older versions: "Note: ...")
_DECODER_LINE = re.compile(rb"^\s*(?:\[[^\]]*mpg123[^\]]*\]|Note: (?:Illegal Audio-MPEG-Header|Trying to resync|Skipped))")
_capture_lock = threading.Lock()
_capture: dict = {"depth": 0, "active": False, "saved": None, "sink": None}


@contextmanager
def decoder_stderr_captured():
    """Keep what C decoders print on fd 2 off the user's terminal for the duration (see above)."""
    with _capture_lock:
        if _capture["depth"] == 0:
            _capture["active"] = _start_capture()  # False: no usable fd 2 (closed, or not a file), nothing to do
        _capture["depth"] += 1
    try:
        yield
    finally:
        with _capture_lock:
            _capture["depth"] -= 1
            if _capture["depth"] == 0 and _capture["active"]:
                _end_capture()


def _start_capture() -> bool:
    try:
        if sys.stderr is not None:  # what Python buffered goes out first, in order
            sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        return False
    sink = tempfile.TemporaryFile()
    try:
        os.dup2(sink.fileno(), 2)
    except OSError:
        os.close(saved)
        sink.close()
        return False
    _capture.update(saved=saved, sink=sink)
    return True


def _end_capture() -> None:
    saved, sink = _capture["saved"], _capture["sink"]
    _capture.update(saved=None, sink=None)
    try:
        if sys.stderr is not None:
            sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os.dup2(saved, 2)
    os.close(saved)
    sink.seek(0)
    others = [line for line in sink.read().splitlines(keepends=True) if not _DECODER_LINE.match(line)]
    sink.close()
    if others:
        try:
            os.write(2, b"".join(others))
        except OSError:
            pass


@contextmanager
def _translate_errors(label: str):
    """Whatever a decoder library raises becomes an AudioError that names the source by its label only."""
    try:
        yield
    except AudioError:
        raise
    except MemoryError:
        raise AudioError(f"{label}: not enough memory to decode it; split the file, or lower the duration limit", setting="max_duration") from None
    except Exception as e:
        raise AudioDecodeError(f"{label} could not be decoded ({type(e).__name__}); the file is probably corrupt - re-export it") from e


# --- opening: every input becomes an _Input (one descriptor or buffer, never reopened) ----------------

def _check_stat(st: os.stat_result, label: str) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise AudioNotFoundError(f"{label} is a directory, not an audio file; pass the files inside it (e.g. '{label}/*.wav')")
    if not stat.S_ISREG(st.st_mode):
        raise AudioNotFoundError(f"{label} is not a regular file (a device, pipe or socket); save the audio to a file first")


def _check_size(size: int, label: str, limits: AudioLimits) -> None:
    limits.check_size(size, label)
    if size == 0:
        raise EmptyAudioError(f"{label} is an empty file (0 bytes); it holds no audio")


def _open_path(path: Path, label: str, limits: AudioLimits) -> _Input:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused right after, by fstat.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise AudioNotFoundError(f"{label}: no such file; check the path (relative paths start from {os.getcwd()})") from None
    except (PermissionError, IsADirectoryError):
        if path.is_dir():
            raise AudioNotFoundError(f"{label} is a directory, not an audio file; pass the files inside it (e.g. '{label}/*.wav')") from None
        raise AudioError(f"{label}: permission denied; make the file readable for this user") from None
    except OSError as e:
        raise AudioNotFoundError(f"{label}: cannot open the file ({e.strerror})") from None
    except ValueError:  # a NUL character in the name
        raise AudioNotFoundError(f"{label!r} is not a valid file path; check the name") from None
    try:
        st = os.fstat(fd)
        _check_stat(st, label)
        _check_size(st.st_size, label, limits)
    except BaseException:
        os.close(fd)
        raise
    return _Input(label, st.st_size, fd=fd, owns_fd=True)


def _from_file_object(f, label: str, limits: AudioLimits) -> _Input:
    if isinstance(f, io.TextIOBase):
        raise InvalidAudioError(f"{label} is opened in text mode; open the file in binary mode ('rb')")
    if getattr(f, "closed", False):
        raise InvalidAudioError(f"{label} is a closed file; pass it while it is open")
    fd = None
    try:
        fd = f.fileno()
    except (AttributeError, OSError, ValueError):
        pass  # io.UnsupportedOperation is an OSError; BytesIO and friends have no descriptor
    try:
        if fd is not None:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                _check_stat(st, label)
            if stat.S_ISREG(st.st_mode):
                _check_size(st.st_size, label, limits)
                try:
                    os.pread(fd, 1, 0)  # a descriptor opened for writing only fails here, not mid-decode
                except AttributeError:
                    pass  # no pread on this platform: the first read will tell
                except OSError as e:
                    raise AudioError(f"{label}: cannot read the file ({e.strerror}); open it for reading in binary mode ('rb')") from None
                return _Input(label, st.st_size, fd=fd)
        elif _seekable(f):
            f.seek(0, os.SEEK_END)
            size = f.tell()
            _check_size(size, label, limits)
            return _Input(label, size, fileobj=f)
        data = _read_bounded(f, label, limits)  # a pipe, socket or other stream: it can be read once only
    except OSError as e:
        raise AudioError(f"{label}: cannot read the file ({e.strerror or type(e).__name__})") from None
    return _Input(label, len(data), fileobj=io.BytesIO(data))


def _seekable(f) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _read_bounded(f, label: str, limits: AudioLimits) -> bytes:
    buf = bytearray()
    while True:
        part = f.read(_CHUNK)
        if not part:
            break
        if not isinstance(part, (bytes, bytearray, memoryview)):
            raise InvalidAudioError(f"{label}: the file object returned {type(part).__name__}, not bytes; open it in binary mode ('rb')")
        buf += part
        limits.check_size(len(buf), label)
    _check_size(len(buf), label, limits)
    return bytes(buf)


def _open_input(inp: _Input, limits: AudioLimits) -> AudioSource:
    try:
        with _translate_errors(inp.label):
            source = _decode_input(inp, limits)
    except BaseException:
        inp.close()
        raise
    if not isinstance(source, _SoundFileAudio):
        inp.close()  # decoded into memory: the descriptor is no longer needed
    return source


def _decode_input(inp: _Input, limits: AudioLimits) -> AudioSource:
    label = inp.label
    try:
        handle = inp.soundfile()
    except (sf.LibsndfileError, RuntimeError) as e:
        return _decode_with_ffmpeg(inp, limits, reason=_sf_reason(e))
    try:
        rate, channels, frames = handle.samplerate, handle.channels, handle.frames
        if channels <= 0:
            raise AudioDecodeError(f"{label}: the header says {channels} channels; the file is corrupt")
        if not MIN_FILE_RATE <= rate <= MAX_FILE_RATE:
            raise AudioDecodeError(
                f"{label}: the header says {rate} Hz, outside {MIN_FILE_RATE}-{MAX_FILE_RATE} Hz; the file is corrupt (or not a voice recording)"
            )
        if frames >= 2**62:  # libsndfile's "length unknown" (e.g. a FLAC written to a stream): decode and count
            handle.close()
            return _decode_with_ffmpeg(inp, limits, reason="its header does not give its length")
        if frames <= 0:
            raise EmptyAudioError(f"{label} contains no audio samples (zero length); record or export it again")
        limits.check_duration(frames / rate, label)
        warnings = _header_warnings(handle.extra_info, frames / rate)
    except BaseException:
        handle.close()
        raise
    return _SoundFileAudio(handle, label, inp, warnings)


def _sf_reason(e: BaseException) -> str:
    """libsndfile's own words, without the object repr or path soundfile adds to its messages."""
    text = getattr(e, "error_string", None) or "libsndfile could not read it"
    return _clean(text)


def _clean(text: str, limit: int = 160) -> str:
    text = re.sub(r"<[^<>]*\bat 0x[0-9a-fA-F]+>", "<object>", str(text))
    text = "".join(c if c.isprintable() else " " for c in text)
    text = re.sub(r"\s+", " ", text).strip().rstrip(".")
    return text[:limit] + ("..." if len(text) > limit else "")


def _header_warnings(log: str, seconds: float) -> list[str]:
    """Truncation that libsndfile notices while parsing the header (it logs it; the length it reports is what is left)."""
    out = []
    m = re.search(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", log or "", re.M)
    if m and int(m.group(1)) > int(m.group(2)) + 8:
        out.append(
            f"The audio file is truncated: its header announces {int(m.group(1))} bytes of audio but only "
            f"{int(m.group(2))} are there; only the {format_seconds(seconds)} present was analysed."
        )
    elif re.search(r"Last page lacks an end-of-stream bit", log or ""):
        out.append(
            f"The audio file appears truncated (its last Ogg page has no end-of-stream mark); "
            f"only the {format_seconds(seconds)} present was analysed."
        )
    return out


# --- the ffmpeg fallback: only the bytes given, through a pipe, up to the duration limit -------------

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
# Container sniffed from the magic bytes -> the ffmpeg demuxer forced for it (never auto-detection).
_DEMUXERS = {
    "mov": "M4A/MP4/MOV", "matroska": "WebM/Matroska", "ogg": "Ogg", "wav": "WAV", "aiff": "AIFF",
    "caf": "CAF", "flac": "FLAC", "amr": "AMR", "asf": "WMA/ASF", "aac": "AAC (ADTS)", "mp3": "MPEG audio",
}
_NATIVE = {"wav", "aiff", "caf", "flac", "ogg", "mp3"}  # containers libsndfile reads itself (ffmpeg: other codecs)
_MOV_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")


def _sniff_container(read_at: Callable[[int, int], bytes]) -> str | None:
    """The allow-listed container these bytes start with, or None (text, playlists, scripts, images, ...)."""
    head = read_at(0, 64)
    if head[4:8] in _MOV_BOXES:
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head.startswith(b"OggS"):
        return "ogg"
    if head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"FORM") and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head.startswith(b"caff"):
        return "caf"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith((b"#!AMR\n", b"#!AMR-WB\n")):
        return "amr"
    if head.startswith(_ASF_GUID):
        return "asf"
    if head.startswith(b"ID3") and len(head) >= 10 and all(b < 0x80 for b in head[6:10]):
        size = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(head[6:10])) + (10 if head[5] & 0x10 else 0)
        after = read_at(size, 4)
        if after.startswith(b"fLaC"):
            return "flac"
        return "aac" if _is_adts(after) else "mp3"
    if _is_adts(head):
        return "aac"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 and head[1] & 0x18 != 0x08:
        return "mp3"
    return None


def _is_adts(b: bytes) -> bool:
    return len(b) >= 2 and b[0] == 0xFF and b[1] & 0xF6 == 0xF0


def _ffmpeg_binary() -> str | None:
    return shutil.which("ffmpeg")


def _ffmpeg_command(ffmpeg: str, demuxer: str, max_seconds: float) -> list[str]:
    """The one ffmpeg invocation: stdin in (a forced, allow-listed demuxer; pipe protocol only), f32le 16 kHz mono out."""
    if demuxer not in _DEMUXERS:
        raise AudioDecodeError(f"refusing to run ffmpeg with the {demuxer!r} demuxer; it is not an audio container")
    demuxer_options = ["-enable_drefs", "0"] if demuxer == "mov" else []  # never follow references to other files
    return [
        ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info",
        "-protocol_whitelist", "pipe", "-f", demuxer, *demuxer_options, "-i", "pipe:0",
        "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE),
        "-t", f"{max_seconds:.3f}", "-f", "f32le", "pipe:1",
    ]


def _decode_with_ffmpeg(inp: _Input, limits: AudioLimits, reason: str) -> AudioSource:
    """Fallback for containers libsndfile does not know (m4a, webm, aac, ...); see the module docstring."""
    label = inp.label
    demuxer = _sniff_container(inp.read_at)
    if demuxer is None:
        raise AudioDecodeError(
            f"{label} is not an audio file ser-tool can decode ({reason}). {_SUPPORTED}; playlists, scripts and "
            "text are refused. If the file is audio, it may be truncated or corrupt."
        )
    ffmpeg = _ffmpeg_binary()
    if ffmpeg is None:
        if demuxer in _NATIVE:
            raise AudioDecodeError(
                f"{label} is not an audio file ser-tool can decode ({reason}); it is truncated or corrupt, or uses a codec "
                "that needs ffmpeg - re-export it as WAV, FLAC or Opus, or install ffmpeg (e.g. apt install ffmpeg, brew install ffmpeg)."
            )
        raise AudioDecodeError(
            f"{label} looks like {_DEMUXERS[demuxer]}, which needs ffmpeg ({reason}); install ffmpeg "
            "(e.g. apt install ffmpeg, brew install ffmpeg) or convert the file to WAV, FLAC or Opus."
        )
    plan = _mp4_moov_first(inp) if demuxer == "mov" else None
    cmd = _ffmpeg_command(ffmpeg, demuxer, limits.max_duration + _DURATION_MARGIN)
    limit_bytes = int(limits.max_duration * SAMPLE_RATE) * 4
    # Keep the first pass's output only up to KEEP_FIRST_PASS; a longer stream is counted to its end
    # (or to the limit) without being kept, then decoded again. A stream that hides its length behind
    # its header is thus refused at the limit with almost no memory, whatever the limit.
    first = _ffmpeg_pass(cmd, inp, plan, label, limits, keep_bytes=min(limit_bytes, int(KEEP_FIRST_PASS * SAMPLE_RATE) * 4))
    done = first.pcm.kept or first.stopped or first.failure
    result = first if done else _ffmpeg_pass(cmd, inp, plan, label, limits, keep_bytes=limit_bytes)
    samples, warnings = _interpret(result, label, limits, demuxer)
    return _BlocksAudio(samples, label, warnings)


class _Stderr:
    """Drains ffmpeg's stderr in a thread (so ffmpeg never blocks on it), keeping what we need."""

    _DURATION = re.compile(r"^\[info\]   Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?),")

    def __init__(self, stream, on_duration: Callable[[float], None]) -> None:
        self.header_seconds: float | None = None
        self.errors: collections.deque[str] = collections.deque(maxlen=3)
        self.no_audio_stream = False
        self._stream, self._on_duration = stream, on_duration
        self.thread = threading.Thread(target=self._run, name="ffmpeg-stderr", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        reader = io.BufferedReader(self._stream, 1 << 16)
        while raw := reader.readline(8192):  # bounded: file metadata is echoed here and may be huge
            line = raw.decode("utf-8", "replace").rstrip()
            if self.header_seconds is None and (m := self._DURATION.match(line)):
                h, mi, s = m.groups()
                self.header_seconds = int(h) * 3600 + int(mi) * 60 + float(s)
                self._on_duration(self.header_seconds)
            elif "[error]" in line or "[fatal]" in line:
                if "matches no streams" in line:
                    self.no_audio_stream = True
                text = re.sub(r"^(\[[^\]]*\] )+", "", line).replace("pipe:0: ", "").replace("pipe:1: ", "")
                text = _clean(text, 120)
                if text and text not in self.errors:
                    self.errors.append(text)

    def reason(self) -> str:
        return "; ".join(self.errors) or "no error message"


def _feed(proc: subprocess.Popen, inp: _Input, plan: list | None, failure: list) -> None:
    """Write the input to ffmpeg's stdin (in a thread, so reading its stdout never deadlocks)."""
    try:
        for kind, *args in plan or [("range", 0, inp.size)]:
            if kind == "bytes":
                proc.stdin.write(args[0])
                continue
            offset, length = args
            end = offset + length
            while offset < end:
                data = inp.read_at(offset, min(_CHUNK, end - offset))
                if not data:
                    break
                proc.stdin.write(data)
                offset += len(data)
    except (BrokenPipeError, ValueError):
        pass  # ffmpeg stopped reading: it is done (duration limit) or was stopped
    except Exception as e:  # noqa: BLE001 - reported by the caller as a decode error
        failure.append(e)
    finally:
        try:
            proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):
            pass


@dataclass
class _Pass:
    """What one ffmpeg run produced."""

    pcm: _PcmBuffer
    rc: int
    stderr: _Stderr
    stopped: str | None  # "header", "too long", "timeout", "interrupted" or None
    failure: BaseException | None  # reading the input failed


def _ffmpeg_pass(cmd: list[str], inp: _Input, plan: list | None, label: str, limits: AudioLimits,
                 keep_bytes: int) -> _Pass:
    """Run ffmpeg once: feed the input, stream its output into memory (up to keep_bytes) or count it."""
    limit_bytes = int(limits.max_duration * SAMPLE_RATE) * 4
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FFREPORT", "AV_LOG"))}
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                bufsize=0, env=env)
    except OSError as e:
        raise AudioDecodeError(f"{label}: ffmpeg could not be started ({e.strerror or type(e).__name__}); check the ffmpeg installation") from None
    stopped: list[str] = []

    def stop(why: str) -> None:
        if not stopped:
            stopped.append(why)
        try:
            proc.kill()
        except OSError:
            pass

    header_limit = limits.max_duration * 1.1 + _DURATION_MARGIN  # headers that estimate get some slack

    def on_header_duration(seconds: float) -> None:
        if seconds > header_limit:  # refuse an honest long file at once instead of decoding up to the limit
            stop("header")

    stderr = _Stderr(proc.stderr, on_header_duration)
    failure: list[BaseException] = []
    feeder = threading.Thread(target=_feed, args=(proc, inp, plan, failure), name="ffmpeg-stdin", daemon=True)
    feeder.start()
    watchdog = threading.Timer(FFMPEG_TIMEOUT, stop, args=("timeout",))
    watchdog.daemon = True
    watchdog.start()
    pcm = _PcmBuffer(keep_bytes)
    try:
        while pcm.fill_from(proc.stdout):
            if pcm.total > limit_bytes:
                stop("too long")
                break
        try:
            rc = proc.wait(timeout=max(1.0, FFMPEG_TIMEOUT))
        except subprocess.TimeoutExpired:
            stop("timeout")
            rc = proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            stop("interrupted")
            proc.wait()
        proc.stdout.close()
        feeder.join(timeout=5)
        stderr.thread.join(timeout=5)
        proc.stderr.close()
    return _Pass(pcm, rc, stderr, stopped[0] if stopped else None, failure[0] if failure else None)


def _interpret(result: _Pass, label: str, limits: AudioLimits, demuxer: str) -> tuple[list[np.ndarray], list[str]]:
    """The samples of a finished pass and the warnings about them, or the error that explains its failure."""
    stderr = result.stderr
    if result.stopped == "header":
        limits.check_duration(stderr.header_seconds or 0.0, label)
    if result.stopped == "too long":
        raise limits.too_long_while_decoding(label)
    if result.stopped == "timeout":
        raise AudioDecodeError(
            f"{label}: ffmpeg did not finish decoding within {FFMPEG_TIMEOUT:.0f} s; the file is probably malformed - "
            "convert it to WAV, FLAC or Opus"
        )
    if result.failure is not None:
        raise AudioDecodeError(
            f"{label}: reading the file failed ({type(result.failure).__name__}); check the file and try again"
        ) from result.failure
    n = result.pcm.n_samples
    if n == 0:
        if stderr.no_audio_stream:
            raise AudioDecodeError(f"{label} holds no audio stream ({_DEMUXERS[demuxer]} with video or data only); send an audio recording")
        raise AudioDecodeError(
            f"{label} is not an audio file ser-tool can decode: it looks like {_DEMUXERS[demuxer]}, but ffmpeg decoded "
            f"no audio from it ({stderr.reason()}). It may be truncated or corrupt; re-export it, or convert it to WAV, FLAC or Opus."
        )
    samples = result.pcm.blocks()
    if not all(np.all(np.isfinite(b)) for b in samples):
        raise InvalidAudioError(f"{label} decodes to NaN or infinite samples; the file is corrupt - re-export it")
    seconds = n / SAMPLE_RATE
    warnings = []
    announced = stderr.header_seconds
    if result.rc != 0 or stderr.errors:
        warnings.append(
            f"The audio file is damaged or truncated: the decoder reported errors ({stderr.reason()}); "
            f"only the {format_seconds(seconds)} that decoded was analysed."
        )
    elif announced is not None and seconds < announced - max(1.0, 0.05 * announced):
        warnings.append(
            f"The audio file appears truncated: it decodes to {format_seconds(seconds)} but its header announces "
            f"{format_seconds(announced)}; only the part present was analysed."
        )
    return samples, warnings


class _PcmBuffer:
    """ffmpeg's float32 output, read straight into fixed-size blocks: no copies, no over-allocation.

    Memory is the decoded audio itself plus at most one block being filled; fresh blocks are untouched
    memory that only becomes resident as the pipe fills it. Past keep_bytes the blocks are dropped
    and the rest is only counted (`kept` turns False).
    """

    _BLOCK_SAMPLES = 1 << 22  # 16 MiB, 4:22 of audio

    def __init__(self, keep_bytes: int) -> None:
        self.keep_bytes = keep_bytes
        self.block_samples = int(min(self._BLOCK_SAMPLES, keep_bytes // 4 + (_DURATION_MARGIN + 1) * SAMPLE_RATE))
        self._blocks: list[np.ndarray] = []
        self._fill = 0  # bytes used in the last block
        self._scratch: bytearray | None = None
        self.kept = True
        self.total = 0

    @property
    def n_samples(self) -> int:
        return self.total // 4

    def fill_from(self, stream) -> int:
        """One read from the pipe; 0 at the end of the stream."""
        if not self.kept:
            got = stream.readinto(self._scratch) or 0
            self.total += got
            return got
        if not self._blocks or self._fill == self.block_samples * 4:
            self._blocks.append(np.empty(self.block_samples, dtype=np.float32))
            self._fill = 0
        view = memoryview(self._blocks[-1]).cast("B")[self._fill:]
        got = stream.readinto(view[:_CHUNK]) or 0
        self._fill += got
        self.total += got
        if self.total > self.keep_bytes:  # too long to keep: count the rest only
            self.kept, self._blocks, self._scratch = False, [], bytearray(1 << 16)  # a pipe holds 64 KiB
        return got

    def blocks(self) -> list[np.ndarray]:
        """The samples as a list of arrays (the last one trimmed, and copied if it is mostly empty)."""
        n_last = self.n_samples - (len(self._blocks) - 1) * self.block_samples
        blocks = self._blocks[:-1]
        last = self._blocks[-1][:n_last]
        blocks.append(last.copy() if n_last < self.block_samples // 2 else last)
        return blocks


def _mp4_moov_first(inp: _Input) -> list | None:
    """A feed plan that moves an MP4's index (moov) before its media data, as `-movflags faststart` does.

    ffmpeg cannot seek back in a pipe, and most encoders write moov last. The chunk offsets inside moov
    are rewritten for the new layout. None = feed the file as it is (moov already first, or unusual).
    """
    boxes, pos = [], 0
    while pos + 8 <= inp.size and len(boxes) < 4096:
        head = inp.read_at(pos, 16)
        size, kind, header = struct.unpack(">I", head[:4])[0], head[4:8], 8
        if size == 1 and len(head) >= 16:
            size, header = struct.unpack(">Q", head[8:16])[0], 16
        elif size == 0:
            size = inp.size - pos
        if size < header or pos + size > inp.size:
            break
        boxes.append((kind, pos, size))
        pos += size
    moov = next((b for b in boxes if b[0] == b"moov"), None)
    mdat = next((b for b in boxes if b[0] == b"mdat"), None)
    if moov is None or mdat is None or moov[1] < mdat[1] or moov[2] > 64 << 20:
        return None
    _, moov_at, moov_size = moov
    data = bytearray(inp.read_at(moov_at, moov_size))
    if not _shift_chunk_offsets(data, 8, len(data), lo=mdat[1], hi=moov_at, shift=moov_size, depth=0):
        return None
    moov_end = moov_at + moov_size
    return [("range", 0, mdat[1]), ("bytes", bytes(data)), ("range", mdat[1], moov_at - mdat[1]),
            ("range", moov_end, inp.size - moov_end)]


def _shift_chunk_offsets(buf: bytearray, start: int, end: int, *, lo: int, hi: int, shift: int, depth: int) -> bool:
    """Add `shift` to every stco/co64 chunk offset in [lo, hi) inside buf[start:end]; False if malformed."""
    if depth > 6:
        return False
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I", buf[pos:pos + 4])[0], bytes(buf[pos + 4:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return False
            size, header = struct.unpack(">Q", buf[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return False
        body = pos + header
        if kind in (b"trak", b"mdia", b"minf", b"stbl"):
            if not _shift_chunk_offsets(buf, body, pos + size, lo=lo, hi=hi, shift=shift, depth=depth + 1):
                return False
        elif kind in (b"stco", b"co64"):
            width = 4 if kind == b"stco" else 8
            if body + 8 > pos + size:
                return False
            count = struct.unpack(">I", buf[body + 4:body + 8])[0]
            first = body + 8
            if first + count * width > pos + size:
                return False
            dtype = ">u4" if width == 4 else ">u8"
            offsets = np.frombuffer(bytes(buf[first:first + count * width]), dtype=dtype).astype(np.uint64)
            moved = (offsets >= lo) & (offsets < hi)
            offsets[moved] += np.uint64(shift)
            if width == 4 and count and int(offsets.max()) > 0xFFFFFFFF:
                return False
            buf[first:first + count * width] = offsets.astype(dtype).tobytes()
        pos += size
    return True


# --- arrays -------------------------------------------------------------------------------------------

def _resample(x: np.ndarray, rate: int, label: str) -> np.ndarray:
    try:
        return soxr.resample(x, rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    except (ValueError, RuntimeError, TypeError, OverflowError) as e:
        raise InvalidAudioError(f"{label}: cannot resample from {rate} Hz to {SAMPLE_RATE} Hz ({_clean(str(e), 80)}); check the sample rate") from e


def _array_to_mono16k(x: np.ndarray, sample_rate: int | None, label: str, limits: AudioLimits) -> np.ndarray:
    try:
        rate = None if sample_rate is None else int(sample_rate)
    except (TypeError, ValueError, OverflowError):
        rate = None
    if rate is None or rate <= 0:
        raise InvalidAudioError(f"{label}: a NumPy array needs its sample rate (e.g. sample_rate=16000); got {sample_rate!r}")
    sample_rate = rate
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
        x = _resample(x, sample_rate, label)
    return np.ascontiguousarray(x)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float samples (-1..1) as a 16-bit PCM WAV file (e.g. recordings an evaluation builds)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), sample_rate, subtype="PCM_16")
    return path
