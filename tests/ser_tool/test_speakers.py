"""Speaker attribution: clustering, turns, windows cut at changes, report fields, surfaces, DER, generator."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from evals.der import der_parts, diarization_error_rate
from ser_tool import speakers as S
from ser_tool.analyzer import AnalysisOptions, Analyzer
from ser_tool.data import Clip
from ser_tool.errors import ConfigError
from ser_tool.report import AffectReport, report_json_schema
from ser_tool.segment import SegmentationOptions, plan_segments, split_at_turns
from ser_tool.testing import SR, SpectrumSpeakerEncoder, silence, voice
from tests.helpers import SHARED_DATA


# A stand-in speaker encoder (the mean magnitude spectrum, unit length): voices with different pitch get different
# embeddings, so the pipeline around the encoder can be tested without weights.
SpectrumEncoder = SpectrumSpeakerEncoder


@pytest.fixture
def spectrum_encoder(monkeypatch):
    enc = SpectrumEncoder()
    monkeypatch.setattr(S, "load_speaker_encoder", lambda: enc)
    return enc


def conversation(f0s=(110.0, 230.0, 110.0, 230.0), turn=4.0, pause=1.0):
    parts, truth, t = [silence(0.5)], [], 0.5
    for f0 in f0s:
        parts += [voice(turn, f0=f0), silence(pause)]
        truth.append((t, t + turn, f0))
        t += turn + pause
    return np.concatenate(parts), truth


def _blobs(rng, sizes, dim=32, spread=0.25):
    centres = rng.normal(size=(len(sizes), dim))
    x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


def _agree(a, b) -> bool:
    """Same partition up to renaming."""
    return len(set(zip(a, b))) == len(set(a)) == len(set(b))


# -- parsing ----------------------------------------------------------------------------------------

def test_parse_speakers():
    assert S.parse_speakers(None) is None and S.parse_speakers("") is None
    assert S.parse_speakers("auto") == "auto" and S.parse_speakers(" AUTO ") == "auto"
    assert S.parse_speakers("2") == 2 and S.parse_speakers(3) == 3
    for bad in ("0", "9", "two", -1, 2.5, True):
        with pytest.raises(ConfigError, match="'auto' or a number"):
            S.parse_speakers(bad)
    with pytest.raises(ConfigError):
        AnalysisOptions(speakers="many")


# -- clustering -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes", [(30, 20), (25, 15, 20)])
def test_given_number_recovers_clusters(sizes):
    x, truth = _blobs(np.random.default_rng(0), sizes)
    labels = S.cluster_voices(x, len(sizes))
    assert len(set(labels)) == len(sizes) and _agree(labels, truth)


@pytest.mark.parametrize("sizes", [(40,), (30, 20), (25, 15, 20)])
def test_auto_estimates_the_number(sizes):
    x, truth = _blobs(np.random.default_rng(1), sizes)
    labels = S.cluster_voices(x, "auto")
    assert _agree(labels, truth)


def test_clustering_edge_cases():
    assert S.cluster_voices(np.zeros((0, 8)), "auto").shape == (0,)
    assert list(S.cluster_voices(np.ones((1, 8)), 3)) == [0]
    x, _ = _blobs(np.random.default_rng(2), (5, 5))
    assert len(set(S.cluster_voices(x, 8))) <= 8  # never more clusters than asked


def test_turns_from_labels_numbers_by_first_speech_and_drops_blips():
    regions = [(0.0, 6.0), (7.0, 10.0)]
    spans = [(s, s + 1.5) for s in np.arange(0.0, 4.6, 0.75)] + [(7.0, 8.5), (7.75, 9.25), (8.5, 10.0)]
    # region 1: label 5 then label 2 (one stray window of 2 amid the 5s is smoothed away); region 2: label 5
    labels = [5, 5, 2, 5, 2, 2, 2, 5, 5, 5]
    turns = S.turns_from_labels(regions, spans, labels)
    assert [t.speaker for t in turns] == [1, 2, 1]
    assert turns[0].start == 0.0 and turns[-1].end == 10.0
    assert all(a.end <= b.start for a, b in zip(turns, turns[1:]))
    assert all(t.end - t.start >= S.MIN_TURN for t in turns)


def test_window_spans_cover_the_region():
    assert S.window_spans(0.0, 0.3) == []
    assert S.window_spans(1.0, 2.0) == [(1.0, 2.0)]
    spans = S.window_spans(0.0, 4.0)
    assert spans[0] == (0.0, 1.5) and spans[-1][1] == 4.0 and all(e - s == pytest.approx(1.5) for s, e in spans)


# -- windows cut at speaker changes -----------------------------------------------------------------

def test_plan_does_not_straddle_speaker_changes():
    regions = [(0.5, 20.0), (21.0, 25.0)]
    turns = [(0.5, 7.25, 1), (7.25, 20.0, 2), (21.0, 25.0, 1)]
    plan = plan_segments(regions, 26.0, SegmentationOptions(window=4.0), turns=turns)
    speech = [p for p in plan if p.speech]
    for p in speech:
        owner = [spk for s, e, spk in turns if s <= p.start and p.end <= e]
        assert owner == [p.speaker], p
    assert any(p.end == 7.25 for p in speech) and any(p.start == 7.25 for p in speech)
    # the timeline still covers the recording without gaps or overlaps
    assert plan[0].start == 0.0 and plan[-1].end == 26.0
    assert all(a.end == b.start for a, b in zip(plan, plan[1:]))
    plain = plan_segments(regions, 26.0, SegmentationOptions(window=4.0))
    assert all(p.speaker is None for p in plain)


def test_split_at_turns_fills_the_region():
    assert split_at_turns([(0.0, 10.0)], [(0.2, 4.0, 1), (4.5, 9.5, 2)]) == [(0.0, 4.25, 1), (4.25, 10.0, 2)]
    assert split_at_turns([(0.0, 2.0), (5.0, 6.0)], [(0.0, 2.0, 2)]) == [(0.0, 2.0, 2), (5.0, 6.0, 2)]


# -- the report ------------------------------------------------------------------------------------

def test_analyzer_attributes_speakers(fake_backend, spectrum_encoder):
    audio, truth = conversation()
    report = Analyzer(fake_backend, AnalysisOptions(segmentation=SegmentationOptions(window=3.0))).analyze(
        audio, sample_rate=SR, speakers=2)
    speech = [s for s in report.timeline if s.speech]
    assert all(s.speaker in (1, 2) for s in speech)
    assert all(s.speaker is None for s in report.timeline if not s.speech)
    for s in speech:  # each window overlaps one true turn only (changes fall in pauses), with its speaker
        (f0,) = [f for a, b, f in truth if a < s.end and s.start < b]
        assert s.speaker == (1 if f0 == 110.0 else 2)
    assert [p.name for p in report.speakers] == ["speaker 1", "speaker 2"]
    assert [p.turns for p in report.speakers] == [2, 2]
    assert sum(p.share for p in report.speakers) == pytest.approx(1.0, abs=0.01)
    assert report.description.index("Speaker 1 (first heard at 0:00") < report.description.index("Speaker 2")
    AffectReport.model_validate_json(report.model_dump_json())  # round trip


class NoisyVoicePrints(SpectrumEncoder):
    """The spectrum stand-in plus measurement noise, as a real encoder's windows of one voice scatter around one
    point. (Without noise the synthetic voice's pitch glide gives one voice's windows a structure that a
    silhouette reads as several clusters; before speaker turns used finer region edges this test passed only
    because its three turns fell in one speech region.)"""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def embed(self, mels):
        e = super().embed(mels)
        e = e + 0.3 * self.rng.normal(size=e.shape) / np.sqrt(e.shape[1])
        return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_speaker_turns_end_near_the_speech(fake_backend, spectrum_encoder):
    """With speakers the timeline's speech edges are rounded to the nearest 0.25 s (after the detector's 0.15-s
    padding), not pushed outwards to 0.5 s: they stay within the DER's 0.25-s collar of the true turns."""
    audio, truth = conversation(f0s=(110.0, 230.0, 110.0), turn=3.3, pause=0.9)
    report = Analyzer(fake_backend).analyze(audio, sample_rate=SR, speakers=2)
    speech = [s for s in report.timeline if s.speech]
    starts, ends = {s.start for s in speech}, {s.end for s in speech}
    for a, b, _ in truth:
        assert min(abs(a - x) for x in starts) <= 0.25 and min(abs(b - x) for x in ends) <= 0.25
    plain = Analyzer(fake_backend).analyze(audio, sample_rate=SR, timeline=True)  # default: as before, outwards
    edges = [x for seg in plain.timeline if seg.speech for x in (seg.start, seg.end)]
    assert all(x % 0.5 == 0 for x in edges) and edges[0] == 0.0 and edges[-1] == 12.5


def test_fine_regions_round_to_the_nearest_quarter_second():
    from ser_tool.segment import FRAME_SECONDS, SpeechScan

    voiced = np.zeros(400, dtype=bool)
    voiced[int(1.02 / FRAME_SECONDS): int(3.31 / FRAME_SECONDS)] = True  # speech 1.02-3.30 s
    scan = SpeechScan([], 1.0, -60.0, [], voiced)
    opts = SegmentationOptions()  # pad 0.15 s: 0.87-3.45 s
    assert scan.fine_regions(12.0, opts) == [(0.75, 3.5)]
    assert scan.fine_regions(12.0, opts, grid=0.5) == [(1.0, 3.5)]


def test_auto_with_one_voice_is_one_speaker(fake_backend, monkeypatch):
    monkeypatch.setattr(S, "load_speaker_encoder", NoisyVoicePrints)
    audio, _ = conversation(f0s=(140.0, 140.0, 140.0))
    report = Analyzer(fake_backend).analyze(audio, sample_rate=SR, speakers="auto")
    assert [p.speaker for p in report.speakers] == [1]
    two, _ = conversation(f0s=(110.0, 230.0, 110.0))  # and the same noisy prints still tell two voices apart
    assert len(Analyzer(fake_backend).analyze(two, sample_rate=SR, speakers="auto").speakers) == 2


def test_default_output_unchanged(fake_backend, spectrum_encoder):
    audio, _ = conversation()
    report = Analyzer(fake_backend).analyze(audio, sample_rate=SR)
    data = report.model_dump(mode="json")
    assert "speakers" not in data and all("speaker" not in seg for seg in data["timeline"])
    assert "Speaker 1" not in report.description and "speakers' voices" not in report.description


def test_schema_documents_speakers():
    schema = report_json_schema()
    defs = schema["$defs"]
    assert "speaker" in defs["Segment"]["properties"] and "speakers" in schema["properties"]
    for name, model in [("AffectReport", schema), *defs.items()]:
        for field, spec in model.get("properties", {}).items():
            assert spec.get("description"), f"{name}.{field} has no description"


def test_cli_speakers_flag(tmp_path, monkeypatch, capsys, spectrum_encoder, fake_backend):
    from ser_tool import cli

    audio, _ = conversation()
    path = tmp_path / "call.wav"
    sf.write(path, audio, SR)
    monkeypatch.setattr(cli, "_analyzer", lambda cfg: Analyzer(fake_backend))
    assert cli.main(["analyze", str(path), "--speakers", "2", "--timeline"]) == 0
    out = capsys.readouterr().out
    assert "speaker 1:" in out and "speaker 2:" in out and "speaker 2  " in out
    assert cli.main(["analyze", str(path), "--speakers", "2", "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)  # --json: always a list, one report per file
    assert len(data["speakers"]) == 2
    with pytest.raises(SystemExit):
        cli.main(["analyze", str(path), "--speakers", "lots"])
    assert "'auto' or a number" in capsys.readouterr().err


def test_agent_prompt_has_speaker_lines(fake_backend, spectrum_encoder):
    from agents.prompt import render_affect_block

    audio, _ = conversation()
    report = Analyzer(fake_backend).analyze(audio, sample_rate=SR, speakers=2)
    block = render_affect_block(mode="predicted", transcript="hello", report=report)
    assert "- speaker 1 (" in block and "- speaker 2 (" in block
    plain = render_affect_block(mode="predicted", transcript="hello", report=Analyzer(fake_backend).analyze(audio, sample_rate=SR))
    assert "speaker 1" not in plain


def test_langchain_tool_passes_speakers(tmp_path, fake_backend, spectrum_encoder):
    from ser_tool.langchain_tool import SpeechEmotionTool

    audio, _ = conversation()
    path = tmp_path / "call.wav"
    sf.write(path, audio, SR)
    tool = SpeechEmotionTool(analyzer=Analyzer(fake_backend))
    msg = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name,
                       "args": {"audio_path": str(path), "speakers": 2}})
    assert "Speaker 2" in msg.content and len(msg.artifact.speakers) == 2
    msg = tool.invoke({"type": "tool_call", "id": "2", "name": tool.name,
                       "args": {"audio_path": str(path), "transcript": "hello", "speakers": 2}})
    assert msg.artifact.segments[0].speaker in (1, 2) and len(msg.artifact.report.speakers) == 2
    assert "] speaker " in msg.content


def test_transcript_segments_carry_the_speaker(fake_backend, spectrum_encoder):
    from ser_tool.asr import GivenTranscript
    from ser_tool.describe import report_summary, transcript_lines

    audio, truth = conversation()
    words = GivenTranscript(segments=[{"start": a, "end": b, "text": f"turn {i}"} for i, (a, b, _) in enumerate(truth)])
    analyzer = Analyzer(fake_backend, AnalysisOptions(segmentation=SegmentationOptions(window=3.0)))
    result = analyzer.transcribe(audio, words, sample_rate=SR, speakers=2)
    assert [s.speaker for s in result.segments] == [1, 2, 1, 2]
    assert len(result.report.speakers) == 2
    lines = transcript_lines(result)
    assert lines[0].split("] ", 1)[1].startswith("speaker 1 (") and "speaker 2 (" in lines[1]
    summary = report_summary(result.report)
    assert re.search(r"s\); speaker 1 \(\d+% of speech\): \w.*; speaker 2 \(\d+% of speech\): \w", summary), summary
    # options.speakers is the default; without speakers nothing changes
    assert [s.speaker for s in Analyzer(fake_backend, AnalysisOptions(speakers=2)).transcribe(
        audio, words, sample_rate=SR).segments] == [1, 2, 1, 2]
    plain = Analyzer(fake_backend).transcribe(audio, words, sample_rate=SR)
    assert all("speaker" not in seg for seg in plain.model_dump(mode="json")["segments"])
    assert "speaker" not in " ".join(transcript_lines(plain)) and "speaker 1" not in report_summary(plain.report)


def test_cli_transcribe_speakers(tmp_path, monkeypatch, capsys, spectrum_encoder, fake_backend):
    from ser_tool import cli
    from ser_tool.report import EmotionTranscript

    audio, truth = conversation()
    path = tmp_path / "call.wav"
    sf.write(path, audio, SR)
    words = tmp_path / "words.json"
    words.write_text(json.dumps([{"start": a, "end": b, "text": f"turn {i}"} for i, (a, b, _) in enumerate(truth)]))
    monkeypatch.setattr(cli, "_analyzer", lambda cfg: Analyzer(fake_backend))
    assert cli.main(["transcribe", str(path), "--transcript", str(words), "--speakers", "2", "--json"]) == 0
    result = EmotionTranscript.model_validate_json(capsys.readouterr().out)
    assert [s.speaker for s in result.segments] == [1, 2, 1, 2] and len(result.report.speakers) == 2
    assert cli.main(["transcribe", str(path), "--transcript", str(words), "--speakers", "auto"]) == 0
    out = capsys.readouterr().out
    assert "speaker 1:" in out and "] speaker 2 (" in out
    assert cli.main(["transcribe", str(path), "--transcript", str(words)]) == 0
    assert "speaker 1" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["transcribe", str(path), "--transcript", "x", "--speakers", "0"])
    assert "'auto' or a number" in capsys.readouterr().err


def test_mcp_tool_publishes_speakers_argument():
    import inspect

    from mcp_server.tools import analyze_speech_emotion

    assert "speakers" in inspect.signature(analyze_speech_emotion).parameters
    from mcp_server.tools import analyze_speech_emotion_batch, transcribe_speech_emotion

    assert "speakers" in inspect.signature(analyze_speech_emotion_batch).parameters
    assert "speakers" in inspect.signature(transcribe_speech_emotion).parameters


# -- DER -------------------------------------------------------------------------------------------

def test_der_known_values():
    ref = [(0.0, 10.0, "a"), (10.0, 20.0, "b")]
    assert diarization_error_rate(ref, ref) == 0.0
    assert diarization_error_rate(ref, [(0.0, 10.0, 7), (10.0, 20.0, 3)]) == 0.0  # names do not matter
    assert diarization_error_rate(ref, []) == pytest.approx(1.0)
    # all speech as one speaker: b's 10 s (minus its collar) confused
    p = der_parts(ref, [(0.0, 20.0, 1)], collar=0.0)
    assert (p.missed, p.false_alarm, p.confusion, p.total) == pytest.approx((0.0, 0.0, 10.0, 20.0))
    # a boundary 0.2 s late is forgiven by the 0.25-s collar, not without it
    late = [(0.0, 10.2, 1), (10.2, 20.0, 2)]
    assert diarization_error_rate(ref, late) == 0.0
    assert diarization_error_rate(ref, late, collar=0.0) == pytest.approx(0.2 / 20)
    # false alarm in a pause
    p = der_parts([(0.0, 5.0, "a"), (8.0, 10.0, "b")], [(0.0, 10.0, 1)], collar=0.0)
    assert p.false_alarm == pytest.approx(3.0) and p.confusion == pytest.approx(2.0)


# -- the conversation generator ---------------------------------------------------------------------

def _toy_pools(tmp_path):
    pools = {}
    for k, f0 in enumerate((110.0, 180.0, 260.0)):
        spk = f"toy_{k}"
        for j, emo in enumerate(("angry", "sad", "neutral") * 2):
            path = tmp_path / f"{spk}_{j}.wav"
            sf.write(path, np.concatenate([silence(0.3), voice(1.0 + 0.2 * j, f0=f0), silence(0.3)]), SR)
            pools.setdefault(spk, []).append(Clip(path=path, corpus="toy", label=emo, speaker=spk))
    return pools


@pytest.mark.parametrize("n", [2, 3])
def test_generator_is_seeded_and_truthful(tmp_path, n):
    from evals.conversations import generate

    pools = _toy_pools(tmp_path)
    a, b = generate(pools, n, seed=4), generate(pools, n, seed=4)
    assert np.array_equal(a.samples, b.samples) and a.turns == b.turns
    assert generate(pools, n, seed=5).turns != a.turns
    assert len(a.speakers) == n
    assert all(x.speaker != y.speaker for x, y in zip(a.turns, a.turns[1:]))  # alternating turns
    assert all(x.end < y.start for x, y in zip(a.turns, a.turns[1:]))  # pauses, no overlap
    assert a.turns[-1].end <= a.duration
    for t in a.turns:  # the ground truth marks sound, the pauses between turns are silent
        seg = a.samples[int(t.start * SR): int(t.end * SR)]
        assert np.abs(seg).max() > 0.05
        assert t.emotion in {c.label for c in pools[t.speaker]}
    for x, y in zip(a.turns, a.turns[1:]):
        assert np.abs(a.samples[int(x.end * SR) + 16: int(y.start * SR) - 16]).max() == 0.0


@pytest.mark.slow
@pytest.mark.data
def test_real_voices_two_speakers():
    pytest.importorskip("resemblyzer", reason="the voice extra (Resemblyzer) is not installed")
    if not (SHARED_DATA / "ravdess" / "manifest.csv").is_file():
        pytest.skip(f"needs RAVDESS in {SHARED_DATA}")
    from evals.conversations import generate, speaker_pools
    from ser_tool.audio import open_audio

    pools = {k: v for k, v in speaker_pools(SHARED_DATA, "test", corpora=("ravdess",)).items()}
    conv = generate(pools, 2, seed=0)
    src = open_audio(conv.samples, sample_rate=SR)
    from ser_tool.segment import scan_speech

    regions = scan_speech(src, SegmentationOptions()).fine_regions(src.duration, SegmentationOptions())  # as the Analyzer
    turns = S.diarize(src, regions, 2)
    ref = [(t.start, t.end, t.speaker) for t in conv.turns]
    assert diarization_error_rate(ref, [(t.start, t.end, t.speaker) for t in turns]) < 0.5
