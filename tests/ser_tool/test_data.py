"""ser_tool.data: manifest corpora, label mapping, speaker-independent splits, V/A/D targets."""

import csv

import pytest

from ser_tool import ConfigError
from ser_tool.data import VAD_ANCHORS, read_corpus, split_by_speaker, vad_target


def test_vad_targets_anchor_and_intensity():
    assert vad_target("angry") == VAD_ANCHORS["angry"]
    v, a, d = vad_target("angry", "strong")
    assert v < VAD_ANCHORS["angry"][0] and a > VAD_ANCHORS["angry"][1] and d > VAD_ANCHORS["angry"][2]
    assert vad_target("neutral", "strong") == VAD_ANCHORS["neutral"]
    assert all(0 <= x <= 1 for e in VAD_ANCHORS for x in vad_target(e, "high"))
    assert VAD_ANCHORS["happy"][0] > VAD_ANCHORS["neutral"][0] > VAD_ANCHORS["sad"][0]


def _manifest(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "corpus", "language", "speaker", "gender", "label", "original_label", "intensity", "text", "duration_s"])
        w.writeheader()
        for r in rows:
            w.writerow({"language": "en", "gender": "", "original_label": r["label"], "intensity": "", "text": "", "duration_s": "1.0", **r})
    return folder


def test_label_mapping_calm_to_neutral_and_unmapped_dropped(tmp_path):
    rows = [{"path": f"a{i}.opus", "corpus": "c", "speaker": "s1", "label": lab}
            for i, lab in enumerate(["calm", "neutral", "happy", "other", "boredom", "fearful", "other"])]
    corpus = read_corpus(_manifest(tmp_path / "c", rows))
    assert [c.label for c in corpus.clips] == ["neutral", "neutral", "happy", "fearful"]
    assert corpus.dropped == {"other": 2, "boredom": 1}
    assert corpus.clips[0].path == tmp_path / "c" / "a0.opus"


def test_manifest_errors(tmp_path):
    with pytest.raises(ConfigError, match="no manifest.csv"):
        read_corpus(tmp_path)
    (tmp_path / "manifest.csv").write_text("file,emotion\nx.wav,happy\n")
    with pytest.raises(ConfigError, match="lacks the column"):
        read_corpus(tmp_path)


def test_split_is_speaker_independent_and_stratified(tmp_path):
    rows = []
    for corpus, n_spk in (("big", 20), ("small", 8)):
        for s in range(n_spk):
            for k in range(5):
                rows.append({"path": f"{s}_{k}.opus", "corpus": corpus, "speaker": f"{corpus}_{s:02d}", "label": "happy"})
    rows += [{"path": f"anon{k}.opus", "corpus": "small", "speaker": "", "label": "sad"} for k in range(4)]
    # a speaker shared by two corpora (like RAVDESS speech and song)
    rows += [{"path": f"song{k}.opus", "corpus": "song", "speaker": f"big_{s:02d}", "label": "sad"} for s in range(20) for k in range(2)]
    clips = read_corpus(_manifest(tmp_path / "m", rows)).clips
    split = split_by_speaker(clips)
    speakers = {name: {c.speaker for c in part if c.speaker} for name, part in split.items()}
    assert not speakers["train"] & speakers["dev"] and not speakers["train"] & speakers["test"] and not speakers["dev"] & speakers["test"]
    for corpus in ("big", "small", "song"):
        assert any(c.corpus == corpus for c in split["test"]), corpus  # every corpus has held-out speakers
    assert all(c.speaker for c in split["test"] + split["dev"])  # anonymous clips only train
    assert {f"big_{s:02d}" for s in range(15, 20)} == {c.speaker for c in split["test"] if c.corpus == "big"}
    assert split == split_by_speaker(clips)  # deterministic


def test_ravdess_style_split_holds_out_actors_19_to_24(tmp_path):
    rows = [{"path": f"{a}.opus", "corpus": "ravdess", "speaker": f"ravdess_{a:02d}", "label": "angry"} for a in range(1, 25)]
    split = split_by_speaker(read_corpus(_manifest(tmp_path / "r", rows)).clips)
    assert sorted(int(c.speaker[-2:]) for c in split["test"]) == list(range(19, 25))
    assert sorted(int(c.speaker[-2:]) for c in split["dev"]) == [17, 18]
