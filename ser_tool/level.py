"""How loud is a recording, and one speech level for every model input.

Two users, both working on 30-ms frame levels (dBFS RMS):
1. Speech detection (`ser_tool.segment`) takes its energy floor from the recording itself (each 30-s
   block of it): a frame can be speech only when it stands `SPEECH_ABOVE_NOISE_DB` above the noise
   floor (the 10th-percentile frame level) and lies within `SPEECH_BELOW_LOUD_DB` of the loud level
   (the 95th percentile; this keeps the floor moving with the gain over a clean background). The floor
   is held between `FLOOR_LOWEST_DB` (quieter is never speech: the resolution limit of 16-bit audio) and
   `FLOOR_HIGHEST_DB` (the fixed floor ser-tool used before, so the floor is never stricter than it was).
   Quiet speech over a clean background is found; steady noise, whatever its level below the old floor,
   is not. Between the two bounds the floor moves with the gain, so a quieter copy of a recording keeps
   the same speech regions. Levels are taken after removing each frame's mean, so DC offset and
   sub-audio rumble do not count as sound.
2. Before the model (`ser_tool.analyzer`, and the SER benchmark), each analysed segment is scaled so
   its active speech level is the one the backend asks for (`input_level_db`, else `TARGET_DB`): the
   reading no longer depends on how loud the recording was made. Backends that scale their own input
   (`normalises_input`) get the audio as it is. The active level is the mean power of the frames within
   `ACTIVE_RANGE_DB` of the segment's loud frames (its 95th-percentile level), a simplified ITU-T P.56:
   pauses and padding do not count. Every quantity moves with the gain, so a louder or quieter copy of
   the same segment gives the same model input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "FLOOR_HIGHEST_DB", "FLOOR_LOWEST_DB", "FRAME", "TARGET_DB", "adaptive_floor_db", "frame_levels",
    "input_level_db", "model_inputs", "noise_floor_db", "normalise_loudness", "speech_level_db",
]

FRAME = 480  # 30 ms at 16 kHz (also a frame size WebRTC's VAD accepts)
SILENT_DB = -120.0  # the level given to digital silence (keeps percentiles finite)

# Frames quieter than this are never speech (unless a fixed floor says otherwise): 16-bit PCM resolves
# about 96 dB, so below this is quantisation and dither noise whatever the recording. It was -80: then a
# recording whose loud level is under -35 dBFS (RAVDESS at -12 dB) lost its soft edges at that bound
# while a louder copy kept them, and the reading followed the volume (benchmarks/level_robustness.py).
FLOOR_LOWEST_DB = -96.0
FLOOR_HIGHEST_DB = -50.0  # frames louder than this always reach the voice detector (the old fixed floor)
NOISE_PERCENTILE = 10.0  # the recording's noise floor: this percentile of its frame levels
SPEECH_ABOVE_NOISE_DB = 12.0  # speech stands at least this far above the noise floor
LOUD_PERCENTILE = 95.0  # the recording's loud (speech) level: this percentile of its frame levels
SPEECH_BELOW_LOUD_DB = 45.0  # quieter than this below the loud level is not speech, however clean the background

# The level inputs are brought to for a backend that names none of its own: the nominal active speech
# level of ITU-T P.56 / P.800 test speech. Peaks stay below -1 dBFS.
TARGET_DB = -26.0
ACTIVE_RANGE_DB = 30.0  # frames this far below the loud (95th-percentile) level are pauses, not speech
PEAK_LIMIT = 10 ** (-1.0 / 20)
MAX_GAIN_DB = 60.0  # no more than this: a segment of near-silence is not blown up into noise


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """Level of each whole 30-ms frame of `samples` (16 kHz), dBFS RMS; a trailing partial frame is dropped."""
    n = len(samples) // FRAME
    if n == 0:
        return np.zeros(0)
    frames = np.asarray(samples[: n * FRAME], dtype=np.float64).reshape(n, FRAME)
    # Each frame's own mean (DC and the sub-audio drift of rumble or handling noise) is no sound.
    power = np.var(frames, axis=1)
    return 10 * np.log10(np.maximum(power, 10 ** (SILENT_DB / 10)))


def noise_floor_db(levels: np.ndarray) -> float:
    """The recording's background level: the 10th percentile of its frame levels."""
    return float(np.percentile(levels, NOISE_PERCENTILE)) if len(levels) else SILENT_DB


def adaptive_floor_db(levels: np.ndarray) -> float:
    """The energy floor for speech in a recording with these frame levels (see the module docstring)."""
    if not len(levels):
        return FLOOR_HIGHEST_DB
    relative = max(noise_floor_db(levels) + SPEECH_ABOVE_NOISE_DB, float(np.percentile(levels, LOUD_PERCENTILE)) - SPEECH_BELOW_LOUD_DB)
    return float(np.clip(relative, FLOOR_LOWEST_DB, FLOOR_HIGHEST_DB))


def speech_level_db(wave: np.ndarray) -> float | None:
    """Active speech level of `wave` in dBFS (mean power of its non-pause frames); None for digital silence."""
    levels = frame_levels(wave)
    if len(levels) == 0:  # shorter than one frame: its plain RMS
        levels = frame_levels(np.pad(wave, (0, FRAME - len(wave)))) if len(wave) else levels
    if len(levels) == 0 or levels.max() <= SILENT_DB:
        return None
    active = levels[levels > np.percentile(levels, 95) - ACTIVE_RANGE_DB]
    return float(10 * np.log10(np.mean(10 ** (active / 10))))


def normalise_loudness(wave: np.ndarray, target_db: float = TARGET_DB) -> np.ndarray:
    """`wave` scaled so its active speech level is `target_db` (less where its peak would pass -1 dBFS).

    Gain-invariant: `normalise_loudness(g * x)` equals `normalise_loudness(x)` for any gain g that
    neither clips `x` nor pushes it into digital silence. Digital silence is returned unchanged.
    """
    wave = np.asarray(wave, dtype=np.float32)
    level = speech_level_db(wave)
    if level is None:
        return wave
    gain_db = min(target_db - level, MAX_GAIN_DB)
    peak = float(np.max(np.abs(wave)))
    gain = min(10 ** (gain_db / 20), PEAK_LIMIT / peak)
    return (wave * np.float32(gain)).astype(np.float32)


def input_level_db(backend: object) -> float | None:
    """The active speech level (dBFS) `backend` gets its input at; None when it normalises its own input."""
    if getattr(backend, "normalises_input", False):
        return None
    level = getattr(backend, "input_level_db", None)
    return TARGET_DB if level is None else float(level)


def model_inputs(backend: object, waves: Sequence[np.ndarray], normalise: bool = True) -> list[np.ndarray]:
    """The waveforms `backend` is given: each brought to `input_level_db(backend)`, unless the backend
    normalises its own input or `normalise` is False (the audio as recorded)."""
    level = input_level_db(backend) if normalise else None
    if level is None:
        return list(waves)
    return [normalise_loudness(w, level) for w in waves]
