"""Test helpers: synthetic audio, stand-in models, tiny random models saved to disk, and a sandbox
that keeps tests off the hub.

Tests (and benchmarks) synthesise audio here (`voice`, `silence`, `make_toy_corpus`), run the pipeline
around a deterministic model (`FakeBackend`, `CountingASR`), and build tiny models that load through
the real `from_pretrained` path. Weights are random: assert shapes, sums, orders and errors, never
values. torch and transformers are imported inside the functions, so importing this package is cheap.
The MERaLiON stand-in's remote code is two real files in meralion_standin/ (package data).
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import types
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ser_tool.testing.fakes import CountingASR, FakeBackend, SpectrumSpeakerEncoder
from ser_tool.testing.synthetic import SR, make_toy_corpus, silence, voice

__all__ = [
    "SR",
    "CountingASR",
    "FakeBackend",
    "SpectrumSpeakerEncoder",
    "HubSandbox",
    "MERALION_STANDIN_ID2LABEL",
    "hub_sandbox",
    "make_tiny_hf_classifier",
    "make_tiny_whisper_asr",
    "make_tiny_meralion_standin",
    "make_random_voice_head",
    "make_toy_corpus",
    "silence",
    "voice",
]

# MERaLiON-SER-v1's label names, deliberately in an order that is NOT EMOTIONS' order, so a test
# can only pass if the loader reads config.id2label instead of assuming the release's index order.
MERALION_STANDIN_ID2LABEL: dict[int, str] = {
    0: "Happy",
    1: "Surprised",
    2: "Neutral",
    3: "Disgusted",
    4: "Angry",
    5: "Fearful",
    6: "Sad",
}


# ---------------------------------------------------------------------------------------------
# Hub sandbox


@dataclass
class HubSandbox:
    """What `hub_sandbox` saw: every repo id transformers asked the hub (or the hub cache) for."""

    root: Path
    hub_lookups: list[str] = field(default_factory=list)
    connections: list[str] = field(default_factory=list)


@contextmanager
def hub_sandbox(root: str | Path) -> Iterator[HubSandbox]:
    """Run transformers with no hub: offline, an empty hub cache, and remote code cached under `root`.

    Inside the block:
    - huggingface_hub is in offline mode and its cache is `root/hub` (empty), so nothing a
      developer has downloaded can make a test pass by accident;
    - every call transformers makes to `hf_hub_download`/`snapshot_download` (which is how it
      resolves a hub id, even from the cache) is recorded in `hub_lookups`; loading a local
      directory makes none, so an empty list proves no hub id was looked up;
    - socket connections are refused and recorded in `connections`;
    - remote-code modules (`trust_remote_code=True`) are copied to `root/modules` instead of
      ~/.cache/huggingface/modules. transformers reads HF_MODULES_CACHE once at import, so setting
      the environment variable in a test is too late; the module attribute is swapped instead,
      with sys.path and the `transformers_modules` entries of sys.modules restored on exit.
    Everything is restored on exit. Not thread-safe: meant for tests.
    """
    import socket

    import huggingface_hub.constants as hub_constants
    import transformers.dynamic_module_utils as dynamic_modules
    import transformers.utils.hub as transformers_hub

    root = Path(root)
    (root / "hub").mkdir(parents=True, exist_ok=True)
    (root / "modules").mkdir(parents=True, exist_ok=True)
    sandbox = HubSandbox(root)

    def recording(original: Any) -> Any:
        def lookup(repo_id: str, *args: Any, **kwargs: Any) -> Any:
            sandbox.hub_lookups.append(str(repo_id))
            return original(repo_id, *args, **kwargs)

        return lookup

    def refuse(sock: Any, address: Any, *args: Any, **kwargs: Any) -> Any:
        sandbox.connections.append(repr(address))
        raise OSError(f"network access is disabled by ser_tool.testing.hub_sandbox (tried {address!r})")

    saved_attrs = [
        (hub_constants, "HF_HUB_OFFLINE", True),
        (hub_constants, "HF_HUB_CACHE", str(root / "hub")),
        (dynamic_modules, "HF_MODULES_CACHE", str(root / "modules")),
        (transformers_hub, "hf_hub_download", recording(transformers_hub.hf_hub_download)),
        (transformers_hub, "snapshot_download", recording(transformers_hub.snapshot_download)),
        (socket.socket, "connect", refuse),
        (socket.socket, "connect_ex", refuse),
    ]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in saved_attrs]
    saved_path = list(sys.path)
    saved_modules = {k: v for k, v in sys.modules.items() if _is_dynamic_module(k)}
    try:
        for key in saved_modules:
            del sys.modules[key]
        for obj, name, value in saved_attrs:
            setattr(obj, name, value)
        importlib.invalidate_caches()
        yield sandbox
    finally:
        for obj, name, value in originals:
            setattr(obj, name, value)
        for key in [k for k in sys.modules if _is_dynamic_module(k)]:
            del sys.modules[key]
        sys.modules.update(saved_modules)
        sys.path[:] = saved_path
        importlib.invalidate_caches()


def _is_dynamic_module(name: str) -> bool:
    return name == "transformers_modules" or name.startswith("transformers_modules.")


# ---------------------------------------------------------------------------------------------
# Tiny Hugging Face audio classifiers


def make_tiny_hf_classifier(
    path: str | Path,
    labels: Sequence[str] = ("neu", "hap", "ang", "sad", "other"),
    kind: str = "wav2vec2",
) -> Path:
    """Save a tiny random audio classifier with its feature extractor to `path` and return it.

    kind "wav2vec2": Wav2Vec2ForSequenceClassification (raw 16 kHz waveform in, padded to the
    longest, with attention mask). kind "whisper": WhisperForAudioClassification (80 log-mel
    bins, every input padded or cut to 30 s). Labels go into config.id2label in the order given.
    """
    import torch

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    id2label = {i: str(label) for i, label in enumerate(labels)}
    label2id = {label: i for i, label in id2label.items()}
    torch.manual_seed(0)
    if kind == "wav2vec2":
        from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

        config = Wav2Vec2Config(
            vocab_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            conv_dim=(16, 16, 16),
            conv_stride=(5, 4, 4),
            conv_kernel=(10, 4, 4),
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=2,
            feat_extract_norm="layer",
            do_stable_layer_norm=True,
            classifier_proj_size=16,
            id2label=id2label,
            label2id=label2id,
        )
        model: Any = Wav2Vec2ForSequenceClassification(config)
        extractor: Any = Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
        )
    elif kind == "whisper":
        from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForAudioClassification

        config = WhisperConfig(
            d_model=16,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=32,
            decoder_ffn_dim=32,
            num_mel_bins=80,
            max_source_positions=1500,
            max_target_positions=16,
            classifier_proj_size=16,
            id2label=id2label,
            label2id=label2id,
        )
        model = WhisperForAudioClassification(config)
        extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000)
    else:
        raise ValueError(f"unknown kind {kind!r}; use 'wav2vec2' or 'whisper'")
    model.save_pretrained(path, safe_serialization=True)
    extractor.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------
# Tiny Whisper speech recogniser

_WHISPER_SPECIALS = (
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
)


def make_tiny_whisper_asr(path: str | Path, encoder_layers: int = 1) -> Path:
    """Save a tiny random Whisper speech recogniser (model, tokenizer, feature extractor, generation
    config) to `path` and return it; `transformers.pipeline("automatic-speech-recognition", path)` loads it.

    Byte-level vocabulary (256 symbols, no merges), Whisper's special tokens for English, and the 1501
    timestamp tokens <|0.00|> .. <|30.00|>, so timestamped and chunked long-form decoding run for real.
    Random weights: the words are noise; assert structure, never text. `encoder_layers` > 1 gives an encoder
    with middle layers (for ser_tool.representations.ct2_whisper).
    """
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    for token in _WHISPER_SPECIALS:
        vocab[token] = len(vocab)
    for i in range(1501):
        vocab[f"<|{i * 0.02:.2f}|>"] = len(vocab)
    ids = {t: vocab[t] for t in _WHISPER_SPECIALS}
    eot = ids["<|endoftext|>"]
    tokenizer = WhisperTokenizer(vocab=dict(vocab), merges=[], unk_token="<|endoftext|>", bos_token="<|endoftext|>",
                                 eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": list(_WHISPER_SPECIALS[1:])})
    config = WhisperConfig(
        vocab_size=len(vocab), d_model=16, encoder_layers=encoder_layers, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
        max_source_positions=1500, max_target_positions=64, pad_token_id=eot, bos_token_id=eot, eos_token_id=eot,
        decoder_start_token_id=ids["<|startoftranscript|>"], suppress_tokens=[], begin_suppress_tokens=[eot],
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=eot, pad_token_id=eot, bos_token_id=eot,
        no_timestamps_token_id=ids["<|notimestamps|>"], is_multilingual=True, lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        max_initial_timestamp_index=50, begin_suppress_tokens=[eot], suppress_tokens=[], max_length=24,
    )
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------
# A random voice head over real representations


def make_random_voice_head(path: str | Path, backbone: str, seed: int = 0, **config: Any) -> Path:
    """Save a randomly initialised voice head for `backbone` ("whisper-base-mid", "resemblyzer+prosody", ...)
    to `path`, in the folder format `ser train --backbone` writes, and return it; the voice backend loads it
    (`load_backend(BackendSpec("voice", model=str(path)))`).

    The representations are loaded once to read their frame sizes and ids, so their extras must be installed
    (a ModelNotAvailableError says which is missing). The head has the trained head's shape (VoiceHeadConfig's
    defaults, overridable by keyword) and random weights: for speed and memory measurements and for shapes,
    never for what it predicts.
    """
    import torch

    from ser_tool.backends.voice_model import VoiceHead, VoiceHeadConfig, save_voice_head
    from ser_tool.representations import load_representation, parse_backbone

    names = parse_backbone(backbone)
    reps = [load_representation(n) for n in names]
    torch.manual_seed(seed)
    head = VoiceHead(VoiceHeadConfig(sum(r.frame_dim for r in reps), tuple(names), **config)).eval()
    save_voice_head(head, path, {"representation_ids": {r.name: r.id for r in reps}})
    return Path(path)


# ---------------------------------------------------------------------------------------------
# Tiny MERaLiON-SER-v1 stand-in (remote code)

# The remote code is two real files in meralion_standin/ (package data), copied into each stand-in's folder.
_STANDIN_CODE = Path(__file__).parent / "meralion_standin"
_STANDIN_CONFIG_MODULE = "configuration_tiny_meralion_ser"
_STANDIN_MODELING_MODULE = "modeling_tiny_meralion_ser"


def make_tiny_meralion_standin(
    path: str | Path,
    id2label: dict[int, str] | None = None,
    whisper_name: str = "openai/whisper-medium",
) -> Path:
    """Save a tiny remote-code stand-in for MERaLiON-SER-v1 to `path` and return it.

    The directory holds what the release holds: `configuration_*.py` and `modeling_*.py` (loaded
    with trust_remote_code=True through config.json's `auto_map`), random safetensors weights, and
    a Whisper feature extractor (80 mel bins, 16 kHz, 30 s). The code files are copied from
    meralion_standin/ beside this module. The model reproduces both of the release's loading
    pitfalls (see the docstring of meralion_standin/modeling_tiny_meralion_ser.py): its __init__
    reads the Whisper config named by `whisper_name` (by default a hub id, which fails offline
    unless the loader overrides it) and turns a torch.logspace into Python ints (which fails on the
    meta device unless the loader patches creation ops). `id2label` defaults to
    MERALION_STANDIN_ID2LABEL, a permutation of the release's names.

    Building the model here needs no hub either: the factory itself passes a local Whisper config,
    then stores `whisper_name` in config.json.
    """
    import tempfile

    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    labels = dict(MERALION_STANDIN_ID2LABEL if id2label is None else id2label)
    for module in (_STANDIN_CONFIG_MODULE, _STANDIN_MODELING_MODULE):
        shutil.copyfile(_STANDIN_CODE / f"{module}.py", path / f"{module}.py")

    modeling = _import_standin_modeling(path)
    config = modeling.TinyMeralionSERConfig(
        id2label={int(k): v for k, v in labels.items()},
        label2id={v: int(k) for k, v in labels.items()},
    )
    config.auto_map = {
        "AutoConfig": f"{_STANDIN_CONFIG_MODULE}.TinyMeralionSERConfig",
        "AutoModelForAudioClassification": f"{_STANDIN_MODELING_MODULE}.TinyMeralionSERForAudioClassification",
    }
    with tempfile.TemporaryDirectory(prefix="ser-tool-whisper-") as whisper_dir:
        WhisperConfig(num_mel_bins=80, max_source_positions=1500).save_pretrained(whisper_dir)
        config.whisper_name = whisper_dir
        torch.manual_seed(0)
        model = modeling.TinyMeralionSERForAudioClassification(config)
    model.config.whisper_name = whisper_name
    model.save_pretrained(path, safe_serialization=True)
    WhisperFeatureExtractor(feature_size=80, sampling_rate=16000).save_pretrained(path)
    # save_pretrained does not know the auto_map came with the config; make sure it is on disk.
    saved = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if saved.get("auto_map") != config.auto_map or saved.get("whisper_name") != whisper_name:
        raise RuntimeError(f"config.json written to {path} lacks auto_map/whisper_name: {saved}")
    return path


def _import_standin_modeling(path: Path) -> types.ModuleType:
    """Import the copied stand-in files as a throwaway package (not through transformers' cache)."""
    package = f"_ser_tool_standin_{uuid.uuid4().hex}"
    module = types.ModuleType(package)
    module.__path__ = [str(path)]
    sys.modules[package] = module
    try:
        return importlib.import_module(f"{package}.{_STANDIN_MODELING_MODULE}")
    finally:
        for key in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
            del sys.modules[key]
