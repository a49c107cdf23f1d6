"""The model shipped inside the package: loads offline from the installed package, is the default."""

import json

import numpy as np
import pytest

from conftest import SHARED_DATA, SR, voice
from ser_tool import EMOTIONS, Analyzer
from ser_tool.backends import load_backend
from ser_tool.backends.embedded import default_model_dir


def test_shipped_files_are_in_the_package():
    d = default_model_dir()
    assert (d / "model.safetensors").is_file() and (d / "config.json").is_file() and (d / "MODEL_CARD.md").is_file()
    assert (d / "model.safetensors").stat().st_size < 10 * 2**20  # a few MB
    assert (d / "model.safetensors").read_bytes()[:8] != b"PK\x03\x04"  # safetensors, not a zip pickle
    card = (d / "MODEL_CARD.md").read_text()
    assert "category-derived targets" in card and "non-commercial" in card
    assert tuple(json.loads((d / "config.json").read_text())["labels"]) == EMOTIONS


def test_default_backend_loads_offline_and_predicts(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backend = load_backend("embedded")
    assert backend.model_id == "ser-tool/embedded" and backend.emotions_supported == EMOTIONS
    pred = backend.predict([voice(2.0), voice(4.0, f0=220)])
    assert pred.probabilities.shape == (2, 7) and np.allclose(pred.probabilities.sum(axis=1), 1)
    assert pred.dimensions.shape == (2, 3)


def test_analyzer_default_is_the_embedded_model(sample_path):
    report = Analyzer().analyze(sample_path)
    assert report.backend == "embedded" and report.model_id == "ser-tool/embedded"
    assert report.overall.dimensions is not None


@pytest.mark.data
@pytest.mark.skipif(not (SHARED_DATA / "ravdess").is_dir(), reason="../shared/data/ravdess is absent: cannot check the shipped model on real speech")
def test_shipped_model_beats_chance_on_held_out_ravdess_speakers():
    from evals.ser.benchmark import predict_clips, score, select_clips

    clips, _ = select_clips([SHARED_DATA / "ravdess"], "test", limit=84)
    pred = predict_clips(load_backend("embedded"), clips)
    uar = score(pred.clips, pred.probabilities, pred.dimensions)["overall"]["7class"]["uar"]
    assert uar > 0.35  # chance is 1/7 = 0.14; the full held-out evaluation is `ser-eval ser` (README)


def test_thread_count_follows_the_backend_choice():
    import torch

    from ser_tool import ConfigError

    before = torch.get_num_threads()
    try:
        load_backend("embedded")
        assert torch.get_num_threads() == 1  # the small model runs single-threaded by default
        load_backend("embedded", threads=2)
        assert torch.get_num_threads() == 2
        with pytest.raises(ConfigError, match="at least 1"):
            load_backend("embedded", threads=0)
    finally:
        torch.set_num_threads(before)
