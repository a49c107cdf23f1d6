"""The `meralion` backend, loaded through the real remote-code path from a tiny stand-in.

The stand-in (ser_tool.testing.make_tiny_meralion_standin) reproduces the release's contract and
both of its loading pitfalls; these tests show each pitfall bites without our fix and not with it.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from ser_tool.backends import Backend, load_backend  # noqa: E402
from ser_tool.backends import meralion as meralion_module  # noqa: E402
from ser_tool.backends._torch import cpu_default_creation_ops, transformers_major  # noqa: E402
from ser_tool.backends.base import softmax  # noqa: E402
from ser_tool.console import error_message  # noqa: E402
from ser_tool.errors import BackendError, ModelNotAvailableError  # noqa: E402
from ser_tool.labels import EMOTIONS  # noqa: E402
from ser_tool.testing import MERALION_STANDIN_ID2LABEL, make_tiny_meralion_standin, voice  # noqa: E402


# Tiny models: one torch thread is faster and leaves the other core to the rest of the suite.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return make_tiny_meralion_standin(tmp_path_factory.mktemp("meralion") / "MERaLiON-SER-v1")


def waveforms(*seconds: float) -> list[np.ndarray]:
    return [voice(s, f0=180, amp=0.3) for s in seconds]


def test_standin_labels_are_not_in_emotions_order():
    # The tests below only prove something if the stand-in's labels are a real permutation.
    names = [MERALION_STANDIN_ID2LABEL[i].lower() for i in range(len(EMOTIONS))]
    assert sorted(names) == sorted(EMOTIONS) and tuple(names) != EMOTIONS


def test_predict_batch_of_different_lengths(hub, standin):
    backend = load_backend("meralion", model=str(standin), offline=True)
    assert isinstance(backend, Backend)
    assert (backend.name, backend.model_id, backend.sample_rate) == ("meralion", str(standin), 16000)
    assert backend.has_dimensions is True
    assert backend.max_input_seconds == 30.0
    assert backend.emotions_supported == EMOTIONS
    prediction = backend.predict(waveforms(1.0, 0.3, 2.5))
    assert prediction.probabilities.shape == (3, len(EMOTIONS))
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert prediction.dimensions is not None and prediction.dimensions.shape == (3, 3)
    assert np.all((prediction.dimensions >= 0.0) & (prediction.dimensions <= 1.0))
    assert prediction.unmapped is None
    assert not backend.model.training


def test_matches_a_direct_forward_reordered_by_id2label(hub, standin):
    backend = load_backend("meralion", model=str(standin), offline=True)
    batch = waveforms(0.7, 1.9)
    prediction = backend.predict(batch)

    features = backend.feature_extractor(batch, sampling_rate=16000, return_attention_mask=True, return_tensors="pt")
    output = backend.model(input_features=features["input_features"], attention_mask=features["attention_mask"])
    raw = softmax(output["logits"].numpy().astype(np.float64))
    expected = np.zeros_like(raw)
    for j, name in backend.model.config.id2label.items():
        expected[:, EMOTIONS.index(name.lower())] = raw[:, int(j)]
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(prediction.dimensions, output["dims"].numpy(), atol=1e-6)


def test_label_order_comes_from_the_config(hub, standin):
    backend = load_backend("meralion", model=str(standin), offline=True)
    bias = torch.arange(7, dtype=torch.float32)  # logit j = j, whatever the input
    with torch.no_grad():
        backend.model.classifier.weight.zero_()
        backend.model.classifier.bias.copy_(bias)
    prediction = backend.predict(waveforms(0.5))
    raw = softmax(bias.numpy()[None].astype(np.float64))[0]
    for j, name in MERALION_STANDIN_ID2LABEL.items():
        assert prediction.probabilities[0, EMOTIONS.index(name.lower())] == pytest.approx(raw[j], abs=1e-6)
    # Label 6 ("Sad") has the largest logit, so sad wins - not EMOTIONS[6] ("surprised").
    assert EMOTIONS[int(np.argmax(prediction.probabilities[0]))] == "sad"


def test_labels_without_counterpart_are_reported_as_unmapped(hub, tmp_path):
    id2label = {0: "Neutral", 1: "Happy", 2: "Sad", 3: "Angry", 4: "Fearful", 5: "Disgusted", 6: "Contempt"}
    model_dir = make_tiny_meralion_standin(tmp_path / "m", id2label=id2label)
    backend = load_backend("meralion", model=str(model_dir), offline=True)
    assert "surprised" not in backend.emotions_supported
    prediction = backend.predict(waveforms(0.5, 1.0))
    assert prediction.unmapped is not None and prediction.unmapped.shape == (2,)
    assert np.all(prediction.probabilities[:, EMOTIONS.index("surprised")] == 0.0)
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0, atol=1e-9)


def test_whisper_name_is_served_locally_without_any_hub_lookup(hub, standin):
    backend = load_backend("meralion", model=str(standin), offline=True)
    assert hub.hub_lookups == [] and hub.connections == []
    used = backend.model.reference_whisper
    # The encoder geometry came from the loader's whisper-medium config, not from the hub.
    assert (used["d_model"], used["encoder_layers"], used["num_mel_bins"], used["max_source_positions"]) == (
        1024, 24, 80, 1500,
    )
    assert used["whisper_name"] != "openai/whisper-medium"
    # ... and the loaded config keeps the checkpoint's own value, not a temporary directory.
    assert backend.model.config.whisper_name == "openai/whisper-medium"


def test_without_the_whisper_name_override_the_hub_is_asked(hub, standin):
    from transformers import AutoModelForAudioClassification

    with pytest.raises(OSError), cpu_default_creation_ops():
        AutoModelForAudioClassification.from_pretrained(str(standin), trust_remote_code=True, local_files_only=True)
    assert "openai/whisper-medium" in hub.hub_lookups


def test_a_local_whisper_name_is_left_alone(hub, tmp_path):
    from transformers import WhisperConfig

    whisper_dir = tmp_path / "whisper-config"
    WhisperConfig(d_model=32, num_mel_bins=80, max_source_positions=1500).save_pretrained(whisper_dir)
    model_dir = make_tiny_meralion_standin(tmp_path / "m", whisper_name=str(whisper_dir))
    backend = load_backend("meralion", model=str(model_dir), offline=True)
    assert backend.model.reference_whisper["whisper_name"] == str(whisper_dir)
    assert backend.model.reference_whisper["d_model"] == 32
    assert backend.model.config.whisper_name == str(whisper_dir)
    assert hub.hub_lookups == []


@pytest.mark.skipif(transformers_major() < 5, reason="transformers 4.x loads with low_cpu_mem_usage=False instead")
def test_without_the_creation_op_patch_loading_fails(hub, standin, monkeypatch):
    monkeypatch.setattr(meralion_module, "cpu_default_creation_ops", nullcontext)
    with pytest.raises(ModelNotAvailableError) as info:
        load_backend("meralion", model=str(standin), offline=True)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "meta" in str(info.value.__cause__)


def test_loading_leaves_torch_device_contexts_working(hub, standin):
    # torch caches which functions `with torch.device(...)` redirects; patching creation ops at
    # the wrong moment would leave wrappers in that cache and break the builtins for good.
    load_backend("meralion", model=str(standin), offline=True)
    assert torch.logspace is torch._C._VariableFunctions.logspace
    assert torch.linspace is torch._C._VariableFunctions.linspace
    with torch.device("meta"):
        assert torch.logspace(0, 1, 3).is_meta
        assert torch.linspace(0, 1, 3).is_meta


def test_missing_directory(hub, tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_backend("meralion", model=str(tmp_path / "nope"), offline=True)


def test_default_hub_id_while_offline_explains_the_gated_download(hub):
    with pytest.raises(ModelNotAvailableError) as info:
        load_backend("meralion", offline=True)
    message = error_message(info.value)  # as the command line prints it: the hints as its flags and variables
    assert "--" not in str(info.value) and "SER_" not in str(info.value)  # the core's own text names neither
    for part in (
        "MERaLiON/MERaLiON-SER-v1",
        "offline",
        "gated",
        "https://huggingface.co/MERaLiON/MERaLiON-SER-v1",
        "HF_TOKEN",
        "hf download MERaLiON/MERaLiON-SER-v1",
        "--model",
        "SER_OFFLINE=1",
    ):
        assert part in message
    assert hub.connections == []


def test_too_long_waveform_is_refused(hub, standin):
    backend = load_backend("meralion", model=str(standin), offline=True)
    with pytest.raises(BackendError, match="split longer audio"):
        backend.predict(waveforms(30.5))
    assert backend.predict(waveforms(30.0)).probabilities.shape == (1, len(EMOTIONS))


def test_output_without_dims_is_a_backend_error(hub, standin, monkeypatch):
    backend = load_backend("meralion", model=str(standin), offline=True)
    forward = backend.model.forward

    def logits_only(*args, **kwargs):
        return {"logits": forward(*args, **kwargs)["logits"]}

    monkeypatch.setattr(backend.model, "forward", logits_only)
    with pytest.raises(BackendError, match="dims"):
        backend.predict(waveforms(0.5))


def test_a_folder_that_is_not_the_release_is_named_as_a_local_folder(tmp_path):
    (tmp_path / "partial").mkdir()
    with pytest.raises(ModelNotAvailableError) as info:
        load_backend("meralion", model=str(tmp_path / "partial"))
    text = str(info.value)
    assert "(local folder; " in text and "holds the whole release" in text and "gated" not in text
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_backend("meralion", model=str(tmp_path / "absent"))
