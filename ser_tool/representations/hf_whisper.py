"""A Hugging Face Whisper checkpoint's encoder as a voice-head representation: `hf-whisper:SOURCE`.

SOURCE is a local folder or a hub id (any Whisper size, e.g. `openai/whisper-medium`, MERaLiON-SER's
encoder size) already on this machine: a hub id is read from the local Hugging Face cache when the hub
cannot or must not be asked (ser_tool.hub), so nothing downloads unasked. The encoder's weights are
read from the checkpoint's weight files without the decoder and mapped onto the torch encoder that runs
Whisper-base's middle layers (ser_tool.representations.ct2_whisper),
so every size runs on the recording's real length - no 30-s padding - where transformers' own Whisper
encoder insists on 30-s inputs. Frames: the average of two middle layers (or `layers`), pooled to 25
frames/s, (T, d_model); utterance: mean+std of frames. The id is a digest of the encoder's weights, the
layers and the pooling, so a re-trained or different checkpoint never reads another's cached features.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ser_tool.errors import ConfigError, ModelNotAvailableError
from ser_tool.representations.ct2_whisper import POOL, EncoderLayers

PREFIX = "hf-whisper:"


def middle_layers(num_layers: int) -> tuple[int, ...]:
    """Two middle layers, 0-based: Whisper-base's 6 -> (2, 3), as the shipped `whisper-base-mid`; 24 -> (11, 12)."""
    return (0,) if num_layers == 1 else (num_layers // 2 - 1, num_layers // 2)


def encoder_variables(state: dict, num_heads: int) -> dict[str, np.ndarray]:
    """transformers WhisperEncoder parameters (`conv1.weight`, `layers.0.self_attn.q_proj.weight`, ...) ->
    the variable names ct2_whisper.build_encoder reads (CTranslate2's: q, k, v fused in one projection;
    Whisper's key projection has no bias, so its part of the fused bias is zero)."""
    def a(name: str) -> np.ndarray:
        return state[name].detach().float().cpu().numpy()

    out = {"encoder/num_heads": np.array(num_heads, dtype=np.int32),
           "encoder/position_encodings/encodings": a("embed_positions.weight"),
           "encoder/layer_norm/gamma": a("layer_norm.weight"), "encoder/layer_norm/beta": a("layer_norm.bias")}
    for conv in ("conv1", "conv2"):
        out[f"encoder/{conv}/weight"], out[f"encoder/{conv}/bias"] = a(f"{conv}.weight"), a(f"{conv}.bias")
    i = 0
    while f"layers.{i}.fc1.weight" in state:
        p, q = f"layers.{i}.", f"encoder/layer_{i}/"
        q_b = a(p + "self_attn.q_proj.bias")
        out[q + "self_attention/linear_0/weight"] = np.concatenate([a(p + f"self_attn.{k}_proj.weight") for k in "qkv"])
        out[q + "self_attention/linear_0/bias"] = np.concatenate([q_b, np.zeros_like(q_b), a(p + "self_attn.v_proj.bias")])
        out[q + "self_attention/linear_1/weight"], out[q + "self_attention/linear_1/bias"] = a(p + "self_attn.out_proj.weight"), a(p + "self_attn.out_proj.bias")
        out[q + "self_attention/layer_norm/gamma"], out[q + "self_attention/layer_norm/beta"] = a(p + "self_attn_layer_norm.weight"), a(p + "self_attn_layer_norm.bias")
        out[q + "ffn/layer_norm/gamma"], out[q + "ffn/layer_norm/beta"] = a(p + "final_layer_norm.weight"), a(p + "final_layer_norm.bias")
        out[q + "ffn/linear_0/weight"], out[q + "ffn/linear_0/bias"] = a(p + "fc1.weight"), a(p + "fc1.bias")
        out[q + "ffn/linear_1/weight"], out[q + "ffn/linear_1/bias"] = a(p + "fc2.weight"), a(p + "fc2.bias")
        i += 1
    return out


WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json", "pytorch_model.bin")
ENCODER_PREFIXES = ("model.encoder.", "encoder.")  # WhisperForConditionalGeneration / -ForAudioClassification, WhisperModel
LAYER_KEYS = tuple(f"{m}.{t}" for m in ("self_attn.q_proj", "self_attn.out_proj", "self_attn.v_proj", "self_attn_layer_norm",
                                        "final_layer_norm", "fc1", "fc2") for t in ("weight", "bias")) + ("self_attn.k_proj.weight",)


def _encoder_name(key: str, num_layers: int | None = None) -> str | None:
    """The WhisperEncoder parameter name of a checkpoint key; None for the decoder's, and for encoder layers from
    `num_layers` on when given."""
    name = next((key[len(p):] for p in ENCODER_PREFIXES if key.startswith(p)), None)
    if name is not None and num_layers is not None and name.startswith("layers."):
        index = name.split(".", 2)[1]
        if not index.isdigit() or int(index) >= num_layers:
            return None
    return name


def load_whisper_encoder(source: str, offline: bool = False, layers: tuple[int, ...] | None = None):
    """(the encoder's tensors by WhisperEncoder parameter name, the checkpoint's config, the layers to average)
    from a local folder or a hub id, offline rules as the hf backend. layers: 0-based encoder layers (default:
    `middle_layers`). Only the tensors those layers depend on are read from the weight files (safetensors,
    sharded or not, or PyTorch .bin): the decoder, half of a Whisper checkpoint, and the encoder's layers above
    the last one used (half of the encoder for the middle layers) are never loaded."""
    from ser_tool.hub import model_source, not_available

    src = model_source(source, offline, setting=None, missing_folder=(
        f"Whisper checkpoint folder {source!r} does not exist; pass a folder holding a Whisper config.json and "
        "weights, or a hub id such as 'openai/whisper-small'"))
    reason = src.offline_reason
    from transformers import AutoConfig

    where, local_only = src.where, src.local_only
    try:
        config = AutoConfig.from_pretrained(where, local_files_only=local_only)
        if config.model_type != "whisper":
            raise ModelNotAvailableError(f"{source!r} is a {config.model_type!r} checkpoint, not Whisper: hf-whisper: takes "
                                         "a Whisper checkpoint (openai/whisper-*, or a fine-tune saved with save_pretrained)")
        layers = tuple(layers) if layers is not None else middle_layers(config.encoder_layers)
        if not layers or any(not 0 <= i < config.encoder_layers for i in layers):
            raise ConfigError(f"layers {list(layers)} are not all in 0..{config.encoder_layers - 1} (the encoder "
                              f"layers of {source!r})")
        state = _read_encoder_tensors(where, local_only, max(layers) + 1)
    except (ModelNotAvailableError, ConfigError):
        raise
    except Exception as e:  # noqa: BLE001 - transformers / safetensors raise OSError/ValueError/... for what they cannot read
        raise not_available(source, reason or offline, e, setting=None,
                            contents="a Whisper checkpoint's config.json and weights") from e
    if not state:
        raise ModelNotAvailableError(f"{source!r} has no Whisper weights ({' or '.join(WEIGHT_FILES[1::2])}); pass a "
                                     "complete Whisper checkpoint")
    if "embed_positions.weight" not in state:  # not always saved: transformers makes it, as here, from sinusoids
        from transformers.models.whisper.modeling_whisper import sinusoids

        state["embed_positions.weight"] = sinusoids(config.max_source_positions, config.d_model)
    needed = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "layer_norm.weight", "layer_norm.bias"]
    needed += [f"layers.{i}.{k}" for i in range(max(layers) + 1) for k in LAYER_KEYS]
    missing = [k for k in needed if k not in state]
    if missing:  # never run an encoder with holes in it: its features would be noise
        raise ModelNotAvailableError(f"the checkpoint {source!r} lacks encoder weights ({', '.join(missing[:3])}"
                                     f"{', ...' if len(missing) > 3 else ''}); pass a complete Whisper checkpoint")
    return state, config, layers


def _read_encoder_tensors(where: str, local_only: bool, num_layers: int) -> dict:
    """The encoder's tensors, its first `num_layers` layers only, from the checkpoint's first weight format found
    (WEIGHT_FILES order); {} when none."""
    import json

    import torch
    from safetensors import safe_open
    from transformers.utils import cached_file

    def fetch(name: str, required: bool) -> str | None:
        return cached_file(where, name, local_files_only=local_only, _raise_exceptions_for_missing_entries=required,
                           _raise_exceptions_for_connection_errors=required)

    found = next(((name, path) for name in WEIGHT_FILES if (path := fetch(name, False))), None)
    if found is None:
        return {}
    name, path = found
    if name.endswith(".index.json"):
        with open(path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        paths = [fetch(shard, True) for shard in sorted({v for k, v in weight_map.items() if _encoder_name(k, num_layers)})]
    else:
        paths = [path]
    state = {}
    for path in paths:
        if path.endswith(".safetensors"):
            with safe_open(path, "pt") as f:
                state.update({n: f.get_tensor(k) for k in f.keys() if (n := _encoder_name(k, num_layers))})
        else:  # mmap: the decoder's tensors are mapped, never read
            loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            state.update({n: v for k, v in loaded.items() if (n := _encoder_name(k, num_layers))})
    return state


class HFWhisperRepresentation(EncoderLayers):
    def __init__(self, source: str, layers: tuple[int, ...] | None = None, threads: int | None = None,
                 device: object = "cpu", offline: bool = False, precision: str = "float32") -> None:
        """precision: of the encoder's projections (ct2_whisper.resolve_precision); training uses float32."""
        import torch

        from ser_tool.representations.ct2_whisper import build_encoder, whisper_mel_filters

        if not source:
            raise ConfigError(f"name the Whisper checkpoint: {PREFIX}FOLDER or {PREFIX}HUB_ID")
        state, config, layers = load_whisper_encoder(source, offline, layers)
        variables = encoder_variables(state, config.encoder_attention_heads)
        del state
        device = torch.device(device)
        encoder = build_encoder(variables, device)  # the layers up to the last one used
        self._use(encoder, layers, torch.from_numpy(whisper_mel_filters(encoder.n_mels)).to(device), threads, device, precision)
        self.name = PREFIX + source
        digest = hashlib.sha1()  # of the weights read: none of the layers above the last one used
        for key in sorted(variables):
            digest.update(key.encode())
            digest.update(memoryview(np.ascontiguousarray(variables[key])).cast("B"))
        self.id = f"hf-whisper-{digest.hexdigest()[:16]}-L{'-'.join(map(str, self.layers))}-pool{POOL}-v2"


def source_of(name: str) -> str:
    return name[len(PREFIX):]


__all__ = ["PREFIX", "HFWhisperRepresentation", "encoder_variables", "middle_layers", "source_of"]
