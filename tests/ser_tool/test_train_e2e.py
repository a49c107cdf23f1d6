"""A tiny end-to-end run of `ser train` on synthetic data, and the model folder it writes."""

import json

import numpy as np
import pytest

from ser_tool import Analyzer, ModelNotAvailableError
from ser_tool.backends import load_backend
from ser_tool.cli import main
from ser_tool.testing import SR, make_toy_corpus, voice


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    corpus = make_toy_corpus(root / "toy", n_speakers=10)
    out = root / "model"
    code = main(["train", str(corpus), "--out", str(out), "--epochs", "2", "--batch-size", "8", "--threads", "1"])
    assert code == 0
    return out


def test_training_writes_weights_config_card_and_log(trained):
    assert {p.name for p in trained.iterdir()} >= {"model.safetensors", "config.json", "training.json", "MODEL_CARD.md"}
    summary = json.loads((trained / "training.json").read_text())
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["dev_loss"]) for h in summary["history"])
    assert summary["labels_dropped"] == {"toy": {"other": 10}}
    assert summary["clips"]["train"]["toy"]["neutral"] > 0  # calm -> neutral
    test_speakers = summary["speakers"]["test"]
    assert test_speakers == 2 or test_speakers == 3  # 25 % of 10 speakers, rounded
    card = (trained / "MODEL_CARD.md").read_text()
    assert "category-derived targets" in card and "ser train" in card and "non-commercial" in card


def test_trained_model_loads_through_the_embedded_backend(trained):
    backend = load_backend("embedded", model=str(trained))
    pred = backend.predict([voice(1.0), voice(2.5, f0=200), np.zeros(100, np.float32)])
    assert pred.probabilities.shape == (3, 7) and np.allclose(pred.probabilities.sum(axis=1), 1)
    assert pred.dimensions.shape == (3, 3) and np.all((pred.dimensions >= 0) & (pred.dimensions <= 1))
    report = Analyzer(backend).analyze(voice(3), sample_rate=SR)
    assert report.backend == "embedded" and report.overall.dimensions is not None


def test_embedded_backend_rejects_a_folder_without_a_model(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="ser train"):
        load_backend("embedded", model=str(tmp_path))


def test_train_refuses_bad_settings(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:  # argparse refuses it, before any data is read
        main(["train", str(tmp_path), "--epochs", "0"])
    assert exit_.value.code == 2 and "--epochs: expected a whole number of at least 1, got '0'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nothing")]) == 2
    assert "manifest.csv" in capsys.readouterr().err
