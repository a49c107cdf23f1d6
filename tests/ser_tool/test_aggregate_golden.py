"""Reports and emotion transcripts are the same as before aggregation moved to ser_tool/aggregate.py
(tests/ser_tool/golden/aggregation_outputs.json was written by the code before the move, with
`python -m tests.ser_tool.test_aggregate_golden --write` from the repository root). Rewritten once since, when
audio files of up to 10 min began to be decoded once (ser_tool.audio): the overlapping 2-s windows on the 48 kHz
sample are now cut from one resampling of the whole file instead of each resampled alone, which moved 30 of that
report's numbers by at most 2.5e-4; no text and no other case changed.

The cases cover every aggregation path: the shipped model on the bundled sample (one window, and
overlapping 2-s windows), transcripts with given segments that span windows, fall in silence or are a
point in time, and a model without dimensions whose labels do not all map (null dimensions, an
unmapped share). Floats are compared to 1e-5 (other CPUs round the shipped model's last bits
differently); text exactly."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ser_tool import AnalysisOptions, Analyzer, GivenTranscript, SegmentationOptions, transcribe_with_emotion
from ser_tool.backends.base import Prediction
from ser_tool.labels import EMOTIONS
from tests.helpers import SAMPLE

GOLDEN = Path(__file__).parent / "golden" / "aggregation_outputs.json"
SR = 16000


class LoudnessModel:
    """Deterministic stand-in: loud windows lean 'angry', quiet ones 'sad'; no dimensional head; a
    share of the raw probability falls on a label outside the 7 emotions."""

    name = "fake"
    model_id = "loudness-no-dims"
    sample_rate = SR
    has_dimensions = False
    max_input_seconds = 30.0
    emotions_supported = tuple(e for e in EMOTIONS if e != "disgusted")

    def predict(self, waveforms):
        rows, unmapped = [], []
        for w in waveforms:
            loud = float(np.clip(np.sqrt(np.mean(np.asarray(w, dtype=np.float64) ** 2)) * 10, 0.0, 1.0))
            p = np.full(len(EMOTIONS), 0.05)
            p[EMOTIONS.index("angry")] += loud
            p[EMOTIONS.index("sad")] += 1 - loud
            p[EMOTIONS.index("disgusted")] = 0.0
            rows.append(p / p.sum())
            unmapped.append(0.1 + 0.3 * loud)
        return Prediction(np.array(rows), None, np.array(unmapped))


def _talk() -> np.ndarray:
    t = np.arange(int(3.0 * SR)) / SR
    tone = np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return np.concatenate([0.4 * tone, np.zeros(SR), 0.05 * tone, 0.2 * tone]).astype(np.float32)


SEGMENTS = [(0.0, 1.5, "first words"), (1.2, 3.7, "across two windows"), (4.0, 4.0, "a point"),
            (5.0, 7.9, "a long stretch"), (6.2, 6.8, "in the pause"), (8.0, 9.5, "the end")]


def compute() -> dict:
    embedded = Analyzer("embedded")
    overlapping = Analyzer(embedded.backend, AnalysisOptions(segmentation=SegmentationOptions(window=2.0, hop=1.0)))
    fake = Analyzer(LoudnessModel(), AnalysisOptions(segmentation=SegmentationOptions(window=1.0, hop=0.5, vad="energy")))
    sample_segments = GivenTranscript(segments=SEGMENTS)
    talk = _talk()
    out = {
        "sample_report": embedded.analyze(SAMPLE, timeline=True, name="speech_en.ogg"),
        "sample_report_overlapping": overlapping.analyze(SAMPLE, name="speech_en.ogg"),
        "sample_transcript": transcribe_with_emotion(SAMPLE, analyzer=overlapping, asr=sample_segments, name="speech_en.ogg"),
        "sample_transcript_text": transcribe_with_emotion(SAMPLE, analyzer=embedded, asr=GivenTranscript("all of it"), name="speech_en.ogg"),
        "fake_report": fake.analyze(talk, sample_rate=SR, name="talk"),
        "fake_transcript": transcribe_with_emotion(talk, sample_rate=SR, name="talk", analyzer=fake,
                                                   asr=GivenTranscript(segments=[(0.0, 2.2, "loud"), (2.5, 3.5, "gap"),
                                                                                 (3.2, 6.0, "quiet then on")])),
    }
    return {k: json.loads(v.model_dump_json()) for k, v in out.items()}


def _same(got, want, where="") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for k in want:
            _same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=0, abs_tol=1e-5), f"{where}: {got} != {want}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.skipif(not SAMPLE.is_file(), reason="the bundled sample is missing")
def test_reports_and_transcripts_are_unchanged(one_thread):
    golden = json.loads(GOLDEN.read_text())
    got = compute()
    assert got.keys() == golden.keys()
    for name in golden:
        _same(got[name], golden[name], name)


if __name__ == "__main__":  # regenerate: only when an output is meant to change
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.ser_tool.test_aggregate_golden --write")
    import torch

    torch.set_num_threads(1)
    GOLDEN.write_text(json.dumps(compute(), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
