"""Synthetic audio for tests and benchmarks: a speech-like voice, silence, and a toy corpus built from them.

No recordings needed: WebRTC's VAD classifies `voice()` as speech, so segmentation, the analyzer and
every surface can be exercised on audio made on the spot. Only numpy and soundfile are imported.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SR = 16_000  # the sample rate every model and the decoder work at

__all__ = ["SR", "make_toy_corpus", "silence", "voice"]


def voice(seconds: float, f0: float = 140.0, sr: int = SR, amp: float = 0.2) -> np.ndarray:
    """A speech-like signal: a harmonic tone with gliding pitch and 4 Hz syllable-rate bursts.

    WebRTC's VAD classifies it as speech, which lets segmentation be tested without recordings.
    `f0` is the mean pitch in Hz, `amp` the peak amplitude; float32 at `sr`.
    """
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = (0.5 * (1 + np.sin(2 * np.pi * 4 * t))) ** 1.5
    return (amp * x * env / np.abs(x).max()).astype(np.float32)


def silence(seconds: float, sr: int = SR) -> np.ndarray:
    """Digital silence (zeros), float32 at `sr`."""
    return np.zeros(int(seconds * sr), dtype=np.float32)


def make_toy_corpus(folder: str | Path, n_speakers: int = 8, corpus: str = "toy") -> Path:
    """A corpus in the manifest format (manifest.csv + audio/*.wav) in `folder`: per speaker one loud
    'angry', one quiet 'sad', one 'calm' and one 'other' clip (1.5 s each, each speaker at its own pitch).
    `corpus` names the corpus and prefixes the speaker ids, so toy corpora of other names share no speaker."""
    import soundfile as sf

    folder = Path(folder)
    (folder / "audio").mkdir(parents=True)
    rows = []
    for s in range(n_speakers):
        for k, (label, amp) in enumerate((("angry", 0.4), ("sad", 0.03), ("calm", 0.03), ("other", 0.2))):
            path = f"audio/{s}_{k}.wav"
            sf.write(folder / path, voice(1.5, f0=120 + 10 * s, amp=amp), SR)
            rows.append({"path": path, "corpus": corpus, "language": "en", "speaker": f"{corpus}_{s:02d}", "gender": "",
                         "label": label, "original_label": label, "intensity": "", "text": "", "duration_s": "1.5"})
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder
