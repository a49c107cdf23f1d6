"""The compact model that ships inside the package (trained by `ser train`): offline, CPU-fast.

Weights live in ser_tool/models/embedded/ (model.safetensors + config.json + MODEL_CARD.md); the
architecture is ser_tool.backends.compact. `model` may point at another directory written by
`ser train`, e.g. a model fine-tuned on your data. Loading and running it needs torch, not transformers.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ser_tool.backends.base import Backend, Prediction, softmax
from ser_tool.errors import Hint, ModelNotAvailableError
from ser_tool.labels import EMOTIONS

if TYPE_CHECKING:
    from ser_tool.backends.base import BackendSpec

DEFAULT_MODEL_DIR = "models/embedded"

# The model is small: one thread per forward pass is as fast as several on an idle machine, and on a
# busy one extra threads only wait on each other (measured 19 ms vs 263 ms per 10-s window with 2
# threads under load). Used when the BackendSpec names no thread count.
DEFAULT_THREADS = 1


def default_model_dir() -> Path:
    return Path(str(resources.files("ser_tool") / DEFAULT_MODEL_DIR))


class EmbeddedBackend:
    name = "embedded"
    has_dimensions = True
    sample_rate = 16_000
    max_input_seconds = None  # any length; the analyzer's windows keep inputs short
    # Its log-mel front end removes each band's mean, but the log's floor still lets the input level
    # through (a -12 dB copy of a clip read differently), so the analyzer normalises loudness first. The
    # level is the one that keeps its accuracy: chosen on the dev speakers of its training corpora
    # (UAR flat from -36 to -44 dBFS, lower above -33; README, "Loudness").
    normalises_input = False
    input_level_db = -40.0

    def __init__(self, model, model_id: str, device, threads: int | None = DEFAULT_THREADS) -> None:
        self.model = model
        self.model_id = model_id
        self.device = device
        self.threads = threads  # torch CPU threads during predict (None: the caller's count)
        labels = tuple(model.cfg.labels)
        if labels != EMOTIONS:
            raise ModelNotAvailableError(f"{model_id}: the model's labels {labels} are not {EMOTIONS}; retrain it with `ser train`")
        self.emotions_supported = EMOTIONS

    def predict(self, waveforms: Sequence[np.ndarray]) -> Prediction:
        import torch

        from ser_tool.backends._torch import as_waveform_batch, forward_errors, torch_threads
        from ser_tool.backends.compact import MIN_SAMPLES

        batch = as_waveform_batch(waveforms, sample_rate=self.sample_rate, max_seconds=None, what=f"embedded model {self.model_id}")
        logits, dims = [], []
        with torch_threads(self.threads), forward_errors(f"embedded model {self.model_id}"), torch.inference_mode():
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


def load_embedded(spec: BackendSpec) -> Backend:
    """Load the shipped model (spec.model None) or a folder written by `ser train` (spec.model)."""
    from ser_tool.backends._torch import resolve_device
    from ser_tool.backends.compact import CONFIG_FILE, WEIGHTS_FILE, load_model

    model_dir = spec.model
    directory = Path(model_dir).expanduser() if model_dir else default_model_dir()
    if not (directory / WEIGHTS_FILE).is_file() or not (directory / CONFIG_FILE).is_file():
        where = "the installed package" if model_dir is None else str(directory)
        raise ModelNotAvailableError(
            f"no embedded model in {where} (expected {WEIGHTS_FILE} and {CONFIG_FILE} in {directory}). "
            + ("Reinstall ser-tool, or train one with `ser train` and give its folder as the model; "
               if model_dir is None else "Give a folder written by `ser train` as the model; ")
            + "or use another backend: 'meralion', or 'hf' with a model (a hub id or a local folder)",
            hints=(Hint("model"), Hint("backend")),
        )
    torch_device = resolve_device(spec.device)
    try:
        model = load_model(directory)
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        raise ModelNotAvailableError(f"the embedded model in {directory} could not be loaded ({e}); it may be corrupt or from another version - retrain or reinstall") from e
    model_id = "ser-tool/embedded" if model_dir is None else str(directory)
    threads = DEFAULT_THREADS if spec.threads is None else spec.threads
    return EmbeddedBackend(model.to(torch_device), model_id, torch_device, threads)
