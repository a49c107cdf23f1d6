"""Cheap prosodic and spectral descriptors, NumPy only (no licence strings attached).

Per 10-ms frame (40-ms window): log energy relative to the clip's loudest frame, f0 from the
normalised autocorrelation peak in 60-400 Hz (semitones re 100 Hz, 0 when unvoiced), voicing flag
and strength, harmonics-to-noise ratio from the same peak, spectral centroid, flatness, 85 % rolloff,
flux, zero-crossing rate; averaged to 25 frames/s with deltas: (T, 20).
Utterance functionals (66): mean, std, 10th and 90th percentile of the 10 base descriptors, mean |delta|
and std of deltas, voiced rate, f0 mean / std / range (10-90 %) / slope over voiced frames, and an
onset rate (energy peaks per second, a speaking-rate proxy).
"""

from __future__ import annotations

import numpy as np

from ser_tool.representations.base import SAMPLE_RATE, Features, check_wave, pool_frames

WIN, HOP, NFFT = 640, 160, 1024
F0_MIN, F0_MAX = 60.0, 400.0
VOICING = 0.45  # normalised autocorrelation peak above which a frame counts as voiced
POOL = 4


def _window_autocorrelation() -> np.ndarray:
    w = np.hanning(WIN)
    ac = np.fft.irfft(np.abs(np.fft.rfft(w, NFFT)) ** 2, NFFT)[:WIN]
    return np.maximum(ac / ac[0], 1e-3)


_WINDOW_AC = _window_autocorrelation()


def frame_descriptors(x: np.ndarray) -> np.ndarray:
    """(T, 10) descriptors at 100 frames/s."""
    pad = np.pad(x, (WIN // 2, WIN // 2))
    n = max(1, len(x) // HOP)  # one frame per 10 ms of input, centred on it
    idx = np.arange(WIN)[None, :] + HOP * np.arange(n)[:, None]
    frames = pad[idx] * np.hanning(WIN).astype(np.float32)
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames, NFFT)
    power = (spec.real**2 + spec.imag**2).astype(np.float64) + 1e-12
    energy = power.sum(axis=1)
    log_e = 10 * np.log10(energy)
    log_e = np.maximum(log_e - log_e.max(), -80.0) / 10.0  # dB re loudest frame, /10
    ac = np.fft.irfft(power, NFFT)[:, : WIN]
    ac = ac / (ac[:, :1] + 1e-12) / _WINDOW_AC  # Boersma (1993): undo the window's own autocorrelation decay
    lo, hi = int(SAMPLE_RATE / F0_MAX), int(SAMPLE_RATE / F0_MIN)
    r = ac[:, lo - 1: hi + 1]
    peak = (r[:, 1:-1] >= r[:, :-2]) & (r[:, 1:-1] >= r[:, 2:])
    cand = r[:, 1:-1]
    best = np.where(peak, cand, -1.0).max(axis=1)
    # the shortest lag within 10 % of the best peak: multiples of the period score as high (octave errors)
    lag = lo + np.argmax(peak & (cand >= 0.9 * best[:, None]), axis=1)
    strength = np.clip(ac[np.arange(n), lag], 0.0, 0.999)
    voiced = (strength > VOICING) & (log_e > -4.0)
    f0 = SAMPLE_RATE / lag
    semitones = np.where(voiced, 12 * np.log2(f0 / 100.0), 0.0) / 12.0
    hnr = np.where(voiced, 10 * np.log10(np.maximum(strength, 1e-3) / (1 - strength)), 0.0) / 10.0
    freqs = np.fft.rfftfreq(NFFT, 1 / SAMPLE_RATE)
    p_norm = power / power.sum(axis=1, keepdims=True)
    centroid = (p_norm * freqs).sum(axis=1) / 4000.0
    flatness = np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)
    rolloff = freqs[np.minimum((np.cumsum(p_norm, axis=1) < 0.85).sum(axis=1), len(freqs) - 1)] / 4000.0
    mag = np.sqrt(p_norm)
    flux = np.concatenate([[0.0], np.sqrt(((mag[1:] - mag[:-1]) ** 2).sum(axis=1))])
    zcr = (np.abs(np.diff(np.sign(frames), axis=1)) > 0).mean(axis=1)
    return np.stack([log_e, semitones, voiced.astype(np.float64), strength, hnr, centroid, flatness, rolloff, flux, zcr],
                    axis=1).astype(np.float32)


class ProsodyRepresentation:
    name = "prosody"
    frame_dim = 20
    utterance_dim = 66
    id = "prosody-acf-v3"

    def features(self, wave: np.ndarray) -> Features:
        x = check_wave(wave)
        d = frame_descriptors(x)
        pooled = pool_frames(d, POOL)
        delta = np.gradient(pooled, axis=0) if len(pooled) > 1 else np.zeros_like(pooled)
        frames = np.concatenate([pooled, delta], axis=1)
        return Features(frames.astype(np.float32), self._functionals(d, delta))

    @staticmethod
    def _functionals(d: np.ndarray, delta: np.ndarray) -> np.ndarray:
        stats = [d.mean(0), d.std(0), np.percentile(d, 10, axis=0), np.percentile(d, 90, axis=0),
                 np.abs(delta).mean(0), delta.std(0)]
        voiced = d[:, 2] > 0
        f0 = d[voiced, 1]
        if len(f0) >= 2:
            slope = np.polyfit(np.arange(len(f0)) / 100.0, f0, 1)[0]
            f0_stats = [f0.mean(), f0.std(), np.percentile(f0, 90) - np.percentile(f0, 10), slope]
        else:
            f0_stats = [0.0, 0.0, 0.0, 0.0]
        e = d[:, 0]
        peaks = np.sum((e[1:-1] > e[:-2]) & (e[1:-1] >= e[2:]) & (e[1:-1] > np.percentile(e, 60))) if len(e) > 2 else 0
        extra = [voiced.mean(), *f0_stats, peaks / (len(e) / 100.0)]
        return np.concatenate([*stats, np.asarray(extra, dtype=np.float64)]).astype(np.float32)
