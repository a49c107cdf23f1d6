"""Shared fixtures: synthesised audio (no recordings needed) and a deterministic fake backend."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_tool.backends.base import Prediction
from ser_tool.labels import EMOTIONS

SR = 16_000
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "ser_tool" / "samples" / "speech_en.ogg"
SHARED_DATA = REPO.parent / "shared" / "data"


def voice(seconds: float, f0: float = 140.0, sr: int = SR, amp: float = 0.2) -> np.ndarray:
    """A speech-like signal: a harmonic tone with gliding pitch and 4 Hz syllable-rate bursts.

    WebRTC's VAD classifies it as speech, which lets segmentation be tested without recordings.
    """
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = (0.5 * (1 + np.sin(2 * np.pi * 4 * t))) ** 1.5
    return (amp * x * env / np.abs(x).max()).astype(np.float32)


def silence(seconds: float, sr: int = SR) -> np.ndarray:
    return np.zeros(int(seconds * sr), dtype=np.float32)


@pytest.fixture
def sample_path() -> Path:
    assert SAMPLE.is_file(), "the bundled sample is missing from the repository"
    return SAMPLE


@pytest.fixture
def sample_copy(tmp_path, sample_path) -> Path:
    dst = tmp_path / "speech.ogg"
    shutil.copy(sample_path, dst)
    return dst


class FakeBackend:
    """A stand-in model for testing the pipeline around it: scores follow the waveform's loudness.

    Loud windows lean 'angry', quiet ones 'sad'; dimensions follow the same cue. Deterministic, so
    aggregation can be checked against hand computation. Records every batch it receives.
    """

    name = "fake"
    model_id = "fake-loudness"
    sample_rate = SR
    has_dimensions = True
    max_input_seconds = 30.0
    normalises_input = True  # its scores follow loudness, so the analyzer must hand it the audio as recorded

    def __init__(self, emotions=EMOTIONS) -> None:
        self.emotions_supported = tuple(emotions)
        self.batches: list[list[np.ndarray]] = []

    def predict(self, waveforms):
        self.batches.append([np.asarray(w) for w in waveforms])
        rows, dims = [], []
        for w in waveforms:
            loud = float(np.clip(np.sqrt(np.mean(w.astype(np.float64) ** 2)) * 10, 0.0, 1.0))
            p = np.full(len(EMOTIONS), 0.05)
            p[EMOTIONS.index("angry")] += loud
            p[EMOTIONS.index("sad")] += 1 - loud
            for i, e in enumerate(EMOTIONS):
                if e not in self.emotions_supported:
                    p[i] = 0.0
            rows.append(p / p.sum())
            dims.append([1 - loud, loud, loud])
        return Prediction(np.array(rows), np.array(dims))


@pytest.fixture
def fake_backend() -> FakeBackend:
    return FakeBackend()


def make_toy_corpus(folder, n_speakers=8):
    """A corpus in the manifest format: per speaker one loud 'angry', one quiet 'sad', one 'calm', one 'other' clip."""
    (folder / "audio").mkdir(parents=True)
    rows = []
    for s in range(n_speakers):
        for k, (label, amp) in enumerate((("angry", 0.4), ("sad", 0.03), ("calm", 0.03), ("other", 0.2))):
            path = f"audio/{s}_{k}.wav"
            sf.write(folder / path, voice(1.5, f0=120 + 10 * s, amp=amp), SR)
            rows.append({"path": path, "corpus": "toy", "language": "en", "speaker": f"toy_{s:02d}", "gender": "",
                         "label": label, "original_label": label, "intensity": "", "text": "", "duration_s": "1.5"})
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder


@pytest.fixture
def anyio_backend():
    """Async tests (MCP) run on asyncio."""
    return "asyncio"


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """A folder of small audio files in several formats (the MCP tests' allowed folder)."""
    from mcp_support import write_audio_fixtures

    folder = tmp_path_factory.mktemp("allowed")
    write_audio_fixtures(folder)
    return folder


@pytest.fixture
def one_thread():
    """Run torch single-threaded for the test, then restore the process's thread count."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory) -> str:
    """A tiny random hf audio classifier saved to disk (loads offline through the real loader)."""
    from ser_tool.testing import make_tiny_hf_classifier

    return str(make_tiny_hf_classifier(tmp_path_factory.mktemp("tiny_hf")))


@pytest.fixture
def no_ser_env(monkeypatch):
    """Entry-point tests: a developer's own SER_* variables must not leak in."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("SER_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def no_offline_asr(monkeypatch):
    """Tests behave the same whether or not the [asr] extra is installed: no entry point falls back to the
    offline Whisper (tests/test_offline_asr.py opts back in)."""
    monkeypatch.setattr("ser_tool.asr.offline_asr_installed", lambda *a, **k: False)
