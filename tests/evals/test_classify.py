import json

import numpy as np
import pytest

from evals.classify.metrics import ccc, classification_metrics, confusion, restrict
from ser_tool.labels import EMOTIONS
from ser_tool.testing import FakeBackend, make_toy_corpus


def test_metrics_against_hand_computation():
    labels = ("a", "b", "c")
    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 2, 2, 2]
    m = classification_metrics(y_true, y_pred, labels)
    # recalls: a 3/4, b 1/2, c 2/2 -> UAR = (0.75 + 0.5 + 1) / 3
    assert m["uar"] == pytest.approx(0.75)
    assert m["wa"] == pytest.approx(6 / 8)
    # precision: a 3/3, b 1/2, c 2/3; F1: a 6/7, b 1/2, c 4/5
    assert m["macro_f1"] == pytest.approx((6 / 7 + 0.5 + 0.8) / 3)
    assert m["per_class_recall"] == pytest.approx({"a": 0.75, "b": 0.5, "c": 1.0})
    assert m["confusion"] == [[3, 1, 0], [0, 1, 1], [0, 0, 2]]


def test_uar_ignores_absent_classes():
    m = classification_metrics([0, 0, 1], [0, 2, 1], ("a", "b", "c"))
    assert m["uar"] == pytest.approx((0.5 + 1.0) / 2) and "c" not in m["per_class_recall"]


def test_ccc_hand_values():
    y = np.array([1.0, 2.0, 3.0])
    assert ccc(y, y) == pytest.approx(1.0)
    # p = y + 1: cov 2/3, var 2/3 each, mean diff 1 -> 2*(2/3) / (4/3 + 1) = 4/7
    assert ccc(y, y + 1) == pytest.approx(4 / 7)
    assert ccc(np.ones(3), np.ones(3)) == 0.0


def test_four_class_view():
    probs = np.zeros((3, 7))
    probs[0, [EMOTIONS.index("fearful"), EMOTIONS.index("sad")]] = [0.6, 0.4]  # sad clip, fear wins overall
    probs[1, EMOTIONS.index("happy")] = 1
    probs[2, EMOTIONS.index("fearful")] = 1  # a fearful clip: not in the 4-class view
    y = np.array([EMOTIONS.index("sad"), EMOTIONS.index("angry"), EMOTIONS.index("fearful")])
    t4, p4 = restrict(probs, y, EMOTIONS, ("neutral", "happy", "sad", "angry"))
    assert t4.tolist() == [2, 3] and p4.tolist() == [2, 1]
    assert confusion(t4, p4, 4)[3, 1] == 1


def test_benchmark_end_to_end_on_a_toy_corpus(tmp_path):
    from evals.classify.benchmark import benchmark
    from evals.classify.render import plot_confusion, summary

    folder = make_toy_corpus(tmp_path / "toy")
    report = benchmark(FakeBackend(), [folder], "test")
    assert report["n_clips"] == 2 * 3  # 2 test speakers (25% of 8) x 3 mapped clips; 'other' dropped
    assert report["labels_dropped"] == {"toy": {"other": 8}}
    m = report["metrics"]["overall"]["7class"]
    assert m["support"]["neutral"] == 2 and m["support"]["angry"] == 2
    assert m["per_class_recall"]["angry"] == 1.0  # the fake calls loud clips angry
    assert "ccc" in report["metrics"]["overall"] and "anchors" in report["metrics"]["overall"]["ccc"]["targets"]
    assert report["baseline"]["n_train"] == 5 * 3
    json.dumps(report)
    # ECE by hand: the fake's probabilities for the scored clips, 15 equal-width bins
    from ser_tool.train.calibration import expected_calibration_error

    assert 0 <= report["metrics"]["overall"]["ece"] <= 1
    assert set(report["metrics"]["per_corpus"]["toy"]) >= {"7class", "4class", "ece", "ccc"}
    assert report["metrics"]["overall"]["ece"] == report["metrics"]["per_corpus"]["toy"]["ece"]  # one corpus
    assert expected_calibration_error(np.array([[0.9, 0.1]] * 10), np.array([0] * 9 + [1])) == pytest.approx(0.0)
    assert report["metrics"]["overall"]["ece_floor"][0] <= report["metrics"]["overall"]["ece_floor"][1]
    assert "UAR" in summary(report) and "ECE" in summary(report) and "floor" in summary(report)
    assert plot_confusion(report, tmp_path / "cm.png").stat().st_size > 1000


def test_ser_eval_ser_on_clips_that_all_fail_to_decode_says_so(tmp_path, monkeypatch, capsys):
    import evals.cli
    import ser_tool.backends

    monkeypatch.setattr(ser_tool.backends, "load_backend", lambda *a, **k: FakeBackend())
    folder = make_toy_corpus(tmp_path / "toy")
    for wav in (folder / "audio").iterdir():
        wav.write_bytes(b"not audio")
    code = evals.cli.main(["ser", str(folder), "--split", "all", "--no-baseline", "--out", str(tmp_path / "out")])
    assert code == 1 and "none of the 24 clips could be decoded" in capsys.readouterr().err


def test_ser_eval_cli_writes_its_outputs(tmp_path, monkeypatch, capsys):
    import evals.cli
    import ser_tool.backends

    monkeypatch.setattr(ser_tool.backends, "load_backend", lambda *a, **k: FakeBackend())
    folder = make_toy_corpus(tmp_path / "toy")
    code = evals.cli.main(["ser", str(folder), "--out", str(tmp_path / "out"), "--no-baseline"])
    assert code == 0
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"report.json", "confusion.png", "summary.txt"}
    assert "corpus toy" in capsys.readouterr().out


def test_cross_corpus_baseline_is_fitted_on_other_corpora(tmp_path):
    from evals.classify.benchmark import benchmark
    from ser_tool import ConfigError

    seen = make_toy_corpus(tmp_path / "seen")
    unseen = make_toy_corpus(tmp_path / "unseen", n_speakers=4)
    with pytest.raises(ConfigError, match="--baseline-train"):
        benchmark(FakeBackend(), [unseen], "all")
    report = benchmark(FakeBackend(), [unseen], "all", baseline_train=[seen])
    assert report["n_clips"] == 4 * 3 and report["baseline"]["n_train"] == 5 * 3
    assert report["baseline"]["fitted_on"] == [str(seen.resolve())]


# -- the baseline: the same features, computed once, in parallel; progress off a terminal -----------------------

def _librosa_reference(wave):
    """The features as first written: each librosa feature function with its defaults (two STFTs)."""
    import librosa

    if len(wave) < 2048:
        wave = np.pad(wave, (0, 2048 - len(wave)))
    mfcc = librosa.feature.mfcc(y=wave, sr=16000, n_mfcc=20)
    delta = librosa.feature.delta(mfcc, width=min(9, mfcc.shape[1] // 2 * 2 - 1)) if mfcc.shape[1] >= 3 else np.zeros_like(mfcc)
    frames = np.vstack([mfcc, delta, np.log(librosa.feature.rms(y=wave) + 1e-6),
                        librosa.feature.spectral_centroid(y=wave, sr=16000) / 4000.0, librosa.feature.zero_crossing_rate(wave)])
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)]).astype(np.float32)


@pytest.mark.parametrize("seconds", [0.05, 0.5, 3.0])
def test_baseline_features_are_librosas(seconds):
    from ser_tool.testing import voice
    from evals.classify.baseline import acoustic_features

    wave = voice(seconds)
    np.testing.assert_allclose(acoustic_features(wave), _librosa_reference(wave), rtol=1e-5, atol=1e-5)


def test_baseline_features_are_cached_per_file(tmp_path, monkeypatch):
    import os

    import evals.classify.baseline as baseline
    from ser_tool.data import read_corpus

    clips = read_corpus(make_toy_corpus(tmp_path / "toy")).clips
    computed = []
    real = baseline.acoustic_features
    monkeypatch.setattr(baseline, "acoustic_features", lambda w: computed.append(1) or real(w))
    cache_dir = tmp_path / "cache"
    first = baseline.features_for(clips, cache=baseline.FeatureCache(cache_dir))
    distinct = len({c.path.read_bytes() for c in clips})  # the toy corpus repeats some recordings: one row each
    assert len(computed) == len(clips) and len(baseline.FeatureCache(cache_dir)) == distinct
    done = []
    again = baseline.features_for(clips, done.append, cache=baseline.FeatureCache(cache_dir))
    assert len(computed) == len(clips) and sum(done) == len(clips)  # nothing computed again, progress still complete
    np.testing.assert_array_equal(first, again)
    os.utime(clips[0].path, ns=(1, 1))  # touched, same bytes: still cached
    baseline.features_for(clips, cache=baseline.FeatureCache(cache_dir))
    assert len(computed) == len(clips)
    import soundfile as sf

    wave, sr = sf.read(clips[0].path)
    sf.write(clips[0].path, wave[::-1].copy(), sr)  # the file changed: its features are computed again, only its
    baseline.features_for(clips, cache=baseline.FeatureCache(cache_dir))
    assert len(computed) == len(clips) + 1
    baseline.FeatureCache(cache_dir).path.write_bytes(b"damaged")  # a damaged cache is an empty one, rewritten
    fresh = baseline.FeatureCache(cache_dir)
    assert len(fresh) == 0
    baseline.features_for(clips, cache=fresh)
    assert len(baseline.FeatureCache(cache_dir)) == distinct and len(computed) == 2 * len(clips) + 1


@pytest.mark.slow
def test_baseline_features_in_worker_processes_are_the_same(tmp_path, monkeypatch):
    import evals.classify.baseline as baseline
    from ser_tool.data import read_corpus

    clips = read_corpus(make_toy_corpus(tmp_path / "toy", n_speakers=4)).clips
    one = baseline.features_for(clips)
    monkeypatch.setattr(baseline, "_POOL_MIN", 0)
    monkeypatch.setattr(baseline, "_CHUNK", 3)
    np.testing.assert_array_equal(baseline.features_for(clips, jobs=2), one)


def test_ser_eval_reports_progress_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, capsys):
    import evals.cli
    import ser_tool.backends

    monkeypatch.setattr(ser_tool.backends, "load_backend", lambda *a, **k: FakeBackend())
    folder = make_toy_corpus(tmp_path / "toy")
    code = evals.cli.main(["ser", str(folder), "--out", str(tmp_path / "out"), "--feature-cache", str(tmp_path / "cache"),
                           "--jobs", "1"])
    assert code == 0
    err = capsys.readouterr().err  # captured: not a terminal, where tqdm stays silent
    assert "ser-eval: model: 0/6 clips (0%) started" in err and "ser-eval: model: 6/6 clips (100%)" in err
    assert "ser-eval: baseline features: 24/24 clips (100%) after" in err and "done" in err  # train 15 + dev 3 + test 6
    assert any(p.name.startswith("baseline-features-") for p in (tmp_path / "cache").iterdir())


def test_line_progress_every_ten_percent_or_thirty_seconds(monkeypatch):
    import io

    import ser_tool.console as console

    now = [0.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    bar = console.progress_bar(200, "features", unit="clips", file=out)
    for _ in range(200):
        now[0] += 0.1
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "features: 0/200 clips (0%) started" and lines[-1] == "features: 200/200 clips (100%) after 20s, done"
    assert len(lines) == 11  # start, 10%, ..., 90%, done
    assert "about 18s left" in lines[1]
    slow = io.StringIO()
    bar = console.progress_bar(10_000, "slow", file=slow)
    now[0] += 31
    bar.update(1)  # far below 10%, but 30 s have passed
    assert slow.getvalue().splitlines()[-1].startswith("slow: 1/10000 it (0%) after 31s")
