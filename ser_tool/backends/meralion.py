"""MERaLiON-SER-v1 (Whisper-medium encoder + ECAPA-TDNN, 7 emotions + valence/arousal/dominance).

The release is loaded through transformers with its own remote code. Loading it naively trips
over two known pitfalls, both handled here:

1. Its constructor builds the encoder from the `openai/whisper-medium` config fetched from the
   hub (`config.whisper_name`), which fails offline unless that config happens to be cached. We
   write the whisper-medium config to a temporary directory and point `whisper_name` at it.
2. Its constructor turns a `torch.logspace` into Python ints. transformers >= 5 always builds
   models on the meta device first, where that tensor has no data; transformers itself patches
   only `torch.linspace`. We make logspace/linspace default to the CPU while loading
   (`cpu_default_creation_ops`); on transformers 4.x we also pass `low_cpu_mem_usage=False`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ser_tool.backends._torch import (
    as_waveform_batch,
    cpu_default_creation_ops,
    forward_errors,
    load_kwargs,
    resolve_device,
    torch_threads,
    transformers_major,
)
from ser_tool.backends.base import Backend, BackendSpec, LabelProjection, Prediction, softmax
from ser_tool.backends.hf import TransformersBackend, config_labels
from ser_tool.errors import BackendError, Hint, ModelNotAvailableError, SERError
from ser_tool.hub import model_source
from ser_tool.labels import DIMENSIONS, EMOTIONS

__all__ = ["DEFAULT_MODEL", "MeralionBackend", "WHISPER_CONFIGS", "load_meralion", "write_whisper_config"]

DEFAULT_MODEL = "MERaLiON/MERaLiON-SER-v1"
MODEL_PAGE = "https://huggingface.co/MERaLiON/MERaLiON-SER-v1"
WINDOW_SECONDS = 30.0  # the Whisper encoder sees exactly 30 s (1500 positions); shorter input is padded

# Architecture fields of the hub configs the release may name in `whisper_name`. Only the encoder
# is built from it; the values are those of openai/whisper-medium's config.json.
WHISPER_CONFIGS: dict[str, dict[str, Any]] = {
    "openai/whisper-medium": {
        "d_model": 1024,
        "encoder_layers": 24,
        "decoder_layers": 24,
        "encoder_attention_heads": 16,
        "decoder_attention_heads": 16,
        "encoder_ffn_dim": 4096,
        "decoder_ffn_dim": 4096,
        "num_hidden_layers": 24,
        "num_mel_bins": 80,
        "max_source_positions": 1500,
        "max_target_positions": 448,
        "vocab_size": 51865,
        "activation_function": "gelu",
        "scale_embedding": False,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "init_std": 0.02,
        "pad_token_id": 50257,
        "bos_token_id": 50257,
        "eos_token_id": 50257,
        "decoder_start_token_id": 50258,
    },
}


def write_whisper_config(name: str, directory: str | os.PathLike[str]) -> str:
    """Write the known config of hub model `name` (a key of WHISPER_CONFIGS) to `directory`."""
    from transformers import WhisperConfig

    WhisperConfig(**WHISPER_CONFIGS[name]).save_pretrained(directory)
    return str(directory)


class MeralionBackend(TransformersBackend):
    """MERaLiON-SER-v1 (or a checkpoint with the same contract) behind the Backend protocol."""

    name = "meralion"
    has_dimensions = True

    @staticmethod
    def input_window(feature_extractor: Any) -> float | None:
        return float(getattr(feature_extractor, "chunk_length", None) or WINDOW_SECONDS)

    def predict(self, waveforms: Sequence[np.ndarray]) -> Prediction:
        what = f"MERaLiON model {self.model_id!r}"
        batch = as_waveform_batch(
            waveforms, sample_rate=self.sample_rate, max_seconds=self.max_input_seconds, what=what
        )
        if not batch:
            return Prediction(np.zeros((0, len(EMOTIONS))), np.zeros((0, len(DIMENSIONS))), None)
        with torch_threads(self.threads), forward_errors(what), torch.inference_mode():
            # Every input is padded (or cut) to 30 s; the mask tells the pooling which frames are real.
            features = self.feature_extractor(
                batch, sampling_rate=self.sample_rate, return_attention_mask=True, return_tensors="pt"
            )
            dtype = next(self.model.parameters()).dtype
            output = self.model(
                input_features=features["input_features"].to(self.device, dtype),
                attention_mask=features["attention_mask"].to(self.device),
            )
            if not hasattr(output, "keys") or "logits" not in output.keys() or "dims" not in output.keys():
                raise BackendError(
                    f"{what} returned {type(output).__name__} without 'logits' and 'dims'; it is not a "
                    "MERaLiON-SER-v1 checkpoint. Use the 'hf' backend for plain audio classifiers",
                    setting="backend", value="hf",
                )
            logits = output["logits"].detach().float().cpu().numpy().astype(np.float64)
            dims = output["dims"].detach().float().cpu().numpy().astype(np.float64)
        probabilities, unmapped = self.projection.project(softmax(logits))
        if dims.shape != (len(batch), len(DIMENSIONS)) or not np.all((dims >= 0.0) & (dims <= 1.0)):
            raise BackendError(
                f"{what} returned dimensions of shape {dims.shape} outside 0..1; expected ({len(batch)}, 3) "
                "sigmoid outputs (valence, arousal, dominance). The checkpoint does not match this backend"
            )
        return Prediction(probabilities=probabilities, dimensions=dims, unmapped=unmapped)


def load_meralion(spec: BackendSpec) -> Backend:
    """Load MERaLiON-SER-v1 from the hub (spec.model None: the default id) or from a local directory.

    The release ships its own Python code, so this backend always loads with
    trust_remote_code=True: choosing the backend is choosing to run that code. spec.offline: never
    contact the hub (local directory or the local Hugging Face cache only).
    """
    from transformers import AutoConfig, AutoModelForAudioClassification

    offline = spec.offline
    repo = spec.model or DEFAULT_MODEL
    torch_device = resolve_device(spec.device)
    src = model_source(repo, offline, missing_folder=(
        f"MERaLiON model directory {repo!r} does not exist; pass the directory you downloaded with "
        f"`hf download {DEFAULT_MODEL} --local-dir DIR`, or leave the model unset to use the hub id {DEFAULT_MODEL}"),
        not_cached=lambda reason, cause: _not_available(repo, reason, False, cause))
    source, local, reason = src.where, src.local, src.offline_reason
    offline = offline or reason is not None
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=True, local_files_only=offline)
        feature_extractor = _load_feature_extractor(source, offline)
        with tempfile.TemporaryDirectory(prefix="ser-tool-whisper-config-") as whisper_dir:
            hub_whisper = _point_whisper_name_at_local_config(config, whisper_dir)
            kwargs = load_kwargs()
            if transformers_major() < 5:
                kwargs["low_cpu_mem_usage"] = False  # 4.x: build on the CPU, not the meta device
            with cpu_default_creation_ops():
                net = AutoModelForAudioClassification.from_pretrained(
                    source, config=config, trust_remote_code=True, local_files_only=offline, **kwargs
                )
        if hub_whisper is not None:
            # Keep the checkpoint's own value, not the temporary directory that is gone now.
            net.config.whisper_name = hub_whisper
    except SERError:
        raise
    except Exception as e:  # noqa: BLE001 - from_pretrained raises OSError/ValueError/ImportError/...
        raise _not_available(repo, reason or offline, local, e) from e
    labels = config_labels(net.config, repo)
    projection = LabelProjection.from_labels(labels)
    net.eval()
    net.to(torch_device)
    return MeralionBackend(repo, feature_extractor, net, projection, torch_device, spec.threads)


def _point_whisper_name_at_local_config(config: Any, directory: str) -> str | None:
    """If `config.whisper_name` is a hub id we know, write its config locally and point there.

    Returns the original hub id, or None when nothing was changed (no such attribute, already a
    local directory, or an id we do not know - that one is left to transformers to resolve).
    """
    name = getattr(config, "whisper_name", None)
    if not isinstance(name, str) or os.path.isdir(name) or name not in WHISPER_CONFIGS:
        return None
    config.whisper_name = write_whisper_config(name, directory)
    return name


def _load_feature_extractor(source: str, offline: bool) -> Any:
    from transformers import AutoFeatureExtractor, AutoProcessor

    try:
        return AutoFeatureExtractor.from_pretrained(source, trust_remote_code=True, local_files_only=offline)
    except (ValueError, KeyError):
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=True, local_files_only=offline)
        return getattr(processor, "feature_extractor", processor)


def _not_available(repo: str, offline: bool | str, local: bool, error: Exception) -> ModelNotAvailableError:
    """offline: False (the hub was asked), True (offline mode), or why the hub was not asked."""
    reason = offline if isinstance(offline, str) else ("offline mode is on" if offline else None)
    first_line = (str(error).strip().splitlines() or [repr(error)])[0]
    mode = "local folder" if local else "offline" if reason else "online"
    hints: tuple[Hint, ...] = ()
    if local:
        fix = (
            f"check that {repo} holds the whole release: config.json, the configuration_*/modeling_*.py files, "
            f"preprocessor_config.json and the weights (download it with `hf download {DEFAULT_MODEL} "
            "--local-dir DIR`)"
        )
    else:
        fix = (
            f"MERaLiON-SER-v1 is a gated model: accept its licence at {MODEL_PAGE}, set HF_TOKEN to a token of "
            f"that account, and download it once (`hf download {repo}`, about 800 MB); or give a local "
            "directory as the model. Turn offline mode on to never contact the hub"
        )
        hints = (Hint("model"), Hint("offline", True))
        if reason:
            fix = f"{reason[0].upper()}{reason[1:]} and {repo} is not in the local Hugging Face cache. " + fix
    return ModelNotAvailableError(
        f"could not load the MERaLiON model {repo!r} ({mode}; {type(error).__name__}: {first_line}). {fix}", hints=hints
    )
