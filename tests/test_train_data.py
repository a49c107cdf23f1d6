import csv

import numpy as np
import pytest
import torch

from ser_tool import ConfigError
from ser_tool.train.data import read_corpus, split_by_speaker
from ser_tool.train.loss import HybridLoss, ccc, class_weights
from ser_tool.train.targets import VAD_ANCHORS, vad_target


def _ccc_np(y, p):
    my, mp = y.mean(), p.mean()
    cov = ((y - my) * (p - mp)).mean()
    return 2 * cov / (y.var() + p.var() + (my - mp) ** 2)


def test_ccc_matches_numpy():
    rng = np.random.default_rng(0)
    y, p = rng.random((16, 3)), rng.random((16, 3))
    got = ccc(torch.tensor(p), torch.tensor(y)).numpy()
    assert got == pytest.approx([_ccc_np(y[:, i], p[:, i]) for i in range(3)], abs=1e-6)
    same = ccc(torch.tensor(y), torch.tensor(y)).numpy()
    assert same == pytest.approx([1, 1, 1], abs=1e-6)
    flipped = ccc(torch.tensor(-y + 1), torch.tensor(y)).numpy()
    assert np.all(flipped < 0)


def test_ccc_edge_cases_are_finite():
    one = ccc(torch.tensor([[0.3, 0.5, 0.9]]), torch.tensor([[0.1, 0.5, 0.2]]))
    assert torch.all(torch.isfinite(one)) and torch.allclose(one, torch.zeros(3))
    constant = ccc(torch.rand(8, 3), torch.full((8, 3), 0.5))
    assert torch.all(torch.isfinite(constant)) and torch.allclose(constant, torch.zeros(3), atol=1e-6)


def test_hybrid_loss_is_ce_plus_half_one_minus_ccc():
    torch.manual_seed(0)
    logits, dims = torch.randn(6, 7, requires_grad=True), torch.rand(6, 3, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    target = torch.nn.functional.one_hot(labels, 7).float()
    tdims = torch.rand(6, 3)
    w = class_weights(np.bincount([0, 0, 1, 2, 3, 4, 5, 6], minlength=7))
    out = HybridLoss(w)(logits, dims, target, tdims)
    ce = torch.nn.functional.cross_entropy(logits, labels, weight=w, label_smoothing=0.1, reduction="none").sum() / 6
    expected = ce + 0.5 * (1 - ccc(dims, tdims).mean())
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)
    out["loss"].backward()
    assert logits.grad is not None and dims.grad is not None


def test_class_weights_are_inverse_frequency():
    w = class_weights(np.array([3, 1, 0])).numpy()
    assert w[2] == 0 and w[1] == pytest.approx(3 * w[0]) and w[0] * 3 + w[1] * 1 == pytest.approx(4.0)


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
