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


def test_ctrl_c_keeps_the_best_epoch_so_far(tmp_path, capsys, monkeypatch):
    import ser_tool.train.loss as loss  # the training loop takes hybrid_step from here when it starts

    corpus = make_toy_corpus(tmp_path / "toy", n_speakers=10)
    real_step, steps = loss.hybrid_step, []

    def step(*args, **kwargs):  # Ctrl-C in the third epoch's first batch
        steps.append(1)
        if len(steps) == 2 * per_epoch + 1:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loss, "hybrid_step", step)
    per_epoch = 10**9  # measured by a first run
    out = tmp_path / "model"
    assert main(["train", str(corpus), "--out", str(tmp_path / "probe"), "--epochs", "1", "--batch-size", "8",
                 "--threads", "1"]) == 0
    per_epoch, steps[:] = len(steps), []
    capsys.readouterr()
    code = main(["train", str(corpus), "--out", str(out), "--epochs", "5", "--batch-size", "8", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 130, captured.err
    assert "interrupted in epoch 3 of 5" in captured.err and "best of the 2 epoch(s) that finished" in captured.err
    summary = json.loads((out / "training.json").read_text())
    assert summary["interrupted_in_epoch"] == 3 and [h["epoch"] for h in summary["history"]] == [1, 2]
    assert "interrupted in epoch 3" in (out / "MODEL_CARD.md").read_text()
    load_backend("embedded", model=str(out)).predict([voice(1.0)])  # the kept model loads
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left

    # Ctrl-C before any epoch finished: nothing to keep, the usual one line and exit 130
    steps[:], per_epoch = [], 0
    assert main(["train", str(corpus), "--out", str(tmp_path / "none"), "--epochs", "5", "--batch-size", "8",
                 "--threads", "1"]) == 130
    assert "ser: interrupted" in capsys.readouterr().err
    assert not (tmp_path / "none" / "training.json").exists()
