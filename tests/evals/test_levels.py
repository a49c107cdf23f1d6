"""`ser-eval levels`: arousal against expressed-emotion levels (the maths by hand, the run on a toy corpus, BAVED)."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from evals.classify.levels import auc, evaluate_levels, level_scores, read_levels, summary, within_speaker_auc
from ser_tool.errors import ConfigError
from ser_tool.testing import FakeBackend
from ser_tool.testing.synthetic import SR, voice
from tests.helpers import SHARED_DATA


def make_level_corpus(folder, n_speakers=4, intensities=("low", "normal", "high")):
    """Per speaker one clip per level, louder with each level (the FakeBackend's arousal follows loudness),
    plus one clip whose intensity names no level."""
    (folder / "audio").mkdir(parents=True)
    rows = []
    for s in range(n_speakers):
        for k, intensity in enumerate((*intensities, "")):
            path = f"audio/{s}_{k}.wav"
            sf.write(folder / path, voice(1.0, f0=110 + 15 * s, amp=0.02 * (k + 1) ** 2), SR)
            rows.append({"path": path, "corpus": "lv", "language": "ar", "speaker": f"lv_{s}",
                         "label": "neutral" if intensity == "normal" else "other", "intensity": intensity})
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder


def test_auc_by_hand():
    assert auc([1, 2], [3, 4]) == 1.0
    assert auc([3, 4], [1, 2]) == 0.0
    assert auc([1, 3], [2, 4]) == 0.75  # 3 of the 4 pairs ordered
    assert auc([1, 2], [2, 3]) == 0.875  # the tie counts half: (1 + 1 + 0.5 + 1) / 4
    assert auc([], [1]) is None


def test_within_speaker_auc_removes_each_speakers_offset():
    # speaker b sits 10 above speaker a: pooled, b's low clips outrank a's high ones
    scores = np.array([0.0, 1.0, 10.0, 11.0])
    levels = np.array([0, 2, 0, 2])
    speakers = ["a", "a", "b", "b"]
    assert auc(scores[levels == 0], scores[levels == 2]) == 0.75
    assert within_speaker_auc(scores, levels, speakers, (0, 2)) == 1.0
    # a speaker with one level only adds no pair; an unknown speaker ("") is left out
    assert within_speaker_auc(np.r_[scores, 5.0], np.r_[levels, 0], [*speakers, "c"], (0, 2)) == 1.0


def test_level_scores_rank_and_means():
    s = level_scores(np.array([0.1, 0.2, 0.3, 0.6, 0.5, 0.9]), np.array([0, 0, 1, 1, 2, 2]), ["x"] * 6)
    assert s["n"] == {"low": 2, "normal": 2, "high": 2}
    assert s["auc"]["low<normal"] == 1.0 and s["auc"]["normal<high"] == 0.75 and s["auc"]["low<high"] == 1.0
    assert s["mean"]["low"] == pytest.approx(0.15) and s["mean"]["high"] == pytest.approx(0.7)
    assert 0.8 < s["spearman"] < 1.0
    flat = level_scores(np.full(4, 0.5), np.array([0, 0, 2, 2]), ["x"] * 4)
    assert flat["spearman"] is None and flat["auc"] == {"low<high": 0.5}  # no normal clips: one pair only


def test_read_levels_maps_intensity_and_counts_the_rest(tmp_path):
    clips, skipped = read_levels(make_level_corpus(tmp_path / "lv", intensities=("low", "normal", "strong")))
    assert sorted({c.level for c in clips}) == [0, 1, 2]  # strong (RAVDESS) counts as high
    assert skipped == {"(empty)": 4}
    (tmp_path / "no").mkdir()
    with pytest.raises(ConfigError, match="manifest.csv"):
        read_levels(tmp_path / "no")


def test_evaluate_levels_on_a_toy_corpus(tmp_path):
    report = evaluate_levels(FakeBackend(), [make_level_corpus(tmp_path / "lv")])
    c = report["per_corpus"]["lv"]
    assert report["n_clips"] == 12 and c["speakers"] == 4 and c["language"] == ["ar"]
    # louder with each level, and the fake's arousal is its loudness: every pair ordered, for both scores
    assert c["arousal"]["auc"] == {"low<normal": 1.0, "normal<high": 1.0, "low<high": 1.0}
    assert c["loudness_anchor"]["auc_within_speaker"]["low<high"] == 1.0
    assert c["arousal"]["spearman"] > 0.9
    json.dumps(report)
    text = summary(report)
    assert "[lv] language ar, 4 speakers" in text and "anchor: loudness" in text


def test_a_corpus_whose_clips_all_fail_to_decode_is_an_error_naming_the_first(tmp_path):
    from ser_tool.errors import AudioError

    folder = make_level_corpus(tmp_path / "lv", n_speakers=1)
    for wav in (folder / "audio").iterdir():
        wav.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="none of the 3 clips could be decoded"):
        evaluate_levels(FakeBackend(), [folder])
    # one readable clip is enough: the broken ones are listed in the report
    sf.write(folder / "audio" / "0_1.wav", voice(1.0), SR)
    report = evaluate_levels(FakeBackend(), [folder])
    assert report["n_clips"] == 1 and len(report["failed_clips"]) == 2


def test_evaluate_levels_refuses_a_backend_without_dimensions(tmp_path):
    backend = FakeBackend()
    backend.has_dimensions = False
    with pytest.raises(ConfigError, match="no valence/arousal/dominance"):
        evaluate_levels(backend, [make_level_corpus(tmp_path / "lv")])


def test_ser_eval_levels_cli(tmp_path, monkeypatch, capsys):
    import evals.cli
    import ser_tool.backends

    monkeypatch.setattr(ser_tool.backends, "load_backend", lambda *a, **k: FakeBackend())
    folder = make_level_corpus(tmp_path / "lv")
    assert evals.cli.main(["levels", str(folder), "--out", str(tmp_path / "out")]) == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.json", "summary.txt"}
    assert "model arousal" in capsys.readouterr().out
    assert evals.cli.main(["levels", str(tmp_path / "missing"), "--out", str(tmp_path / "out2")]) == 2
    assert "has no manifest.csv" in capsys.readouterr().err


@pytest.mark.slow
def test_shipped_model_hears_arousal_in_arabic_it_never_heard():
    """BAVED (Arabic single words, never in training): the shipped compact model's arousal must put the
    high level above the low one (all 1,935 clips: AUC 0.773; chance 0.5)."""
    folder = SHARED_DATA / "baved"
    if not (folder / "manifest.csv").is_file():
        pytest.skip(f"needs the BAVED corpus in {folder}")
    from ser_tool.backends import load_backend

    report = evaluate_levels(load_backend("embedded"), [folder], limit=150)
    assert report["per_corpus"]["baved"]["arousal"]["auc"]["low<high"] > 0.65
