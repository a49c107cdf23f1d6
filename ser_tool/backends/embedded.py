"""The compact model that ships inside the package (trained by `ser train`): offline, CPU-fast.

Weights live in ser_tool/models/embedded/ (model.safetensors + config.json + MODEL_CARD.md).
`model` may point at another directory written by `ser train`, e.g. a model fine-tuned on your data.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from ser_tool.backends.base import Backend, Prediction, softmax
from ser_tool.errors import ModelNotAvailableError
from ser_tool.labels import EMOTIONS

DEFAULT_MODEL_DIR = "models/embedded"


def default_model_dir() -> Path:
    return Path(str(resources.files("ser_tool") / DEFAULT_MODEL_DIR))


class EmbeddedBackend:
    name = "embedded"
    has_dimensions = True
    sample_rate = 16_000
    max_input_seconds = None  # any length; the analyzer's windows keep inputs short

    def __init__(self, model, model_id: str, device) -> None:
        self.model = model
        self.model_id = model_id
        self.device = device
        labels = tuple(model.cfg.labels)
        if labels != EMOTIONS:
            raise ModelNotAvailableError(f"{model_id}: the model's labels {labels} are not {EMOTIONS}; retrain it with `ser train`")
        self.emotions_supported = EMOTIONS

    def predict(self, waveforms: Sequence[np.ndarray]) -> Prediction:
        import torch

        from ser_tool.backends._torch import as_waveform_batch, forward_errors
        from ser_tool.train.model import MIN_SAMPLES

        batch = as_waveform_batch(waveforms, sample_rate=self.sample_rate, max_seconds=None, what=f"embedded model {self.model_id}")
        logits, dims = [], []
        with forward_errors(f"embedded model {self.model_id}"), torch.inference_mode():
            # One waveform at a time: the model normalises and pools over the whole input, so zero
            # padding to a common length would change its output.
            for wave in batch:
                if len(wave) < MIN_SAMPLES:
                    wave = np.pad(wave, (0, MIN_SAMPLES - len(wave)))
                lo, d = self.model(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None].to(self.device))
                logits.append(lo[0].float().cpu().numpy())
                dims.append(d[0].float().cpu().numpy())
        if not batch:
            return Prediction(np.zeros((0, len(EMOTIONS))), np.zeros((0, 3)))
        return Prediction(softmax(np.stack(logits).astype(np.float64)), np.stack(dims).astype(np.float64))


def load_embedded(model_dir: str | None = None, *, device: str = "cpu") -> Backend:
    from ser_tool.backends._torch import resolve_device
    from ser_tool.train.model import CONFIG_FILE, WEIGHTS_FILE, load_model

    directory = Path(model_dir).expanduser() if model_dir else default_model_dir()
    if not (directory / WEIGHTS_FILE).is_file() or not (directory / CONFIG_FILE).is_file():
        where = "the installed package" if model_dir is None else str(directory)
        raise ModelNotAvailableError(
            f"no embedded model in {where} (expected {WEIGHTS_FILE} and {CONFIG_FILE} in {directory}). "
            + ("Reinstall ser-tool, or train one with `ser train` and pass its folder with --model. "
               if model_dir is None else "Pass a folder written by `ser train`. ")
            + "Other backends: '--backend meralion' or '--backend hf --model PATH_OR_ID'."
        )
    torch_device = resolve_device(device)
    try:
        model = load_model(directory)
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        raise ModelNotAvailableError(f"the embedded model in {directory} could not be loaded ({e}); it may be corrupt or from another version - retrain or reinstall") from e
    model_id = "ser-tool/embedded" if model_dir is None else str(directory)
    return EmbeddedBackend(model.to(torch_device), model_id, torch_device)
