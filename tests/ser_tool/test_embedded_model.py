"""The model shipped inside the package: loads offline from the installed package, is the default."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ser_tool import EMOTIONS, AnalysisOptions, Analyzer
from ser_tool.backends import load_backend
from ser_tool.backends.embedded import default_model_dir
from ser_tool.testing import voice
from tests.helpers import REPO, SAMPLE, SHARED_DATA


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


def test_analyzer_runs_the_embedded_model_by_name(sample_path):
    report = Analyzer("embedded").analyze(sample_path)
    assert report.backend == "embedded" and report.model_id == "ser-tool/embedded"
    assert report.overall.dimensions is not None


@pytest.mark.data
@pytest.mark.skipif(not (SHARED_DATA / "ravdess").is_dir(), reason="../shared/data/ravdess is absent: cannot check the shipped model on real speech")
def test_shipped_model_beats_chance_on_held_out_ravdess_speakers():
    from evals.classify.benchmark import predict_clips, score, select_clips

    clips, _ = select_clips([SHARED_DATA / "ravdess"], "test", limit=84)
    pred = predict_clips(load_backend("embedded"), clips)
    uar = score(pred.clips, pred.probabilities, pred.dimensions)["overall"]["7class"]["uar"]
    assert uar > 0.35  # chance is 1/7 = 0.14; the full held-out evaluation is `ser-eval ser` (README)


def test_thread_count_follows_the_backend_choice():
    import torch

    from ser_tool import ConfigError

    def threads_in_forward(backend):
        seen = []
        hook = backend.model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
        backend.predict([voice(1.0)])
        hook.remove()
        return seen

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        backend = load_backend("embedded")
        assert threads_in_forward(backend) == [1]  # the small model runs single-threaded by default
        assert threads_in_forward(load_backend("embedded", threads=2)) == [2]
        # ... inside its forward passes only: neither loading nor running it changes the caller's count
        assert torch.get_num_threads() == 3
        with pytest.raises(ConfigError, match="at least 1"):
            load_backend("embedded", threads=0)
    finally:
        torch.set_num_threads(before)


def test_backend_parameters_are_one_spec():
    from ser_tool import BackendSpec, ConfigError

    spec = BackendSpec("embedded", threads=2)
    backend = load_backend(spec)
    assert backend.threads == 2 and backend.model_id == "ser-tool/embedded"
    assert load_backend("embedded", threads=2).threads == 2  # a name + BackendSpec fields is the same spec
    with pytest.raises(ConfigError, match="not both"):
        load_backend(spec, threads=1)
    with pytest.raises(ConfigError, match="unknown backend"):
        load_backend("nope")


GOLDEN = Path(__file__).parent / "golden" / "embedded_outputs.json"


def _reference_inputs() -> dict[str, np.ndarray]:
    """The inputs tests/ser_tool/golden/embedded_outputs.json was computed on (keep in step with that file)."""
    from ser_tool.audio import load_audio

    rng = np.random.default_rng(0)
    return {
        "sample": load_audio(str(SAMPLE)),
        "voice_2s": voice(2.0),
        "voice_1s_220": voice(1.0, f0=220),
        "noise_1s": (0.05 * rng.standard_normal(16000)).astype(np.float32),
        "short_100": (0.1 * rng.standard_normal(100)).astype(np.float32),  # shorter than one STFT window
    }


def test_outputs_match_the_model_before_it_moved_out_of_train():
    """The architecture moved from ser_tool/train/model.py (mel filters from transformers) to
    ser_tool/backends/compact.py (mel filters in numpy): the shipped model must give the outputs it gave
    then (bit-identical on the machine that recorded them; the tolerance allows for other CPUs)."""
    golden = json.loads(GOLDEN.read_text())
    backend = load_backend("embedded")
    for name, wave in _reference_inputs().items():
        pred = backend.predict([wave])
        want = golden["outputs"][name]
        assert np.allclose(pred.probabilities[0], want["probabilities"], rtol=0, atol=1e-5), name
        assert np.allclose(pred.dimensions[0], want["dimensions"], rtol=0, atol=1e-5), name
    # the golden report was made before loudness normalisation: compare with the audio as recorded
    overall = Analyzer(backend, AnalysisOptions(normalise_loudness=False)).analyze(SAMPLE).overall
    assert overall.emotion == golden["overall"]["emotion"] == "happy"
    got = overall.probabilities.model_dump() | overall.dimensions.model_dump()
    want = golden["overall"]["probabilities"] | golden["overall"]["dimensions"]
    assert got == pytest.approx(want, abs=1e-5)


def test_mel_filterbank_is_the_one_saved_with_the_weights():
    import torch
    from safetensors.numpy import load_file

    from ser_tool.backends.compact import ModelConfig, mel_filterbank

    cfg = ModelConfig()
    filters = mel_filterbank(cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max, cfg.sample_rate)
    assert filters.shape == (cfg.n_mels, cfg.n_fft // 2 + 1) and np.all(filters >= 0)
    assert np.all(filters.max(axis=1) > 0)  # no empty band
    saved = load_file(default_model_dir() / "model.safetensors")["logmel.filterbank"]
    assert np.array_equal(torch.tensor(filters, dtype=torch.float32).numpy(), saved)  # a new model trains with the same filters
    with pytest.raises(ValueError, match="f_min"):
        mel_filterbank(512, 64, 20.0, 9000.0, 16_000)


def test_mel_filterbank_matches_transformers():
    audio_utils = pytest.importorskip("transformers.audio_utils", reason="transformers is not installed")
    from ser_tool.backends.compact import mel_filterbank

    for n_mels, f_min, f_max in [(64, 20.0, 7600.0), (80, 0.0, 8000.0), (40, 300.0, 3400.0)]:
        want = audio_utils.mel_filter_bank(num_frequency_bins=257, num_mel_filters=n_mels, min_frequency=f_min, max_frequency=f_max,
                                           sampling_rate=16_000, norm="slaney", mel_scale="slaney")
        assert np.allclose(mel_filterbank(512, n_mels, f_min, f_max, 16_000), want.T, rtol=0, atol=1e-12)


def test_embedded_analysis_and_package_import_leave_transformers_out():
    """`import ser_tool` loads neither torch nor transformers; analysing with the embedded model (library or
    `ser analyze`) needs torch only."""
    import subprocess
    import sys

    code = (
        "import sys, ser_tool\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, f'import ser_tool imported {heavy}'\n"
        "report = ser_tool.Analyzer('embedded').analyze(sys.argv[1])\n"
        "assert report.backend == 'embedded' and 'torch' in sys.modules\n"
        "loaded = sorted(m for m in sys.modules if m == 'transformers' or m.startswith('transformers.'))\n"
        "assert not loaded, f'the embedded model imported {loaded[:5]}'\n"
        "from ser_tool.cli import main\n"
        "assert main(['analyze', '--json', sys.argv[1]]) == 0\n"
        "loaded = sorted(m for m in sys.modules if m == 'transformers' or m.startswith('transformers.'))\n"
        "assert not loaded, f'ser analyze imported {loaded[:5]}'\n"
        "print('ok')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", code, str(SAMPLE)], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]
