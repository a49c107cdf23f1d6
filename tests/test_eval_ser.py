import json

import numpy as np
import pytest

from conftest import FakeBackend, make_toy_corpus
from evals.ser.metrics import ccc, classification_metrics, confusion, restrict
from ser_tool.labels import EMOTIONS


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
    from evals.ser.benchmark import benchmark
    from evals.ser.render import plot_confusion, summary

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
    assert "UAR" in summary(report)
    assert plot_confusion(report, tmp_path / "cm.png").stat().st_size > 1000


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
    from evals.ser.benchmark import benchmark
    from ser_tool import ConfigError

    seen = make_toy_corpus(tmp_path / "seen")
    unseen = make_toy_corpus(tmp_path / "unseen", n_speakers=4)
    with pytest.raises(ConfigError, match="--baseline-train"):
        benchmark(FakeBackend(), [unseen], "all")
    report = benchmark(FakeBackend(), [unseen], "all", baseline_train=[seen])
    assert report["n_clips"] == 4 * 3 and report["baseline"]["n_train"] == 5 * 3
    assert report["baseline"]["fitted_on"] == [str(seen.resolve())]
