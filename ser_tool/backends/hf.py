"""Any Hugging Face audio-classification checkpoint (hub id or local directory) as a backend.

Labels come from the checkpoint's `config.id2label`, folded onto EMOTIONS by LabelProjection:
labels with no counterpart are dropped, the rest renormalised, and the dropped mass is reported
as `Prediction.unmapped`. Such models have no dimensional head.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
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
)
from ser_tool.backends.base import Backend, BackendSpec, LabelProjection, Prediction, softmax
from ser_tool.errors import BackendError, ConfigError, Hint, ModelNotAvailableError
from ser_tool.hub import hub_offline_reason, in_hub_cache, not_cached_error
from ser_tool.labels import EMOTIONS
from ser_tool.level import TARGET_DB

__all__ = ["HFBackend", "TransformersBackend", "config_labels", "load_hf"]


def config_labels(config: Any, model: str) -> list[str]:
    """The model's labels in logit order, read from `config.id2label` (keys may be ints or strings)."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    if not id2label or sorted(id2label) != list(range(len(id2label))):
        raise ModelNotAvailableError(
            f"the config of {model} has no usable id2label (got {getattr(config, 'id2label', None)!r}); "
            "it is not an audio-classification checkpoint with named labels. Pick a checkpoint whose "
            "config.json lists id2label"
        )
    return [id2label[i] for i in range(len(id2label))]


def scales_waveform(feature_extractor: Any) -> bool:
    """Whether the extractor gives every waveform zero mean and unit variance (so its volume cannot matter).

    Only wav2vec2-style extractors (wav2vec2, HuBERT, WavLM, data2vec-audio) do that with `do_normalize`;
    the same flag elsewhere means something else (AST standardises log-mel features with fixed corpus
    statistics, Whisper's extractor leaves the waveform alone), and those inputs keep their level.
    """
    from transformers import Wav2Vec2FeatureExtractor

    return isinstance(feature_extractor, Wav2Vec2FeatureExtractor) and bool(getattr(feature_extractor, "do_normalize", False))


def looks_like_path(model: str) -> bool:
    """True when `model` is meant as a local directory rather than a hub id."""
    return (
        os.path.exists(model)
        or model.startswith((".", "~", os.sep))
        or (os.altsep is not None and os.altsep in model)
        or model.count("/") > 1
        or model.endswith("/")
    )


def not_available(model: str, offline: bool | str, error: Exception, *, setting: str | None = "model") -> ModelNotAvailableError:
    """A ModelNotAvailableError that names the model, the mode, the cause and the fix.

    offline: False (the hub was asked), True (offline mode), or why the hub was not asked (from
    `ser_tool.hub.hub_offline_reason`). setting: the setting that names this model (its Hint: 'model',
    'asr_model'), which each surface words as its own flag; None: no setting names it (a hint would mislead)."""
    reason = offline if isinstance(offline, str) else ("offline mode is on" if offline else None)
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
    cause = f"{type(error).__name__}: {first_line}"
    text = str(error)
    hint = None
    if "trust_remote_code" in text:
        fix = "the checkpoint ships its own Python code; if you trust its authors, allow it to run"
        hint = Hint("trust_remote_code", True)
    elif looks_like_path(model):
        fix = (
            f"check that {os.path.abspath(os.path.expanduser(model))} is a directory holding config.json, "
            "preprocessor_config.json and the weights (as written by save_pretrained or `hf download`)"
        )
    elif reason:
        fix = (
            f"{reason[0].upper()}{reason[1:]} and it is not in the local Hugging Face cache: download it once where the "
            f"hub can be reached (`hf download {model}`; downloads are kept in the cache, under HF_HOME), or give a "
            "local directory as the model"
        )
        hint = Hint(setting) if setting else None
    else:
        fix = (
            f"check the spelling of the id and your network; for a gated or private model accept its terms on "
            f"https://huggingface.co/{model} and set HF_TOKEN. Or download it (`hf download {model}`) and pass "
            "the local directory as the model"
        )
        hint = Hint(setting) if setting else None
    mode = "offline" if reason else "online"
    return ModelNotAvailableError(f"could not load model {model!r} ({mode}; {cause}). {fix}", hints=[hint] if hint else ())


class TransformersBackend:
    """What every transformers-loaded backend holds: extractor, model, label projection, device, threads."""

    def __init__(
        self, model_id: str, feature_extractor: Any, model: Any, projection: LabelProjection, device: torch.device,
        threads: int | None = None,
    ):
        self.model_id = model_id
        self.threads = threads  # torch CPU threads during predict (None: the caller's count)
        self.feature_extractor = feature_extractor
        self.model = model
        self.projection = projection
        self.device = device
        self.sample_rate = int(feature_extractor.sampling_rate)
        self.emotions_supported = projection.emotions_supported
        self.normalises_input = scales_waveform(feature_extractor)
        self.input_level_db = TARGET_DB  # when it does not: the nominal speech level (ser_tool.level)
        self.max_input_seconds: float | None = self.input_window(feature_extractor)

    @staticmethod
    def input_window(feature_extractor: Any) -> float | None:
        """The longest input (seconds) the model takes at once; None: any length."""
        return None


class HFBackend(TransformersBackend):
    """A transformers audio-classification model behind the Backend protocol."""

    name = "hf"
    has_dimensions = False

    @staticmethod
    def input_window(feature_extractor: Any) -> float | None:
        # Whisper-style extractors pad or cut every input to a fixed window (30 s); others take any length.
        chunk = getattr(feature_extractor, "chunk_length", None)
        return float(chunk) if chunk is not None else None

    @property
    def _fixed_window(self) -> bool:
        return self.max_input_seconds is not None

    @property
    def _input_names(self) -> list[str]:
        return list(getattr(self.feature_extractor, "model_input_names", None) or [])

    @property
    def _masked(self) -> bool:
        """Whether the checkpoint takes an attention mask over padded input.

        Checkpoints trained without one (e.g. wav2vec2-base fine-tunes) would read the zero padding
        of a mixed-length batch as signal, so they are only given batches of equal length.
        """
        return "attention_mask" in self._input_names and bool(
            getattr(self.feature_extractor, "return_attention_mask", True)
        )

    def _features(self, batch: list[np.ndarray]) -> dict[str, torch.Tensor]:
        kwargs: dict[str, Any] = {"sampling_rate": self.sample_rate, "return_tensors": "pt"}
        if not self._fixed_window:
            kwargs["padding"] = True  # pad to the longest waveform in the batch
        if self._masked:
            kwargs["return_attention_mask"] = True
        features = self.feature_extractor(batch, **kwargs)
        keep = set(self._input_names) if self._input_names else set(features.keys())
        if not self._masked:
            keep.discard("attention_mask")
        dtype = next(self.model.parameters()).dtype
        out = {}
        for key, value in features.items():
            if key in keep:
                value = value.to(self.device)
                out[key] = value.to(dtype) if value.is_floating_point() else value
        return out

    def predict(self, waveforms: Sequence[np.ndarray]) -> Prediction:
        batch = as_waveform_batch(
            waveforms, sample_rate=self.sample_rate, max_seconds=self.max_input_seconds, what=f"model {self.model_id!r}"
        )
        if not batch:
            empty = np.zeros((0, len(EMOTIONS)))
            return Prediction(empty, None, np.zeros(0) if self.projection.has_unmapped else None)
        if self._fixed_window or self._masked:
            groups = [list(range(len(batch)))]
        else:
            by_length: dict[int, list[int]] = {}
            for i, w in enumerate(batch):
                by_length.setdefault(w.size, []).append(i)
            groups = list(by_length.values())
        raw = np.zeros((len(batch), len(self.projection.targets)))
        with torch_threads(self.threads), forward_errors(f"hf model {self.model_id!r}"), torch.inference_mode():
            for group in groups:
                output = self.model(**self._features([batch[i] for i in group]))
                logits = output["logits"] if hasattr(output, "keys") else output[0]
                scores = logits.detach().float().cpu().numpy().astype(np.float64)
                if scores.shape != (len(group), raw.shape[1]):
                    raise BackendError(
                        f"hf model {self.model_id!r} returned logits of shape {scores.shape}, expected "
                        f"({len(group)}, {raw.shape[1]}) from its config's id2label"
                    )
                raw[group] = scores
        probabilities, unmapped = self.projection.project(softmax(raw))
        return Prediction(probabilities=probabilities, dimensions=None, unmapped=unmapped)


def load_hf(spec: BackendSpec) -> Backend:
    """Load any Hugging Face audio-classification checkpoint (spec.model: hub id or local directory).

    spec.offline: never contact the hub (local directories and the local cache only; also when HF_HUB_OFFLINE
    is set or the hub does not answer within seconds, see ser_tool.hub). spec.label_map:
    extra model-label -> emotion names (None drops a label) on top of the built-in aliases.
    spec.trust_remote_code: allow checkpoints that ship their own Python code to run it.
    """
    model, offline, trust_remote_code = spec.model, spec.offline, spec.trust_remote_code
    if not model:
        raise ConfigError("the 'hf' backend needs a model: a Hugging Face id or a local directory", setting="model")
    torch_device = resolve_device(spec.device)
    if looks_like_path(model) and not os.path.isdir(os.path.expanduser(model)):
        raise ModelNotAvailableError(
            f"model directory {model!r} does not exist; pass an existing directory holding config.json and "
            "the weights, or a Hugging Face model id such as 'superb/wav2vec2-base-superb-er'"
        )
    local = os.path.isdir(os.path.expanduser(model))
    source = os.path.expanduser(model) if local else model
    # a hub id: when the hub must not or cannot be asked, the cache only (fails at once if it is not there,
    # where the hub client would retry an unreachable hub for about a minute)
    reason = None if local else hub_offline_reason(offline)
    local_only = offline or reason is not None
    if reason is not None and not in_hub_cache(model):
        raise not_available(model, reason, not_cached_error(model))
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification
    try:
        feature_extractor = AutoFeatureExtractor.from_pretrained(
            source, local_files_only=local_only, trust_remote_code=trust_remote_code
        )
        # Checkpoints with remote code may build schedules with torch.logspace in __init__ (see
        # cpu_default_creation_ops); native transformers models do not need the patch.
        with cpu_default_creation_ops() if trust_remote_code else nullcontext():
            net = AutoModelForAudioClassification.from_pretrained(
                source, local_files_only=local_only, trust_remote_code=trust_remote_code, **load_kwargs()
            )
    except Exception as e:  # noqa: BLE001 - from_pretrained raises OSError/ValueError/ImportError/...
        raise not_available(model, reason or offline, e) from e
    if getattr(feature_extractor, "sampling_rate", None) is None:
        raise ModelNotAvailableError(
            f"the feature extractor of {model!r} does not state a sampling_rate; this is not an audio checkpoint"
        )
    labels = config_labels(net.config, model)
    projection = LabelProjection.from_labels(labels, spec.label_map)
    net.eval()
    net.to(torch_device)
    return HFBackend(model, feature_extractor, net, projection, torch_device, spec.threads)
