"""The `hf` backend, loaded through the real from_pretrained path from tiny random checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ser_tool.backends import Backend, load_backend  # noqa: E402
from ser_tool.backends._torch import cpu_default_creation_ops, forward_errors, resolve_device  # noqa: E402
from ser_tool.backends.base import softmax  # noqa: E402
from ser_tool.console import error_message  # noqa: E402
from ser_tool.errors import BackendError, ConfigError, Hint, InvalidAudioError, ModelNotAvailableError  # noqa: E402
from ser_tool.labels import EMOTIONS  # noqa: E402
from ser_tool.testing import make_tiny_hf_classifier, make_tiny_meralion_standin, voice  # noqa: E402

LABELS = ("sad", "other", "neu", "ang", "hap")  # not EMOTIONS' order, and one label with no counterpart
SUPPORTED = ("neutral", "happy", "sad", "angry")


# Tiny models: one torch thread is faster and leaves the other core to the rest of the suite.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    return make_tiny_hf_classifier(tmp_path_factory.mktemp("w2v2") / "model", labels=LABELS)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    return make_tiny_hf_classifier(tmp_path_factory.mktemp("whisper") / "model", labels=LABELS, kind="whisper")


def waveforms(*seconds: float) -> list[np.ndarray]:
    return [voice(s, f0=220, amp=0.3) for s in seconds]


def assert_valid(prediction, batch: int, supported: tuple[str, ...]) -> None:
    p = prediction.probabilities
    assert p.shape == (batch, len(EMOTIONS))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert np.all(p >= 0.0)
    unsupported = [i for i, e in enumerate(EMOTIONS) if e not in supported]
    assert np.all(p[:, unsupported] == 0.0)


def test_wav2vec2_batch_of_different_lengths(hub, wav2vec2_dir):
    backend = load_backend("hf", model=str(wav2vec2_dir))
    assert isinstance(backend, Backend)
    assert (backend.name, backend.model_id, backend.sample_rate) == ("hf", str(wav2vec2_dir), 16000)
    assert backend.has_dimensions is False
    assert backend.max_input_seconds is None
    assert backend.emotions_supported == SUPPORTED
    prediction = backend.predict(waveforms(1.0, 0.4, 1.7))
    assert_valid(prediction, 3, SUPPORTED)
    assert prediction.dimensions is None
    assert prediction.unmapped is not None and prediction.unmapped.shape == (3,)
    assert np.all((prediction.unmapped >= 0) & (prediction.unmapped <= 1))
    assert hub.hub_lookups == [] and hub.connections == []


def test_whisper_classifier_has_a_30_second_window(hub, whisper_dir):
    backend = load_backend("hf", model=str(whisper_dir))
    assert backend.max_input_seconds == 30.0
    assert backend.emotions_supported == SUPPORTED
    prediction = backend.predict(waveforms(0.5, 2.0))
    assert_valid(prediction, 2, SUPPORTED)
    with pytest.raises(BackendError, match="split longer audio"):
        backend.predict(waveforms(31.0))


def test_matches_a_direct_forward_reordered_by_id2label(hub, wav2vec2_dir):
    backend = load_backend("hf", model=str(wav2vec2_dir))
    batch = waveforms(0.6, 1.1)
    prediction = backend.predict(batch)

    features = backend.feature_extractor(batch, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = backend.model(**features).logits.numpy().astype(np.float64)
    raw = softmax(logits)
    id2label = backend.model.config.id2label
    kept = {j: EMOTIONS.index({"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad"}[name])
            for j, name in id2label.items() if name != "other"}
    expected = np.zeros((2, len(EMOTIONS)))
    for j, i in kept.items():
        expected[:, i] = raw[:, j]
    unmapped = raw[:, [j for j, name in id2label.items() if name == "other"]].sum(axis=1)
    np.testing.assert_allclose(prediction.probabilities, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(prediction.unmapped, unmapped, atol=1e-6)


def test_label_order_comes_from_the_config(hub, wav2vec2_dir):
    backend = load_backend("hf", model=str(wav2vec2_dir))
    # Fix the head so the logits are known: one large logit per label, in config order.
    bias = torch.tensor([4.0, 0.0, 1.0, 2.0, 3.0])  # sad, other, neu, ang, hap
    with torch.no_grad():
        backend.model.classifier.weight.zero_()
        backend.model.classifier.bias.copy_(bias)
    prediction = backend.predict(waveforms(0.5))
    raw = softmax(bias.numpy()[None].astype(np.float64))[0]
    expected = {"sad": raw[0], "neutral": raw[2], "angry": raw[3], "happy": raw[4]}
    for emotion, value in expected.items():
        assert prediction.probabilities[0, EMOTIONS.index(emotion)] == pytest.approx(value / (1 - raw[1]), abs=1e-6)
    assert prediction.unmapped[0] == pytest.approx(raw[1], abs=1e-6)


@pytest.mark.parametrize("masked", [True, False])
def test_a_batch_gives_what_each_waveform_gives_alone(hub, wav2vec2_dir, masked):
    backend = load_backend("hf", model=str(wav2vec2_dir))
    if not masked:
        # like wav2vec2-base fine-tunes, whose extractors return no attention mask
        backend.feature_extractor.return_attention_mask = False
    batch = waveforms(0.4, 1.3, 0.4)
    together = backend.predict(batch).probabilities
    alone = np.concatenate([backend.predict([w]).probabilities for w in batch])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_label_map_adds_and_drops_labels(hub, wav2vec2_dir):
    backend = load_backend("hf", model=str(wav2vec2_dir), label_map={"other": "surprised", "neu": None})
    assert backend.emotions_supported == ("happy", "sad", "angry", "surprised")
    prediction = backend.predict(waveforms(0.5, 0.8))
    assert_valid(prediction, 2, backend.emotions_supported)
    assert prediction.unmapped is not None  # "neu" is now dropped


def test_labels_that_map_nowhere_ask_for_a_label_map(hub, tmp_path):
    model_dir = make_tiny_hf_classifier(tmp_path / "m", labels=("LABEL_0", "LABEL_1"))
    with pytest.raises(ModelNotAvailableError, match="label map"):
        load_backend("hf", model=str(model_dir))


def test_missing_directory(hub, tmp_path):
    missing = tmp_path / "nowhere" / "model"
    with pytest.raises(ModelNotAvailableError, match="does not exist") as info:
        load_backend("hf", model=str(missing))
    assert str(missing) in str(info.value)


def test_incomplete_directory(hub, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="config.json") as info:
        load_backend("hf", model=str(tmp_path / "empty"))
    assert info.value.__cause__ is not None


def test_hub_id_while_offline(hub):
    with pytest.raises(ModelNotAvailableError) as info:
        load_backend("hf", model="someone/no-such-emotion-model", offline=True)
    message = str(info.value)
    assert "someone/no-such-emotion-model" in message and "offline" in message
    assert "hf download someone/no-such-emotion-model" in message
    assert hub.connections == []


def test_remote_code_needs_consent(hub, tmp_path):
    standin = make_tiny_meralion_standin(tmp_path / "standin")
    with pytest.raises(ModelNotAvailableError, match="trust its authors") as info:
        load_backend("hf", model=str(standin), offline=True)
    assert Hint("trust_remote_code", True) in info.value.hints
    assert "--trust-remote-code" in error_message(info.value)  # the CLI words the hint as its flag


def test_bad_waveforms(hub, wav2vec2_dir):
    backend = load_backend("hf", model=str(wav2vec2_dir))
    with pytest.raises(InvalidAudioError, match="mono"):
        backend.predict([np.zeros((2, 8000), dtype=np.float32)])
    with pytest.raises(InvalidAudioError, match="NaN"):
        backend.predict([np.full(8000, np.nan, dtype=np.float32)])
    empty = backend.predict([])
    assert empty.probabilities.shape == (0, len(EMOTIONS))


def test_forward_failure_becomes_backend_error(hub, wav2vec2_dir, monkeypatch):
    backend = load_backend("hf", model=str(wav2vec2_dir))

    def broken(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(backend.model, "forward", broken)
    with pytest.raises(BackendError, match="kaboom") as info:
        backend.predict(waveforms(0.5))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_forward_errors_keeps_ser_errors():
    with pytest.raises(InvalidAudioError):
        with forward_errors("m"):
            raise InvalidAudioError("x")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="run on the CPU") as info:
            resolve_device("cuda:0")
        assert "--device cpu" in error_message(info.value)  # the CLI words the hint as its flag


def test_cuda_requested_without_gpu(hub, wav2vec2_dir):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        load_backend("hf", model=str(wav2vec2_dir), device="cuda")


def test_cpu_default_creation_ops_restores_and_respects_explicit_device():
    logspace, linspace = torch.logspace, torch.linspace
    with pytest.raises(KeyError):
        with cpu_default_creation_ops():
            with torch.device("meta"):
                assert torch.logspace(0, 1, 3).device.type == "cpu"
                assert torch.linspace(0, 1, 3).device.type == "cpu"
                assert torch.logspace(0, 1, 3, device="meta").is_meta
            raise KeyError("restored even on error")
    assert (torch.logspace, torch.linspace) == (logspace, linspace)


def test_threads_apply_to_the_backends_forward_passes_only(hub, wav2vec2_dir):
    from ser_tool.backends._torch import torch_threads

    def threads_in_forward(backend):
        seen = []
        hook = backend.model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
        backend.predict(waveforms(1.0))
        hook.remove()
        return seen

    assert torch.get_num_threads() == 1  # the one_thread fixture
    assert threads_in_forward(load_backend("hf", model=str(wav2vec2_dir))) == [1]  # no count asked: the caller's
    assert threads_in_forward(load_backend("hf", model=str(wav2vec2_dir), threads=2)) == [2]
    assert torch.get_num_threads() == 1  # restored after the forward pass; loading changed nothing
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(2):
            assert torch.get_num_threads() == 2
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 1  # restored on error too
    with pytest.raises(ConfigError, match="at least 1"):
        with torch_threads(0):
            pass
