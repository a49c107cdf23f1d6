"""Any Hugging Face audio-classification checkpoint (hub id or local directory) as a backend.

Labels come from the checkpoint's `config.id2label`, folded onto EMOTIONS by LabelProjection:
labels with no counterpart are dropped, the rest renormalised, and the dropped mass is reported
as `Prediction.unmapped`. Such models have no dimensional head.
"""

from __future__ import annotations

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
from ser_tool.errors import BackendError, ConfigError, ModelNotAvailableError
from ser_tool.hub import model_source, not_available
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
    src = model_source(model, offline, missing_folder=(
        f"model directory {model!r} does not exist; pass an existing directory holding config.json and "
        "the weights, or a Hugging Face model id such as 'superb/wav2vec2-base-superb-er'"))
    source, local_only = src.where, offline or src.offline_reason is not None
    reason = src.offline_reason
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
