"""The voice head (architecture, save/load, training on cached features), calibration maths, LOCO."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ser_tool.backends import BackendSpec
from ser_tool.errors import ConfigError
from ser_tool.labels import EMOTIONS
from ser_tool.testing import SR, voice
from ser_tool.train.calibration import ece_noise_floor, expected_calibration_error, fit_temperature
from tests.helpers import SAMPLE


def test_head_shapes_save_load_roundtrip(tmp_path):
    import torch

    from ser_tool.backends.voice_model import VoiceHead, VoiceHeadConfig, load_voice_head, save_voice_head

    torch.manual_seed(0)
    model = VoiceHead(VoiceHeadConfig(20, ("prosody",), channels=32)).eval()
    model.temperature.fill_(2.0)
    for t in (1, 7, 120):  # one frame (a very short clip) up to ~5 s
        logits, dims = model(torch.randn(3, t, 20))
        assert logits.shape == (3, len(EMOTIONS)) and dims.shape == (3, 3)
        assert torch.all((dims > 0) & (dims < 1))
    save_voice_head(model, tmp_path / "m", {"representation_ids": {"prosody": "x"}})
    loaded, config = load_voice_head(tmp_path / "m")
    x = torch.randn(2, 30, 20)
    torch.testing.assert_close(loaded(x)[0], model(x)[0])
    assert float(loaded.temperature) == 2.0 and config["representations"] == ["prosody"]
    (tmp_path / "bad").mkdir()
    with pytest.raises(Exception, match="voice-head folder"):
        load_voice_head(tmp_path / "bad")


def test_the_heads_standard_deviation_is_torchs_population_one():
    """voice_model.std (two-pass, faster than torch's on the CPU) gives torch.std(unbiased=False)'s values along
    either axis, with and without keepdim, and 0 for a constant sequence."""
    import torch

    from ser_tool.backends.voice_model import std

    x = torch.randn(3, 40, 7, generator=torch.Generator().manual_seed(0)) * 5 + 2
    for dim in (1, 2):
        for keepdim in (False, True):
            ref = x.std(dim=dim, keepdim=keepdim, unbiased=False)
            got = std(x, dim, keepdim=keepdim)
            assert got.shape == ref.shape
            assert torch.allclose(got, ref, atol=1e-5)
    assert torch.equal(std(torch.full((1, 5, 2), 3.0), 1), torch.zeros(1, 2))


def test_an_ensemble_averages_its_heads_probabilities_and_round_trips(tmp_path):
    import torch

    from ser_tool.backends.voice_model import VoiceHead, VoiceHeadConfig, VoiceHeadEnsemble, load_voice_head, save_voice_head
    from ser_tool.errors import ModelNotAvailableError
    from ser_tool.train.voice import head_outputs

    cfg = VoiceHeadConfig(20, ("prosody",), channels=32)
    heads = []
    for seed, t in ((0, 1.0), (1, 0.5)):
        torch.manual_seed(seed)
        heads.append(VoiceHead(cfg).eval())
        heads[-1].temperature.fill_(t)
    ensemble = VoiceHeadEnsemble(heads).eval()
    x = torch.randn(3, 40, 20)
    logits, dims = ensemble(x)
    by_hand = (torch.softmax(heads[0](x)[0], -1) + torch.softmax(heads[1](x)[0], -1)) / 2
    torch.testing.assert_close(torch.softmax(logits, -1), by_hand)
    torch.testing.assert_close(dims, (heads[0](x)[1] + heads[1](x)[1]) / 2)
    # before calibration: each head's logits times its own temperature, then the average
    frames = [x[i].numpy() for i in range(3)]
    raw = [torch.softmax(h(x)[0] * float(h.temperature), -1) for h in heads]
    calibrated, uncalibrated, _ = head_outputs(ensemble, frames)
    np.testing.assert_allclose(uncalibrated, ((raw[0] + raw[1]) / 2).detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(calibrated, by_hand.detach().numpy(), atol=1e-5)  # what the ensemble's forward gives
    save_voice_head(ensemble, tmp_path / "ens")
    loaded, config = load_voice_head(tmp_path / "ens")
    assert config["heads"] == 2 and isinstance(loaded, VoiceHeadEnsemble)
    torch.testing.assert_close(loaded(x)[0], logits)
    # a config that promises another number of heads than the weights hold is refused by name
    config["heads"] = 3
    (tmp_path / "ens" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelNotAvailableError, match=r"does not match its config.json .*Missing key\(s\).*heads\.2\."):
        load_voice_head(tmp_path / "ens")  # torch's first mismatch is named
    with pytest.raises(ValueError, match="same configuration"):
        VoiceHeadEnsemble([heads[0], VoiceHead(VoiceHeadConfig(20, ("prosody",), channels=16))])
    # LOCO's saved outputs: the logits as trained, which with each head's shift and temperature give the calibrated output
    from ser_tool.data import Clip

    from evals.classify.loco import clip_outputs

    for k, h in enumerate(heads):
        h.prior_shift.copy_(torch.linspace(-1.0, 0.5, 7) * (k + 1))
    calibrated, _, _ = head_outputs(ensemble, frames)
    clips = [Clip(Path(f"c{i}.wav"), "x", EMOTIONS[i]) for i in range(3)]

    class Frames:  # the feature cache's one method clip_outputs uses
        def frames(self, path, names):
            return frames[int(path.stem[1:])]

    o = clip_outputs(ensemble, Frames(), ["prosody"], {"score": clips, "dev": clips[:2]})
    assert o["logits"].shape == (2, 3, 7) and o["dev_logits"].shape == (2, 2, 7) and list(o["label"]) == [0, 1, 2]
    again = np.mean([np.exp(z) / np.exp(z).sum(1, keepdims=True)
                     for z in ((o["logits"] + o["prior_shift"][:, None]) / o["temperature"][:, None, None])], axis=0)
    np.testing.assert_allclose(again, calibrated, atol=1e-5)
    np.testing.assert_allclose(o["dev_logits"], o["logits"][:, :2], atol=1e-5)


def _prosody_head(folder):
    import torch

    from ser_tool.backends.voice_model import VoiceHead, VoiceHeadConfig, save_voice_head

    torch.manual_seed(0)
    save_voice_head(VoiceHead(VoiceHeadConfig(20, ("prosody",), channels=32)).eval(), folder,
                    {"representation_ids": {"prosody": "prosody-acf-v3"}})
    return folder


def test_the_voice_backend_runs_on_the_device_it_is_given(tmp_path):
    """spec.device reaches the head (and the torch representations): "cpu" and "auto" run here; a CUDA device
    this machine does not have is a clear ConfigError naming the fix; on a CUDA machine the head runs there
    and reads the same as on the CPU."""
    import torch

    from ser_tool.backends import BackendSpec, load_backend
    from ser_tool.errors import ConfigError

    model = str(_prosody_head(tmp_path / "m"))
    waves = [voice(0.5), voice(2.0, f0=200)]
    cpu = load_backend(BackendSpec("voice", model, device="cpu"))
    assert next(cpu.head.parameters()).device.type == "cpu"
    reference = cpu.predict(waves)
    auto = load_backend(BackendSpec("voice", model, device="auto"))
    assert next(auto.head.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    on_auto = auto.predict(waves)
    assert np.allclose(on_auto.probabilities, reference.probabilities, atol=1e-4)
    assert np.allclose(on_auto.dimensions, reference.dimensions, atol=1e-4)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU") as e:
            load_backend(BackendSpec("voice", model, device="cuda"))
        assert e.value.hints[0].setting == "device" and e.value.hints[0].value == "cpu"


def test_a_random_voice_head_loads_through_the_voice_backend(tmp_path):
    """ser_tool.testing's random head (what the speed benchmarks load) is a real `ser train` folder: the
    backbone's frame size and representation ids are in it, and the voice backend loads and runs it."""
    from ser_tool.backends import BackendSpec, load_backend
    from ser_tool.errors import ConfigError
    from ser_tool.testing import make_random_voice_head

    folder = make_random_voice_head(tmp_path / "m", "prosody", channels=32)
    config = json.loads((folder / "config.json").read_text())
    assert config["input_dim"] == 20 and config["representations"] == ["prosody"]
    assert config["representation_ids"] == {"prosody": "prosody-acf-v3"}
    backend = load_backend(BackendSpec("voice", model=str(folder)))
    pred = backend.predict([voice(0.4), voice(2.0, f0=200)])
    assert pred.probabilities.shape == (2, len(EMOTIONS)) and pred.dimensions.shape == (2, 3)
    assert np.allclose(pred.probabilities.sum(axis=1), 1.0)
    # inputs of one length share a pass through the head; each gets what it gets alone, in its own place
    waves = [voice(2.0, f0=120), voice(0.7), voice(2.0, f0=260), voice(2.0, f0=180)]
    together = backend.predict(waves)
    alone = [backend.predict([w]) for w in waves]
    np.testing.assert_allclose(together.probabilities, np.concatenate([a.probabilities for a in alone]), atol=1e-6)
    np.testing.assert_allclose(together.dimensions, np.concatenate([a.dimensions for a in alone]), atol=1e-6)
    assert not np.allclose(together.probabilities[0], together.probabilities[2])  # not one answer broadcast
    with pytest.raises(ConfigError, match="unknown backbone"):
        make_random_voice_head(tmp_path / "x", "prosody+mfcc")


def test_whisper_base_runs_where_ctranslate2_can():
    from ser_tool.errors import ConfigError
    from ser_tool.representations.whisper import ct2_device

    class CT2:
        def __init__(self, gpus):
            self.gpus = gpus

        def get_cuda_device_count(self):
            return self.gpus

    assert ct2_device("cpu", CT2(0)) == ("cpu", 0)
    assert ct2_device("cuda", CT2(1)) == ("cuda", 0) and ct2_device("cuda:1", CT2(2)) == ("cuda", 1)
    with pytest.raises(ConfigError, match="sees 0 CUDA GPU") as e:
        ct2_device("cuda", CT2(0))
    assert e.value.hints[0].value == "cpu"
    with pytest.raises(ConfigError, match="no 'mps' support"):
        ct2_device("mps", CT2(0))


def test_temperature_recovers_the_scale_of_overconfident_logits():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(4000, 7)) * 1.5
    p = np.exp(true) / np.exp(true).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(7, p=row) for row in p])
    t = fit_temperature(true * 3.0, labels)  # calibrated logits, made 3x overconfident
    assert t == pytest.approx(3.0, rel=0.1)
    over = np.exp(true * 3) / np.exp(true * 3).sum(axis=1, keepdims=True)
    assert expected_calibration_error(p, labels) < 0.03 < expected_calibration_error(over, labels)


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # bins: 0.9 (2 clips, acc 0.5) -> 0.4 * 2/4; 0.6 (acc 1) -> 0.4 * 1/4; 0.7 (acc 1) -> 0.3 * 1/4
    assert expected_calibration_error(probs, labels) == pytest.approx(0.2 + 0.1 + 0.075)
    assert expected_calibration_error(np.zeros((0, 2)), np.zeros(0, dtype=int)) == 0.0


def test_ece_noise_floor():
    # One clip at confidence 0.9: right (ECE 0.1) 90 % of the time, wrong (ECE 0.9) 10 %: median 0.1, 95th pct 0.9.
    assert ece_noise_floor(np.array([[0.9, 0.1]])) == pytest.approx((0.1, 0.9))
    assert ece_noise_floor(np.zeros((0, 7))) == (0.0, 0.0)
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2000, 7)) * 2.0
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    small, large = ece_noise_floor(p[:100]), ece_noise_floor(p)
    assert large[1] < small[1] / 3  # sampling noise shrinks as 1/sqrt(n): 20x the clips, ~1/4.5 the floor
    # A model whose confidences are right lands inside its floor about 95 % of the time; an overconfident one above it.
    inside = 0
    for k in range(40):
        part = p[k * 50:(k + 1) * 50]
        labels = np.array([rng.choice(7, p=row) for row in part])
        inside += expected_calibration_error(part, labels) <= ece_noise_floor(part, draws=500)[1]
    assert inside >= 33  # 95 % of 40 is 38; binomial spread
    labels = np.array([rng.choice(7, p=row) for row in p])
    over = np.exp(logits * 3) / np.exp(logits * 3).sum(axis=1, keepdims=True)
    assert expected_calibration_error(over, labels) > 2 * ece_noise_floor(over)[1]


def _corpus(folder, name, speakers, seed):
    """Three 'emotions' told apart by pitch and loudness, 2-s synthetic voices."""
    rng = np.random.default_rng(seed)
    (folder / "audio").mkdir(parents=True)
    rows = []
    for s in speakers:
        for k, (label, f0, amp) in enumerate((("sad", 90, 0.05), ("neutral", 140, 0.15), ("angry", 260, 0.5))):
            for j in range(2):
                path = f"audio/{s}_{k}_{j}.wav"
                sf.write(folder / path, voice(2.0 + 0.04 * j, f0=f0 * rng.uniform(0.95, 1.05), amp=amp), SR)
                rows.append({"path": path, "corpus": name, "speaker": s, "label": label})
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "corpus", "speaker", "label"])
        w.writeheader()
        w.writerows(rows)
    return folder


@pytest.fixture
def corpora(tmp_path):
    return [_corpus(tmp_path / "a", "a", [f"a{i}" for i in range(4)], 0),
            _corpus(tmp_path / "a_song", "a_song", [f"a{i}" for i in range(3)], 1),  # same speakers as a
            _corpus(tmp_path / "b", "b", [f"b{i}" for i in range(4)], 2)]


def test_corpus_groups_keep_shared_speakers_together(corpora):
    from ser_tool.data import read_corpus

    from evals.classify.loco import corpus_groups, folds

    cs = {read_corpus(d).name: read_corpus(d).clips for d in corpora}
    assert corpus_groups(cs) == [["a", "a_song"], ["b"]]
    fs = {f["name"]: f for f in folds(cs)}
    assert set(fs) == {"a+a_song", "b", "within"}
    left = fs["a+a_song"]
    assert {c.corpus for c in left["fit"] + left["dev"]} == {"b"}
    assert len(left["score"]) == len(cs["a"]) + len(cs["a_song"])  # every clip of the left-out group


@pytest.mark.slow
def test_loco_runs_lr_and_head_end_to_end(corpora, tmp_path):
    import torch

    from ser_tool.train.voice import VoiceTrainConfig

    from evals.cli import main
    from evals.classify.loco import run_loco, summary

    torch.set_num_threads(1)
    cfg = VoiceTrainConfig(epochs=2, channels=32, batch_size=8, crop_frames=(20, 40), heads=2)  # the head: 2 seeds averaged
    report = run_loco(corpora, systems=["lr:prosody", "head:prosody"], cache_dir=tmp_path / "cache", head_cfg=cfg, log=lambda s: None,
                      head_input_level_db=-26.0, outputs_dir=tmp_path / "run" / "outputs")  # the head hears the clips at the voice backend's input level
    assert report["head_input_level_db"] == -26.0
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {"prosody-acf-v3", "prosody-acf-v3+level-26", "speech-level-v1"}
    fold = report["folds"]["b"]
    for system in ("lr:prosody", "head:prosody"):
        block = fold["systems"][system]["scores"]["b"]
        assert block["n"] == 24 and set(block["per_class_recall"]) == {"sad", "neutral", "angry"}
        assert all(e in block["per_class_recall"] for e in block["rare_classes"])
    info = report["folds"]["b"]["systems"]["head:prosody"]["info"]
    assert info["temperature"] > 0 and len(info["temperatures"]) == 2 and "history" not in info["heads"][0]
    assert 0 <= info["ece_uncalibrated"]["b"] <= 1
    _outputs_give_the_scores(tmp_path / "run" / "outputs", report)
    (tmp_path / "run" / "report.json").write_text(json.dumps(report))  # as `ser-eval ser --loco --out run` leaves it
    from evals.classify.rules import run as rules

    table = rules(tmp_path / "run", alphas=(0.0, 1.0))  # alpha 1: what the fold scored, from the saved outputs alone
    cells = next(line for line in table.splitlines() if line.startswith("b: b ")).split()  # b: b UAR / ECE / NLL rare (x2)
    scored = fold["systems"]["head:prosody"]["scores"]["b"]
    assert cells[8] == f"{scored['uar']:.3f}" and cells[10] == f"{scored['ece']:.3f}"
    assert 0 <= fold["systems"]["head:prosody"]["scores"]["b"]["arousal_auc"] <= 1  # the head's arousal output, ranked
    assert "arousal_auc" not in fold["systems"]["lr:prosody"]["scores"]["b"]  # LR has no arousal
    assert fold["loudness_arousal_auc"] == {"b": 1.0}  # the anchor: b's angry clips are recorded louder than the others
    text = summary(report)
    assert "head:prosody" in text and "LOCO mean" in text
    floor = fold["systems"]["head:prosody"]["scores"]["b"]["ece_floor"]
    assert 0 < floor <= 1 and f"floor {floor:.3f}" in text
    arousal = text[text.index("Arousal on the left-out corpora"):].splitlines()
    assert arousal[2].startswith("head:prosody") and set(arousal[3].split()[3:]) == {"1.000"}  # loudness, every column
    # the CLI writes report.json from the same cache (no recomputation needed)
    rc = main(["ser", "--loco", *map(str, corpora), "--systems", "lr:prosody", "--loco-cache", str(tmp_path / "cache"),
               "--out", str(tmp_path / "out"), "--folds", "b", "--head-corpus-cap", "7", "--head-seed", "3"])
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rc == 0 and written["kind"] == "ser-loco" and written["head_config"]["corpus_cap"] == 7
    assert written["head_config"]["seed"] == 3


def _outputs_give_the_scores(folder, report):
    """Each head system's saved clip outputs (evals.classify.loco.clip_outputs) reproduce what its fold scored."""
    from scipy.special import softmax

    from ser_tool.train.calibration import expected_calibration_error

    from evals.classify.loco import outputs_file
    from evals.classify.metrics import classification_metrics

    for name, fold in report["folds"].items():
        info = fold["systems"]["head:prosody"]["info"]
        assert info["outputs"] == outputs_file(folder, name, "head:prosody").name == f"{name.replace('+', '_')}__head_prosody.npz"
        o = np.load(outputs_file(folder, name, "head:prosody"))
        assert o["logits"].shape == (2, fold["n_score"], 7) and o["dev_logits"].shape == (2, fold["n_dev"], 7)
        assert list(o["temperature"]) == pytest.approx(info["temperatures"]) and o["prior_shift"].shape == (2, 7)
        probs = np.mean([softmax((lo + s) / t, axis=1) for lo, s, t in zip(o["logits"], o["prior_shift"], o["temperature"])], axis=0)
        for corpus, block in fold["systems"]["head:prosody"]["scores"].items():
            m = o["corpus"] == corpus
            assert classification_metrics(o["label"][m], probs[m].argmax(1), EMOTIONS)["uar"] == pytest.approx(block["uar"])
            assert expected_calibration_error(probs[m], o["label"][m]) == pytest.approx(block["ece"], abs=1e-5)
        as_trained = np.mean([softmax(lo, axis=1) for lo in o["logits"]], axis=0)
        for corpus, ece in info["ece_uncalibrated"].items():
            m = o["corpus"] == corpus
            assert expected_calibration_error(as_trained[m], o["label"][m]) == pytest.approx(ece, abs=1e-5)


@pytest.mark.slow
def test_ser_train_backbone_then_voice_backend(corpora, tmp_path, monkeypatch):
    import torch

    from ser_tool.backends import load_backend
    from ser_tool.cli import main
    from ser_tool.console import error_message
    from ser_tool.errors import ConfigError, ModelNotAvailableError

    torch.set_num_threads(1)
    out = tmp_path / "model"
    rc = main(["train", *map(str, corpora), "--backbone", "prosody", "--epochs", "1", "--batch-size", "8",
               "--feature-cache", str(tmp_path / "cache"), "--out", str(out)])
    assert rc == 0 and (out / "model.safetensors").is_file()
    summary = json.loads((out / "training.json").read_text())
    assert summary["temperature"] > 0 and summary["representation_ids"] == {"prosody": "prosody-acf-v3"}
    # three classes, equally common: no shift; the four absent ones are left alone
    assert summary["prior_shift"] == [0.0] * len(EMOTIONS)
    assert 0 <= summary["test_ece_pooled"] <= 1 and 0 < summary["test_ece_pooled_floor"] <= 1
    assert all(0 < m["ece_floor"] <= 1 for m in summary["test"].values()) and summary["test"]
    config = json.loads((out / "config.json").read_text())
    assert config["input_level_db"] == -26.0 and config["representation_ids"] == {"prosody": "prosody-acf-v3"}
    assert any(p.name.endswith("+level-26") for p in (tmp_path / "cache").iterdir())  # trained at the backend's input level
    backend = load_backend("voice", model=str(out))
    assert backend.input_level_db == -26.0
    pred = backend.predict([voice(0.3), voice(3.0)])
    assert pred.probabilities.shape == (2, 7) and np.allclose(pred.probabilities.sum(axis=1), 1.0)
    assert pred.dimensions.shape == (2, 3)
    # --heads 2: two seeds, one model folder, loaded as an ensemble by the same backend; with a degraded copy of each
    # clip, and each head's weights averaged over its steps (from epoch 1, the only one)
    rc = main(["train", *map(str, corpora), "--backbone", "prosody", "--epochs", "1", "--batch-size", "8", "--heads", "2",
               "--degraded-variants", "1", "--average-from", "1", "--feature-cache", str(tmp_path / "cache"),
               "--out", str(tmp_path / "ens")])
    summary = json.loads((tmp_path / "ens" / "training.json").read_text())
    assert rc == 0 and [h["config"]["seed"] for h in summary["heads"]] == [0, 1] and len(summary["temperatures"]) == 2
    assert summary["config"]["degraded_variants"] == 1 and summary["config"]["average_from"] == 1
    assert all(h["averaged"]["from_epoch"] == 1 and h["averaged"]["steps"] >= 1 for h in summary["heads"])
    assert any("+degraded-v" in p.name for p in (tmp_path / "cache").iterdir())  # the variant's features, cached apart
    pred = load_backend("voice", model=str(tmp_path / "ens")).predict([voice(2.0)])
    assert np.allclose(pred.probabilities.sum(axis=1), 1.0) and pred.dimensions.shape == (1, 3)
    import ser_tool.backends.voice as voice_mod

    monkeypatch.setattr(voice_mod, "shipped_model_dir", lambda: tmp_path / "no-shipped-head")
    with pytest.raises(ModelNotAvailableError, match="needs a model") as missing:
        load_backend("voice")
    assert "--model" in error_message(missing.value)  # the command line words the hint as its flag
    with pytest.raises(ConfigError, match="unknown backbone 'wav2vec9'"):
        from ser_tool.train.voice import train_voice

        train_voice(corpora, tmp_path / "x", "wav2vec9", tmp_path / "cache")


def test_the_feature_cache_flag_is_spelt_as_in_ser_eval(capsys):
    """`ser train --feature-cache` (as `ser-eval ser --feature-cache`); the old `--features-cache` still works for
    one release, hidden from --help, with a note naming the new spelling."""
    from ser_tool.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["train", "a", "--out", "o", "--feature-cache", "/c"]).feature_cache == "/c"
    assert capsys.readouterr().err == ""
    assert parser.parse_args(["train", "a", "--out", "o", "--features-cache", "/old"]).feature_cache == "/old"
    assert "--features-cache is now --feature-cache" in capsys.readouterr().err
    assert parser.parse_args(["train", "a", "--out", "o"]).feature_cache.endswith("features")  # the default
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--help"])
    help_text = capsys.readouterr().out
    assert "--feature-cache" in help_text and "--features-cache" not in help_text


def test_every_default_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    """`ser train`, `ser-eval ser` (baseline and --loco) and the joined model files share one cache root."""
    import evals.cli
    from ser_tool.cli import build_parser
    from ser_tool.parts import cache_root, default_cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_root() == tmp_path / "ser-tool" and default_cache_dir() == tmp_path / "ser-tool" / "models"
    assert build_parser().parse_args(["train", "a"]).feature_cache == str(tmp_path / "ser-tool" / "features")
    assert evals.cli.default_feature_cache() == tmp_path / "ser-tool" / "baseline-features"


def test_merge_reports_joins_systems_of_the_same_fold():
    from evals.classify.loco import merge_reports

    a = {"systems": ["s1"], "folds": {"x": {"left_out": ["x"], "systems": {"s1": 1}}}}
    b = {"systems": ["s2"], "folds": {"x": {"left_out": ["x"], "systems": {"s2": 2}}, "y": {"left_out": ["y"], "systems": {"s2": 3}}}}
    m = merge_reports([a, b])
    assert m["systems"] == ["s1", "s2"] and m["folds"]["x"]["systems"] == {"s1": 1, "s2": 2} and set(m["folds"]) == {"x", "y"}


def test_voice_backend_is_a_model_flag_choice(capsys, monkeypatch, tmp_path):
    """`--backend voice` is accepted by every entry point's model flags; with no model named and no shipped head
    it exits with the model-loading code and names the flag to set."""
    import ser_tool.backends.voice as voice_mod
    from ser_tool.backends import BACKENDS
    from ser_tool.cli import EXIT_MODEL, main
    from ser_tool.settings import BACKENDS as SETTINGS_BACKENDS

    assert "voice" in BACKENDS and "voice" in SETTINGS_BACKENDS
    monkeypatch.setattr(voice_mod, "shipped_model_dir", lambda: tmp_path / "absent")
    assert main(["analyze", str(SAMPLE), "--backend", "voice"]) == EXIT_MODEL
    err = capsys.readouterr().err
    assert "needs a model" in err and "--model" in err


def test_the_shipped_voice_head_is_the_default_model(capsys):
    """The head in ser_tool/models/voice installs with the package, with its encoder's weights (Whisper-tiny.en, a
    core dependency), and is what every entry point loads when no backend or model is named: trained on the
    installed representation (no stale-version refusal), and it reads the bundled sample."""
    from ser_tool import Analyzer
    from ser_tool.backends import DEFAULT_BACKEND, BackendSpec, load_backend
    from ser_tool.backends.voice import shipped_model_dir
    from ser_tool.backends.voice_model import load_voice_head
    from ser_tool.settings import Settings

    folder = shipped_model_dir()
    head, config = load_voice_head(folder)
    assert config["representations"] == ["whisper-tiny-en-mid"] and config["heads"] == 3
    temperatures = [float(h.temperature) for h in getattr(head, "heads", [head])]  # one head, or an ensemble's heads
    assert all(0.2 < t < 5 for t in temperatures) and len(temperatures) == config.get("heads", 1)
    assert (folder / "MODEL_CARD.md").is_file() and (folder / "training.json").is_file()
    assert DEFAULT_BACKEND == "voice" == Settings().backend == BackendSpec().name
    backend = load_backend(BackendSpec("voice"))
    assert backend.model_id == "ser-tool/voice"
    report = Analyzer().analyze(SAMPLE)
    assert report.backend == "voice" and report.model_id == "ser-tool/voice" and report.overall.dimensions is not None
    from ser_tool.audio import load_audio

    p = backend.predict([load_audio(SAMPLE)[: 3 * SR]]).probabilities
    assert p.shape == (1, len(EMOTIONS)) and abs(p.sum() - 1) < 1e-5
    from ser_tool.representations.ct2_whisper import resolve_precision

    assert [r.precision for r in backend.representations] == [resolve_precision("auto")]  # the spec's default
    exact = load_backend(BackendSpec("voice", precision="float32"))
    assert [r.precision for r in exact.representations] == ["float32"]
    q = exact.predict([load_audio(SAMPLE)[: 3 * SR]]).probabilities
    assert np.abs(p - q).max() < 0.05  # the two precisions agree (bfloat16 where this CPU has it natively)


def test_the_voice_backend_gives_its_torch_whisper_encoders_the_precision():
    from ser_tool.backends.voice import _on

    assert _on("cpu", "whisper-base-mid", "bfloat16") == {"device": "cpu", "precision": "bfloat16"}
    assert _on("cpu", "hf-whisper:openai/whisper-medium", "float32") == {"device": "cpu", "precision": "float32"}
    assert _on("cpu", "whisper-base", "bfloat16") == {"device": "cpu"}  # CTranslate2's: its own compute type
    assert _on("cpu", "resemblyzer", "bfloat16") == {"device": "cpu"} and _on("cpu", "prosody") == {}
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        BackendSpec("voice", precision="half")


def test_loco_level_db_puts_the_anchors_at_the_heads_level(corpora, tmp_path):
    """--level-db: the LR anchors hear every clip at that speech level too (their own cache entries), and the
    scores differ from the recorded levels only through the audio each anchor hears."""
    from evals.cli import main

    rc = main(["ser", "--loco", *map(str, corpora), "--systems", "lr:prosody", "--loco-cache", str(tmp_path / "cache"),
               "--out", str(tmp_path / "out"), "--folds", "b", "--level-db", "-26"])
    assert rc == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["input_level_db"] == -26.0 and report["head_input_level_db"] == -26.0
    # no system hears the recorded levels; only the loudness anchor measures them
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {"prosody-acf-v3+level-26", "speech-level-v1"}
    assert report["folds"]["b"]["systems"]["lr:prosody"]["scores"]["b"]["n"] == 24



@pytest.mark.slow
def test_ser_train_on_a_hugging_face_whisper_encoder(corpora, tmp_path):
    """`ser train --backbone hf-whisper:FOLDER`: a user's own Whisper checkpoint (any size; here a tiny one saved
    by the test) under the head, its features cached under its own id, the folder loaded by the voice backend
    and run through the analyzer."""
    import torch

    from ser_tool import Analyzer
    from ser_tool.cli import main
    from ser_tool.testing import make_tiny_whisper_asr

    torch.set_num_threads(1)
    whisper = make_tiny_whisper_asr(tmp_path / "whisper", encoder_layers=2)
    backbone = f"hf-whisper:{whisper}+prosody"
    rc = main(["train", *map(str, corpora), "--backbone", backbone, "--epochs", "1", "--batch-size", "8",
               "--feature-cache", str(tmp_path / "cache"), "--out", str(tmp_path / "model")])
    assert rc == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["representations"] == [f"hf-whisper:{whisper}", "prosody"] and config["input_dim"] == 16 + 20
    assert any(p.name.startswith("hf-whisper-") for p in (tmp_path / "cache").iterdir())
    wav = tmp_path / "clip.wav"
    sf.write(wav, voice(3.0), SR)
    report = Analyzer("voice", model=str(tmp_path / "model")).analyze(wav)
    assert report.overall.emotion in EMOTIONS and abs(sum(report.overall.probabilities.as_tuple()) - 1) < 1e-3


def test_loco_systems_take_a_hugging_face_whisper():
    from evals.classify.loco import _parse

    assert _parse("head:hf-whisper:/models/whisper-small+prosody") == ("head", ["hf-whisper:/models/whisper-small", "prosody"])
    assert _parse("lr:hf-whisper:openai/whisper-medium") == ("lr", ["hf-whisper:openai/whisper-medium"])


def test_ser_train_says_when_a_whisper_backbone_cannot_load(corpora, tmp_path, capsys):
    """A backbone that cannot load is one error line and a non-zero exit, no traceback, no flag that does not exist."""
    from ser_tool.cli import main

    rc = main(["train", *map(str, corpora), "--backbone", f"hf-whisper:{tmp_path / 'nowhere'}", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc not in (0, 2) and err.startswith("ser: error: Whisper checkpoint folder") and "Traceback" not in err
    rc = main(["train", *map(str, corpora), "--backbone", "hf-whisper:", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown backbone" in err and "SER_BACKBONE" not in err


def _level_corpus(folder, name="lv"):
    """BAVED's shape: no categories, a level per clip (low / normal / high), louder and higher as the level rises."""
    (folder / "audio").mkdir(parents=True)
    rows = []
    for s in ("l0", "l1", "l2"):
        for level, f0, amp in (("low", 100, 0.05), ("normal", 150, 0.15), ("high", 250, 0.5)):
            path = f"audio/{s}_{level}.wav"
            sf.write(folder / path, voice(1.5, f0=f0, amp=amp), SR)
            rows.append({"path": path, "corpus": name, "speaker": s, "label": "neutral" if level == "normal" else "other",
                         "intensity": level})
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "corpus", "speaker", "label", "intensity"])
        w.writeheader()
        w.writerows(rows)
    return folder


@pytest.mark.slow
def test_a_corpus_of_levels_trains_the_heads_arousal_only(corpora, tmp_path, capsys):
    """`--arousal-corpus`: clips with a level and no category join the training set as arousal-only examples, in
    `ser train` and in every LOCO fold of `ser-eval ser --loco`; they are never dev, test or scored."""
    import torch

    from ser_tool.cli import main
    from ser_tool.data import LEVEL_AROUSAL, read_levels
    from ser_tool.train.voice import ClipFeatures, arousal_set
    from ser_tool.representations import FeatureCache, load_representation

    from evals.classify.loco import run_loco
    from ser_tool.train.voice import VoiceTrainConfig

    torch.set_num_threads(1)
    levels = _level_corpus(tmp_path / "levels")
    clips, _ = read_levels(levels)
    fs = arousal_set(ClipFeatures(FeatureCache(tmp_path / "cache"), [load_representation("prosody")]), clips, ["prosody"])
    assert list(fs.labels) == [-1] * 9 and np.isnan(fs.dims[:, [0, 2]]).all()
    assert sorted(set(fs.dims[:, 1].tolist())) == pytest.approx(sorted(LEVEL_AROUSAL))
    out = tmp_path / "model"
    rc = main(["train", *map(str, corpora), "--backbone", "prosody", "--epochs", "1", "--batch-size", "8",
               "--arousal-corpus", str(levels), "--feature-cache", str(tmp_path / "cache"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "arousal-only clips: 9 from lv" in printed
    summary = json.loads((out / "training.json").read_text())
    assert summary["arousal_data"] == [str(levels)] and "lv" not in summary["test"]
    plain = tmp_path / "plain"  # the same seed without the level corpus: other weights, so its clips took part
    assert main(["train", *map(str, corpora), "--backbone", "prosody", "--epochs", "1", "--batch-size", "8",
                 "--feature-cache", str(tmp_path / "cache"), "--out", str(plain)]) == 0
    assert (plain / "model.safetensors").read_bytes() != (out / "model.safetensors").read_bytes()
    # LOCO: every fold's heads also learn arousal from the level corpus; it is never a fold or scored
    cfg = VoiceTrainConfig(epochs=1, channels=32, batch_size=8, crop_frames=(20, 40))
    report = run_loco(corpora, systems=["head:prosody"], cache_dir=tmp_path / "cache", head_cfg=cfg, log=lambda s: None,
                      within=False, arousal_dirs=[levels])
    assert report["n_arousal_clips"] == 9 and set(report["folds"]) == {"a+a_song", "b"}
    assert all("lv" not in f["systems"]["head:prosody"]["scores"] for f in report["folds"].values())
    without = run_loco(corpora, systems=["head:prosody"], cache_dir=tmp_path / "cache", head_cfg=cfg, log=lambda s: None,
                       within=False)
    assert without["folds"]["b"]["systems"]["head:prosody"]["scores"]["b"]["ece"] != \
        report["folds"]["b"]["systems"]["head:prosody"]["scores"]["b"]["ece"]  # the heads trained on the level clips too
    from ser_tool.errors import ConfigError

    with pytest.raises(ConfigError, match="both an evaluated corpus and an arousal-only corpus"):
        run_loco([*corpora, levels], systems=["head:prosody"], cache_dir=tmp_path / "cache", arousal_dirs=[levels])
    # a folder without levels, or the flag without a backbone: one line, exit 2, before any training
    assert main(["train", *map(str, corpora), "--backbone", "prosody", "--arousal-corpus", str(corpora[0]),
                 "--feature-cache", str(tmp_path / "cache"), "--out", str(tmp_path / "x")]) == 2
    assert "lacks the column(s) intensity" in capsys.readouterr().err
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "manifest.csv").write_text("path,label,intensity\na.wav,happy,\n")
    from ser_tool.train.voice import arousal_clips

    with pytest.raises(ConfigError, match="no clip has an expressed-emotion level"):
        arousal_clips([blank])
    (blank / "manifest.csv").write_text("path,label,intensity\na.wav,angry,normal\nb.wav,neutral,normal\n")
    with pytest.raises(ConfigError, match=r"has emotion categories \(angry\)"):  # RAVDESS's shape: levels of categories
        arousal_clips([blank])
    assert main(["train", *map(str, corpora), "--arousal-corpus", str(levels), "--out", str(tmp_path / "y")]) == 2
    assert "add --backbone" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_ser_train_backbone_ctrl_c_keeps_the_finished_heads(corpora, tmp_path, capsys, monkeypatch):
    import torch

    import ser_tool.train.loss as loss
    from ser_tool.backends import load_backend
    from ser_tool.cli import main

    torch.set_num_threads(1)
    real_step, steps, stop_at = loss.hybrid_step, [], [None]

    def step(*args, **kwargs):
        steps.append(1)
        if len(steps) == stop_at[0]:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loss, "hybrid_step", step)  # the head's loop takes it from here when it starts
    cmd = [*map(str, corpora), "--backbone", "prosody", "--epochs", "3", "--batch-size", "8",
           "--feature-cache", str(tmp_path / "cache")]
    assert main(["train", *cmd, "--out", str(tmp_path / "probe")]) == 0
    per_epoch = len(steps) // 3
    capsys.readouterr()

    steps[:], stop_at[0] = [], 3 * per_epoch + per_epoch + 1  # head 1 done, head 2 cut in its second epoch
    assert main(["train", *cmd, "--heads", "3", "--out", str(tmp_path / "two")]) == 130
    assert "interrupted in head 2 of 3, epoch 2: the model in" in capsys.readouterr().err
    summary = json.loads((tmp_path / "two" / "training.json").read_text())
    assert summary["interrupted"] == {"head": 2, "epoch": 2} and len(summary["heads"]) == 2
    assert [h["epoch"] for h in summary["heads"][1]["history"]] == [1]
    assert len(load_backend("voice", model=str(tmp_path / "two")).predict([voice(2.0)]).probabilities) == 1

    steps[:], stop_at[0] = [], 3 * per_epoch + 1  # head 2 cut before its first epoch ended: head 1 alone is kept
    assert main(["train", *cmd, "--heads", "3", "--out", str(tmp_path / "one")]) == 130
    assert "interrupted in head 2 of 3: the model in" in capsys.readouterr().err
    assert json.loads((tmp_path / "one" / "config.json").read_text())["heads"] == 1


def _random_frames(n: int = 24, dim: int = 8, seed: int = 0):
    from ser_tool.train.voice import FrameSet

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(EMOTIONS)
    frames = [(rng.standard_normal((30, dim)) + labels[i]).astype(np.float32) for i in range(n)]
    return FrameSet(frames, labels, rng.random((n, 3)).astype(np.float32), np.array(["c"] * n))


def test_weight_average_is_the_mean_of_the_weights_it_was_given():
    import torch

    from ser_tool.train.voice import WeightAverage

    model = torch.nn.Linear(3, 2)
    model.register_buffer("steps", torch.zeros((), dtype=torch.long))  # not floating point: left as it is
    average, seen = WeightAverage(model), []
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            model.weight.fill_(value)
            model.bias.fill_(-value)
        model.steps += 1
        average.add()
        seen.append(value)
    state = average.state()
    assert average.count == 3
    assert torch.allclose(state["weight"], torch.full((2, 3), 3.0)) and torch.allclose(state["bias"], torch.full((2,), -3.0))
    assert int(state["steps"]) == 3 and state["weight"].dtype == torch.float32


def test_a_head_can_keep_its_averaged_weights_instead_of_its_best_epoch():
    """average_from=N: the head ends with the mean of its weights after every step from epoch N on (reported with
    its dev UAR); 0 keeps the best epoch; anything outside 0..epochs is refused."""
    import torch

    from ser_tool.train.voice import VoiceTrainConfig, train_voice_head

    torch.set_num_threads(1)
    train, dev = _random_frames(), _random_frames(14, seed=1)
    base = VoiceTrainConfig(epochs=3, channels=16, batch_size=8, crop_frames=(10, 20), corpus_cap=24)
    best_model, best = train_voice_head(train, dev, ["r"], base, log=lambda s: None)
    avg_model, avg = train_voice_head(train, dev, ["r"], VoiceTrainConfig(**{**base.__dict__, "average_from": 2}),
                                      log=lambda s: None)
    assert best["averaged"] is None
    assert avg["averaged"]["steps"] == 2 * (24 // 8) and avg["averaged"]["from_epoch"] == 2
    assert 0 <= avg["averaged"]["dev_mean_uar"] <= 1
    # the same seed and steps: only the weights kept differ
    assert not torch.equal(best_model.logits.weight, avg_model.logits.weight)
    with pytest.raises(ConfigError, match="averaged from an epoch in 1..3"):
        VoiceTrainConfig(**{**base.__dict__, "average_from": 4})


def test_the_prior_shift_turns_balanced_scores_into_the_posterior_of_the_training_mix():
    """Weighted cross-entropy (scikit-learn's "balanced" weights) teaches scores proportional to the class likelihoods,
    as if every class were equally common. Adding prior_shift(weights) gives Bayes' posterior under the class counts
    the weights came from; a class absent from training (weight 0) is left alone."""
    from scipy.special import softmax
    from scipy.stats import norm

    from ser_tool.train.loss import class_weights
    from ser_tool.train.calibration import prior_shift

    counts = np.array([600.0, 150.0, 50.0, 0.0])
    w = class_weights(counts).numpy()
    x = np.linspace(-3, 5, 41)[:, None]
    loglik = norm.logpdf(x, loc=np.array([0.0, 1.0, 2.0, 3.0]))  # (41, 4) one Gaussian per class
    balanced = loglik[:, :3]  # what a perfectly trained weighted model scores for the three present classes
    shift = prior_shift(w)
    assert shift[3] == 0.0 and np.all(np.isfinite(shift))
    posterior = softmax(loglik[:, :3] + np.log(counts[:3] / counts[:3].sum()), axis=1)
    np.testing.assert_allclose(softmax(balanced + shift[:3], axis=1), posterior, atol=1e-6)
    # without the shift the common class is under-stated wherever the classes overlap
    assert np.all(softmax(balanced, axis=1)[:, 0] <= posterior[:, 0] + 1e-9)


def test_a_trained_head_carries_its_prior_shift_and_old_folders_load_without_one(tmp_path):
    """train_voice_head sets the shift from the class weights of its training counts (before fitting the temperature
    on the shifted logits); head_outputs' uncalibrated probabilities are the logits as trained; a folder saved
    before the shift existed loads with none (its logits as trained)."""
    import torch
    from safetensors.torch import load_file, save_file
    from scipy.special import softmax

    from ser_tool.backends.voice_model import load_voice_head, save_voice_head
    from ser_tool.train.loss import class_weights
    from ser_tool.train.calibration import prior_shift
    from ser_tool.train.voice import FrameSet, VoiceTrainConfig, head_outputs, predict_frames, train_voice_head

    torch.set_num_threads(1)
    base = _random_frames(28)
    common = np.flatnonzero(base.labels == 0)  # class 0 four times as common as each other class
    extra = np.concatenate([common] * 3)
    train = FrameSet(base.frames + [base.frames[i] for i in extra], np.concatenate([base.labels, base.labels[extra]]),
                     np.concatenate([base.dims, base.dims[extra]]), np.array(["c"] * (len(base) + len(extra))))
    model, summary = train_voice_head(train, _random_frames(14, seed=1), ["r"],
                                      VoiceTrainConfig(epochs=2, channels=16, batch_size=8, crop_frames=(10, 20), corpus_cap=100),
                                      log=lambda s: None)
    expected = prior_shift(class_weights(np.bincount(train.labels, minlength=len(EMOTIONS))).numpy())
    np.testing.assert_allclose(model.prior_shift.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(summary["prior_shift"], expected, atol=1e-4)
    assert expected[0] > expected[1] == pytest.approx(expected[6])  # the common class is raised
    frames = _random_frames(5, seed=2).frames
    calibrated, uncalibrated, _ = head_outputs(model, frames)
    with torch.no_grad():
        model.prior_shift.zero_()
        model.temperature.fill_(1.0)
        as_trained = softmax(predict_frames(model, frames)[0], axis=1)
    np.testing.assert_allclose(uncalibrated, as_trained, atol=1e-5)
    assert not np.allclose(calibrated, uncalibrated, atol=1e-3)
    # a folder from before the shift: its weights without the buffer load, and the head scores as trained
    save_voice_head(model, tmp_path / "old")
    state = load_file(str(tmp_path / "old" / "model.safetensors"))
    save_file({k: v for k, v in state.items() if k != "prior_shift"}, str(tmp_path / "old" / "model.safetensors"))
    loaded, _ = load_voice_head(tmp_path / "old")
    assert torch.equal(loaded.prior_shift, torch.zeros(len(EMOTIONS)))
    np.testing.assert_allclose(softmax(predict_frames(loaded, frames)[0], axis=1), as_trained, atol=1e-5)
