"""Speech recognition (a tiny random Whisper through the real pipeline path) and the alignment of
transcript segments with the SER timeline (hand-made segments, so every rule can be checked by hand)."""

import numpy as np
import pytest
import soundfile as sf

from ser_tool import Analyzer, EmotionTranscript, transcribe_with_emotion, transcript_lines
from ser_tool.align import align
from ser_tool.asr import ASR, FasterWhisperASR, GivenTranscript, Transcript, TranscriptSegment, WhisperASR, load_asr
from ser_tool.errors import ConfigError, ModelNotAvailableError
from ser_tool.labels import EMOTIONS
from ser_tool.report import Affect, Dimensions, EmotionProbabilities, Segment
from ser_tool.testing import SR, FakeBackend, silence, voice


def affect(emotion: str, p: float, v: float, a: float, d: float) -> Affect:
    probs = [(1 - p) / 6] * 7
    probs[EMOTIONS.index(emotion)] = p
    return Affect(emotion=emotion, confidence=0.5, probabilities=EmotionProbabilities.from_sequence(probs),
                  dimensions=Dimensions(valence=v, arousal=a, dominance=d))


ANGRY = affect("angry", 0.7, 0.2, 0.9, 0.8)
SAD = affect("sad", 0.9, 0.1, 0.1, 0.2)
TIMELINE = [
    Segment(start=0.0, end=10.0, speech=True, affect=ANGRY),
    Segment(start=10.0, end=12.0, speech=False),
    Segment(start=12.0, end=22.0, speech=True, affect=SAD),
]


def seg(start, end, text="words"):
    return TranscriptSegment(start=start, end=end, text=text)


# -- alignment ---------------------------------------------------------------------------------------

def test_segment_inside_one_window_takes_that_windows_affect():
    (out,) = align([seg(1.0, 4.0, "hello there")], TIMELINE)
    assert out.affect == ANGRY
    assert out.speech_coverage == 1.0
    assert (out.start, out.end, out.text) == (1.0, 4.0, "hello there")


def test_segment_spanning_two_windows_blends_them_by_overlap():
    # 8..14: 2 s of angry, 2 s of silence (no weight), 2 s of sad -> an even blend
    (out,) = align([seg(8.0, 14.0)], TIMELINE, n_supported=7)
    p = np.array(out.affect.probabilities.as_tuple())
    expected = (np.array(ANGRY.probabilities.as_tuple()) + np.array(SAD.probabilities.as_tuple())) / 2
    np.testing.assert_allclose(p, expected, atol=1e-5)
    assert out.affect.emotion == "sad"  # 0.45 + 0.05/2 beats 0.35 + 0.0167
    assert out.affect.dimensions.valence == pytest.approx(0.15)
    assert out.affect.dimensions.arousal == pytest.approx(0.5)
    assert out.speech_coverage == pytest.approx(4 / 6, abs=1e-3)
    # confidence is computed from the blend, the same rule as the report's overall affect
    k = 7
    assert out.affect.confidence == pytest.approx((p.max() - 1 / k) / (1 - 1 / k), abs=1e-3)


def test_unequal_overlap_weights_follow_the_seconds():
    (out,) = align([seg(9.0, 15.0)], TIMELINE)  # 1 s angry, 3 s sad
    p = np.array(out.affect.probabilities.as_tuple())
    expected = 0.25 * np.array(ANGRY.probabilities.as_tuple()) + 0.75 * np.array(SAD.probabilities.as_tuple())
    np.testing.assert_allclose(p, expected, atol=1e-5)


def test_segment_in_non_speech_has_no_affect():
    out = align([seg(10.2, 11.8, "uh"), seg(30.0, 31.0, "after the end")], TIMELINE)
    assert [s.affect for s in out] == [None, None]
    assert [s.speech_coverage for s in out] == [0.0, 0.0]


def test_point_segment_takes_the_window_containing_it():
    (out,) = align([seg(15.0, 15.0, "ok")], TIMELINE)
    assert out.affect == SAD


def test_overlapping_windows_count_coverage_once():
    timeline = [Segment(start=0, end=4, speech=True, affect=ANGRY), Segment(start=2, end=6, speech=True, affect=SAD)]
    (out,) = align([seg(0.0, 6.0)], timeline)
    assert out.speech_coverage == 1.0
    assert sum(out.affect.probabilities.as_tuple()) == pytest.approx(1.0, abs=1e-4)


def test_segments_keep_their_order_and_count():
    segs = [seg(0, 2, "a"), seg(2, 9, "b"), seg(10.5, 11, "c"), seg(12, 20, "d")]
    out = align(segs, TIMELINE)
    assert [s.text for s in out] == ["a", "b", "c", "d"]
    assert [s.affect.emotion if s.affect else None for s in out] == ["angry", "angry", None, "sad"]


# -- given transcripts -------------------------------------------------------------------------------

def test_given_text_spans_the_whole_recording():
    t = GivenTranscript("I am fine, really.").transcribe(silence(3.0))
    assert isinstance(t, Transcript)
    assert t.segments == [TranscriptSegment(start=0.0, end=3.0, text="I am fine, really.")]
    assert t.model_id == "given"


def test_given_segments_are_clipped_to_the_recording():
    t = GivenTranscript(segments=[(0.0, 1.0, " hi "), {"start": 1.0, "end": 9.0, "text": "there"}, (2.0, 2.5, "  ")]) \
        .transcribe(silence(2.0))
    assert [(s.start, s.end, s.text) for s in t.segments] == [(0.0, 1.0, "hi"), (1.0, 2.0, "there")]
    assert t.text == "hi there"


def test_given_transcript_needs_exactly_one_form():
    with pytest.raises(ConfigError, match="exactly one"):
        GivenTranscript()
    with pytest.raises(ConfigError):
        GivenTranscript("x", segments=[])


def test_segment_must_not_end_before_it_starts():
    with pytest.raises(ValueError, match="before it starts"):
        TranscriptSegment(start=2.0, end=1.0, text="x")


def test_emotion_transcript_with_a_given_transcript(tmp_path):
    wave = np.concatenate([voice(4.0, amp=0.4), silence(2.0), voice(4.0, amp=0.05)])
    path = tmp_path / "talk.wav"
    sf.write(path, wave, SR)
    asr = GivenTranscript(segments=[(0.0, 4.0, "I am furious."), (4.2, 5.8, "..."), (6.0, 10.0, "and so tired.")])
    result = transcribe_with_emotion(path, analyzer=Analyzer(FakeBackend()), asr=asr)
    assert isinstance(result, EmotionTranscript)
    assert result.source.endswith("talk.wav") and result.asr_model == "given"
    assert result.report.timeline is not None
    assert result.text == "I am furious. ... and so tired."
    first, middle, last = result.segments
    assert first.affect.emotion == "angry" and last.affect.emotion == "sad"  # FakeBackend: loud = angry, quiet = sad
    assert middle.speech_coverage < 0.5
    lines = transcript_lines(result)
    assert lines[0].startswith("[0:00-0:04] (angry, confidence") and lines[0].endswith("I am furious.")
    EmotionTranscript.model_validate_json(result.model_dump_json())  # round-trips


# -- Whisper through the real pipeline ----------------------------------------------------------------

def test_tiny_whisper_loads_through_the_pipeline_and_returns_timed_segments(tiny_whisper):
    asr = load_asr(str(tiny_whisper), language="en")
    assert isinstance(asr, WhisperASR) and isinstance(asr, ASR)
    audio = voice(5.0)
    t = asr.transcribe(audio)
    assert t.model_id == str(tiny_whisper) and t.language == "en"
    for s in t.segments:  # random weights: structure only, never the words
        assert 0.0 <= s.start <= s.end <= 5.0
        assert s.text == s.text.strip() and s.text
    assert [s.start for s in t.segments] == sorted(s.start for s in t.segments)
    assert asr.pipeline is asr.pipeline  # loaded once, reused


@pytest.mark.slow
def test_tiny_whisper_long_audio_is_chunked(tiny_whisper):
    asr = WhisperASR(str(tiny_whisper), language="en", chunk_length_s=5.0)
    t = asr.transcribe(np.concatenate([voice(6.0), silence(2.0), voice(4.0)]))  # 12 s: three chunks
    assert all(0.0 <= s.start <= s.end <= 12.0 for s in t.segments)


def test_emotion_transcript_with_tiny_whisper(tiny_whisper, tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, np.concatenate([voice(3.0, amp=0.4), silence(1.0), voice(3.0, amp=0.03)]), SR)
    result = transcribe_with_emotion(path, analyzer=Analyzer(FakeBackend()), asr=WhisperASR(str(tiny_whisper), language="en"))
    assert result.asr_model == str(tiny_whisper)
    assert result.report.overall.emotion in EMOTIONS
    for s in result.segments:
        assert 0.0 <= s.speech_coverage <= 1.0
        assert (s.affect is None) == (s.speech_coverage == 0.0)


def test_missing_whisper_model_is_a_clear_error(tmp_path):
    asr = WhisperASR(str(tmp_path / "nope"), offline=True)
    with pytest.raises(ModelNotAvailableError, match="nope' does not exist") as info:
        asr.transcribe(voice(1.0))
    assert [h.setting for h in info.value.hints] == ["asr_model"]
    # a folder that is there but holds no checkpoint: the load fails, and the fix says what the folder must hold
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match=r"local folder; .*processor's files and the weights"):
        WhisperASR(str(tmp_path / "empty"), offline=True).transcribe(voice(1.0))


def test_load_asr_picks_faster_whisper_for_a_ctranslate2_folder(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    assert isinstance(load_asr(str(tmp_path)), FasterWhisperASR)
    with pytest.raises(ConfigError):
        load_asr("  ")
    with pytest.raises(ConfigError, match="chunk_length_s"):
        WhisperASR("x", chunk_length_s=45)


def test_faster_whisper_adapter(tmp_path, monkeypatch):
    """The optional CTranslate2 backend, against a stand-in for the faster_whisper package."""
    import sys
    import types
    from collections import namedtuple

    Seg = namedtuple("Seg", "start end text")
    seen = {}

    class WhisperModel:
        def __init__(self, path, device, compute_type):
            seen.update(path=path, device=device)

        def transcribe(self, audio, language=None):
            seen["samples"] = len(audio)
            return iter([Seg(0.0, 1.5, " hello"), Seg(1.5, 9.0, " world ")]), types.SimpleNamespace(language="en")

    monkeypatch.setitem(sys.modules, "faster_whisper", types.SimpleNamespace(WhisperModel=WhisperModel))
    (tmp_path / "model.bin").write_bytes(b"")
    t = load_asr(str(tmp_path)).transcribe(voice(2.0))
    assert seen == {"path": str(tmp_path), "device": "cpu", "samples": 2 * SR}
    assert [(s.start, s.end, s.text) for s in t.segments] == [(0.0, 1.5, "hello"), (1.5, 2.0, "world")]
    assert t.language == "en"


def test_faster_whisper_missing_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(ModelNotAvailableError, match="pip install faster-whisper"):
        FasterWhisperASR(str(tmp_path)).transcribe(voice(1.0))
