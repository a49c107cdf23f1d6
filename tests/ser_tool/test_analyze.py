import numpy as np
import pytest

from ser_tool import EMOTIONS, AnalysisOptions, Analyzer, NoSpeechError, SegmentationOptions
from ser_tool.aggregate import confidence_from
from ser_tool.testing import SR, FakeBackend, silence, voice


def _analyzer(backend, **seg):
    return Analyzer(backend, AnalysisOptions(segmentation=SegmentationOptions(**seg), batch_size=2))


def test_short_clip_has_no_timeline_unless_asked(fake_backend):
    x = voice(3)
    report = _analyzer(fake_backend).analyze(x, sample_rate=SR)
    assert report.timeline is None
    assert report.duration == pytest.approx(3.0) and report.sample_rate == 16000
    assert report.backend == "fake" and report.model_id == "fake-loudness"
    assert sum(report.overall.probabilities.as_tuple()) == pytest.approx(1.0, abs=1e-5)
    forced = _analyzer(fake_backend).analyze(x, sample_rate=SR, timeline=True)
    assert forced.timeline is not None and len(forced.timeline) >= 1
    assert _analyzer(fake_backend).analyze(x, sample_rate=SR, timeline=False).timeline is None


def test_long_recording_timeline_and_duration_weighted_summary(fake_backend):
    loud, quiet = voice(12, amp=0.4), voice(6, amp=0.08)
    x = np.concatenate([silence(2), loud, silence(3), quiet, silence(2)])
    report = _analyzer(fake_backend, window=10).analyze(x, sample_rate=SR)
    tl = report.timeline
    assert tl is not None
    assert [s.speech for s in tl] == [False, True, False, True, False]
    assert all(s.affect is None for s in tl if not s.speech)
    assert tl[1].affect.emotion == "angry" and tl[3].affect.emotion == "sad"
    # the summary is the duration-weighted mean of the speech segments
    speech = [s for s in tl if s.speech]
    w = np.array([s.end - s.start for s in speech])
    expected = w @ np.array([s.affect.probabilities.as_tuple() for s in speech]) / w.sum()
    assert report.overall.probabilities.as_tuple() == pytest.approx(tuple(expected), abs=1e-5)
    assert report.overall.emotion == "angry"  # the loud part is twice as long
    assert report.speech_duration == pytest.approx(w.sum())
    assert "angry" in report.description and "sad" in report.description  # the change over time is told
    assert "not what the speaker actually feels" in report.description


def test_batches_are_bounded_and_results_do_not_depend_on_batch_size():
    x = np.concatenate([voice(35, amp=0.3), silence(1)])
    small, big = FakeBackend(), FakeBackend()
    r1 = Analyzer(small, AnalysisOptions(segmentation=SegmentationOptions(window=4), batch_size=2)).analyze(x, sample_rate=SR)
    r2 = Analyzer(big, AnalysisOptions(segmentation=SegmentationOptions(window=4), batch_size=16)).analyze(x, sample_rate=SR)
    assert max(len(b) for b in small.batches) == 2 and len(small.batches) > 3
    assert r1.overall == r2.overall and r1.timeline == r2.timeline
    assert all(len(w) <= 6 * SR for b in small.batches for w in b)  # windows of 4 s, tails up to 1.5x


def test_progress_is_reported(fake_backend):
    calls = []
    _analyzer(fake_backend, window=3).analyze(voice(20), sample_rate=SR, progress=lambda d, t: calls.append((d, t)))
    assert calls and calls[-1][0] == calls[-1][1] and [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_pure_silence_is_an_error(fake_backend):
    with pytest.raises(NoSpeechError, match="silent"):
        _analyzer(fake_backend).analyze(silence(4), sample_rate=SR)
    assert fake_backend.batches == []


def test_noise_without_speech_is_an_error(fake_backend):
    noise = 0.0005 * np.random.default_rng(0).standard_normal(4 * SR).astype(np.float32)
    with pytest.raises(NoSpeechError, match="no speech detected"):
        _analyzer(fake_backend).analyze(noise, sample_rate=SR)


def test_confidence_is_zero_when_flat_and_one_when_certain():
    assert confidence_from(np.full(7, 1 / 7), 7) == pytest.approx(0.0)
    assert confidence_from(np.eye(7)[2], 7) == pytest.approx(1.0)
    # a 4-emotion model: flat over its 4 emotions is also zero
    assert confidence_from(np.array([0.25, 0.25, 0.25, 0.25, 0, 0, 0]), 4) == pytest.approx(0.0)
    assert 0 < confidence_from(np.array([0.4, 0.3, 0.3, 0, 0, 0, 0]), 7) < 0.4


def test_unsupported_emotions_are_reported():
    backend = FakeBackend(emotions=("neutral", "happy", "sad", "angry"))
    report = _analyzer(backend).analyze(voice(3), sample_rate=SR)
    assert report.emotions_supported == ["neutral", "happy", "sad", "angry"]
    assert report.overall.probabilities.fearful == 0.0
    assert any("cannot detect: fearful, disgusted, surprised" in w for w in report.warnings)


def test_backend_loads_lazily_once(monkeypatch, fake_backend):
    import ser_tool.analyzer as analyze_mod

    calls = []

    def fake_load(spec):
        calls.append(spec.name)
        return fake_backend

    monkeypatch.setattr(analyze_mod, "load_backend", fake_load)
    analyzer = Analyzer("hf", model="some/model")
    assert calls == []
    analyzer.analyze(voice(2), sample_rate=SR)
    analyzer.analyze(voice(2), sample_rate=SR)
    assert calls == ["hf"]


def test_missing_embedded_weights_fail_clearly(sample_path, tmp_path, monkeypatch):
    from ser_tool import ModelNotAvailableError
    from ser_tool.backends import embedded

    from ser_tool.console import error_message

    monkeypatch.setattr(embedded, "default_model_dir", lambda: tmp_path)
    with pytest.raises(ModelNotAvailableError, match="another backend") as info:
        Analyzer("embedded").analyze(sample_path)
    assert "--backend" in error_message(info.value)  # the CLI words the hint as its flag


def test_emotion_order_in_probabilities(fake_backend):
    report = _analyzer(fake_backend).analyze(voice(3, amp=0.4), sample_rate=SR)
    assert tuple(report.overall.probabilities.model_dump()) == EMOTIONS
