"""Stand-ins for the models around the pipeline: a deterministic SER backend and a counting recogniser.

They test what is built around a model (segmentation, aggregation, reports, every surface) with
results that can be checked by hand, and record what they were given.
"""

from __future__ import annotations

import numpy as np

from ser_tool.asr import Transcript, TranscriptSegment
from ser_tool.backends.base import Prediction
from ser_tool.labels import EMOTIONS
from ser_tool.testing.synthetic import SR

__all__ = ["CountingASR", "FakeBackend"]


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


class CountingASR:
    """A stand-in speech recogniser: the same words over the whole recording; keeps the length of every
    waveform it was given (so tests can count ASR passes and check what it heard)."""

    model_id = "counting-asr"

    def __init__(self, text: str = "Kids are talking by the door") -> None:
        self.text = text
        self.heard: list[int] = []

    def transcribe(self, audio) -> Transcript:
        self.heard.append(len(audio))
        end = round(len(audio) / SR, 3)
        return Transcript(text=self.text, segments=[TranscriptSegment(start=0.0, end=end, text=self.text)],
                          language="en", model_id=self.model_id)


class SpectrumSpeakerEncoder:
    """A stand-in for the speaker encoder (ser_tool.speakers.SpeakerEncoder) with no weights: the "mel" is the
    magnitude spectrum of 25-ms frames every 10 ms, the embedding its mean, unit length. Voices of different
    pitch get different embeddings, so everything around the encoder can be tested fast and offline. Picklable,
    so it also stands in inside worker processes (`install()` there)."""

    def mel(self, samples):
        import numpy as np

        x = np.asarray(samples, dtype=np.float32)
        n = len(x) // 160 - 2
        idx = np.arange(400)[None, :] + 160 * np.arange(max(n, 0))[:, None]
        return np.abs(np.fft.rfft(x[idx] * np.hanning(400), axis=1))[:, :64].astype(np.float32)

    def embed(self, mels):
        import numpy as np

        e = np.stack([m.mean(axis=0) for m in mels])
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def install(self) -> None:
        """Make this the process-wide speaker encoder (what `load_speaker_encoder` returns from now on)."""
        from ser_tool import speakers

        speakers._ENCODER = self
