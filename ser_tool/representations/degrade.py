"""Training inputs as the voice backend will hear them: at its speech level, and in recording-condition
variants (background noise, a room, a telephone channel).

The analyzer hands the voice backend every input at one active speech level (ser_tool.level), so the head
must be trained and calibrated on features of clips at that level (`LevelledRepresentation`), not at each
corpus's own recording level.

The corpora here are studio recordings; users send calls, voice notes and street recordings. A voice
head trained on frozen features cannot augment its audio at training time, so each variant is made
once, encoded once and cached like any representation (its id names the variant), and training mixes
the variants in with the clean clips (`VoiceTrainConfig.degraded_variants`).

One variant of a clip is always the same draw (seeded by the variant number and the clip's samples),
so a cached entry never disagrees with what a rerun would compute.
"""

from __future__ import annotations

import zlib

import numpy as np

from ser_tool.representations.base import SAMPLE_RATE, Features

VERSION = 1  # change with the recipe below: cached variants of another recipe are then misses
SNR_DB = (0.0, 20.0)  # background noise, always
ROOM_P, RT60_S = 0.5, (0.2, 0.7)  # reverberation: exponentially decaying noise as the room's response
PHONE_P, PHONE_BAND_HZ = 0.3, (300.0, 3400.0)


def coloured_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance white, pink or brown noise (1/f^0, 1/f^1, 1/f^2 power)."""
    exponent = rng.choice([0.0, 1.0, 2.0])
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return x / (x.std() + 1e-12)


def degrade(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`wave` as another microphone in another place might have caught it; same length and level."""
    from scipy.signal import butter, fftconvolve, sosfilt

    x = np.asarray(wave, dtype=np.float64)
    power = float(np.mean(x**2))
    if power == 0.0:
        return np.asarray(wave, dtype=np.float32)
    if rng.random() < ROOM_P:
        rt60 = rng.uniform(*RT60_S)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        response = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB after rt60
        response[0] = 1.0 / max(1e-3, rng.uniform(0.3, 1.0))  # the direct sound, 0-10 dB above the tail's start
        x = fftconvolve(x, response)[: len(x)]
    if rng.random() < PHONE_P:
        x = sosfilt(butter(4, PHONE_BAND_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos"), x)
    x = x * np.sqrt(power / (float(np.mean(x**2)) + 1e-20))
    snr = rng.uniform(*SNR_DB)
    x = x + coloured_noise(len(x), rng) * np.sqrt(power / 10 ** (snr / 10))
    return np.clip(x, -1.0, 1.0).astype(np.float32)


class _Transformed:
    """`rep` on a transformed copy of each input: the same name and shapes, its own id (so the cache keeps
    the transformed features apart)."""

    def __init__(self, rep, id_suffix: str) -> None:
        self.rep = rep
        self.name = rep.name
        self.id = f"{rep.id}+{id_suffix}"
        self.frame_dim = rep.frame_dim
        self.utterance_dim = rep.utterance_dim


class LevelledRepresentation(_Transformed):
    """`rep` on each input brought to `level_db` active speech level first, as the analyzer does for a backend
    whose input_level_db is `level_db` (ser_tool.level.normalise_loudness)."""

    def __init__(self, rep, level_db: float) -> None:
        self.level_db = float(level_db)
        super().__init__(rep, f"level{self.level_db:g}")

    def features(self, wave: np.ndarray) -> Features:
        from ser_tool.level import normalise_loudness

        return self.rep.features(normalise_loudness(wave, self.level_db))


class DegradedRepresentation(_Transformed):
    """`rep` on variant `variant` (1, 2, ...) of each input: the same features, of a degraded copy."""

    def __init__(self, rep, variant: int) -> None:
        if variant < 1:
            raise ValueError("variants are numbered from 1 (0 is the clean clip)")
        self.variant = variant
        super().__init__(rep, f"degraded-v{VERSION}-{variant}")

    def features(self, wave: np.ndarray) -> Features:
        x = np.ascontiguousarray(wave, dtype=np.float32)
        rng = np.random.default_rng([self.variant, zlib.crc32(x.tobytes())])
        return self.rep.features(degrade(x, rng))
