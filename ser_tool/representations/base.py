"""The representation contract and the helpers every representation shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ser_tool.errors import ConfigError, InvalidAudioError

SAMPLE_RATE = 16_000
FRAME_RATE = 25  # frames per second of every frame sequence (40 ms hop)
PRECISIONS = ("auto", "float32", "bfloat16")  # of a torch Whisper encoder's projections (ct2_whisper.resolve_precision)
MIN_SAMPLES = 4_000  # 0.25 s: shorter inputs are zero-padded to this so every representation yields >= 1 frame


@dataclass(frozen=True)
class Features:
    """frames: (T, D) float32 at FRAME_RATE; utterance: (U,) float32 clip-level vector."""

    frames: np.ndarray
    utterance: np.ndarray


@runtime_checkable
class Representation(Protocol):
    name: str
    id: str  # changes whenever weights, version or parameters change: the feature cache keys on it
    frame_dim: int
    utterance_dim: int

    def features(self, wave: np.ndarray) -> Features: ...


def check_precision(precision: str) -> str:
    """`precision` if it is one of PRECISIONS; else a ConfigError naming them."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def check_wave(wave: np.ndarray) -> np.ndarray:
    """A 1-D finite float32 waveform, zero-padded to MIN_SAMPLES."""
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim != 1:
        raise InvalidAudioError(f"a representation takes one mono waveform (1-D), got shape {x.shape}; decode with ser_tool.audio.load_audio")
    if x.size == 0:
        raise InvalidAudioError("the waveform is empty; nothing to encode")
    if not np.all(np.isfinite(x)):
        raise InvalidAudioError("the waveform holds NaN or infinite samples; decode it again with ser_tool.audio.load_audio")
    if x.size < MIN_SAMPLES:
        x = np.pad(x, (0, MIN_SAMPLES - x.size))
    return x


def pool_frames(x: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping groups of `factor` rows (a trailing partial group is kept)."""
    t = x.shape[0]
    n = -(-t // factor)
    pad = n * factor - t
    if pad:
        x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
    return x.reshape(n, factor, -1).mean(axis=1)


def mean_std(frames: np.ndarray) -> np.ndarray:
    """Utterance statistics of a frame sequence: (2 D,)."""
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)
