"""`ser transcribe`: the emotion-aware transcript from the command line."""

import json

import numpy as np
import pytest
import soundfile as sf

from ser_tool.cli import main
from ser_tool.report import EmotionTranscript
from ser_tool.testing import SR, make_tiny_whisper_asr, silence, voice


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "talk.wav"
    sf.write(path, np.concatenate([voice(3.0, amp=0.3), silence(1.0), voice(3.0, amp=0.1)]), SR)
    return path


def test_given_transcript_segments_from_a_json_file(wav, tmp_path, capsys):
    segs = tmp_path / "words.json"
    segs.write_text(json.dumps([{"start": 0, "end": 3, "text": "first part"}, {"start": 4, "end": 7, "text": "second part"}]))
    assert main(["transcribe", str(wav), "--transcript", str(segs), "--json"]) == 0
    result = EmotionTranscript.model_validate_json(capsys.readouterr().out)
    assert [s.text for s in result.segments] == ["first part", "second part"]
    assert all(s.affect is not None for s in result.segments)


def test_text_output_shows_each_segment_with_its_emotion(wav, capsys):
    assert main(["transcribe", str(wav), "--transcript", "just some words"]) == 0
    out = capsys.readouterr().out
    assert "expressed emotion:" in out and "transcript (given):" in out
    assert "just some words" in out.splitlines()[-1] and "confidence" in out.splitlines()[-1]


def test_with_a_local_whisper_checkpoint(wav, tmp_path, capsys):
    model = make_tiny_whisper_asr(tmp_path / "whisper")
    assert main(["transcribe", str(wav), "--asr-model", str(model), "--language", "en", "--json"]) == 0
    result = EmotionTranscript.model_validate_json(capsys.readouterr().out)
    assert result.asr_model == str(model) and result.language == "en"


def test_errors(wav, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SER_ASR_MODEL", raising=False)
    assert main(["transcribe", str(wav)]) == 2
    assert "--asr-model" in capsys.readouterr().err
    assert main(["transcribe", str(tmp_path / "missing.wav"), "--transcript", "x"]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["transcribe", str(wav), "--asr-model", str(tmp_path / "no-model"), "--offline"]) == 3
    err = capsys.readouterr().err
    assert "no-model' does not exist" in err and "--asr-model" in err
