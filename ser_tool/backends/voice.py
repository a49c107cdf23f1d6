"""The voice backend: frozen pretrained representation(s) + the voice head trained by `ser train --backbone`.

`model` is a folder written by `ser train --backbone REP[+REP]` (model.safetensors + config.json).
Each waveform is encoded at its real length (no padding to 30 s) by the representations named in the
config, their frames fused, and the head returns calibrated probabilities (the temperature fitted
on the dev speakers is part of the weights) and valence/arousal/dominance. Runs offline: the
representations' weights come from installed packages (`ser-tool[voice]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_tool.backends.base import Backend, Prediction, softmax
from ser_tool.errors import ModelNotAvailableError
from ser_tool.labels import EMOTIONS


class VoiceBackend:
    name = "voice"
    has_dimensions = True
    sample_rate = 16_000
    max_input_seconds = None

    def __init__(self, head, representations: Sequence, model_id: str) -> None:
        self.head = head
        self.representations = list(representations)
        self.model_id = model_id
        self.emotions_supported = EMOTIONS

    def frames(self, wave: np.ndarray) -> np.ndarray:
        parts = [r.frames(wave) if hasattr(r, "frames") else r.features(wave).frames for r in self.representations]
        t = min(len(p) for p in parts)
        return np.concatenate([p[:t] for p in parts], axis=1)

    def predict(self, waveforms: Sequence[np.ndarray]) -> Prediction:
        import torch

        from ser_tool.backends._torch import as_waveform_batch, forward_errors

        batch = as_waveform_batch(waveforms, sample_rate=self.sample_rate, max_seconds=None, what=f"voice model {self.model_id}")
        if not batch:
            return Prediction(np.zeros((0, len(EMOTIONS))), np.zeros((0, 3)))
        logits, dims = [], []
        with forward_errors(f"voice model {self.model_id}"), torch.inference_mode():
            for wave in batch:  # one at a time: the pooling covers the whole input, padding would change it
                lo, d = self.head(torch.from_numpy(self.frames(np.asarray(wave, dtype=np.float32)))[None])
                logits.append(lo[0].numpy())
                dims.append(d[0].numpy())
        return Prediction(softmax(np.stack(logits).astype(np.float64)), np.stack(dims).astype(np.float64))


def load_voice(model_dir: str | None = None, *, device: str = "cpu") -> Backend:
    from ser_tool.backends.voice_model import load_voice_head
    from ser_tool.representations import load_representation

    if not model_dir:
        raise ModelNotAvailableError("the 'voice' backend needs --model: a folder written by `ser train --backbone ...`")
    directory = Path(model_dir).expanduser()
    head, config = load_voice_head(directory)
    reps = [load_representation(n) for n in config["representations"]]
    trained_on = config.get("representation_ids") or {}
    stale = [r.name for r in reps if trained_on.get(r.name) not in (None, r.id)]
    if stale:
        raise ModelNotAvailableError(
            f"{directory} was trained on other versions of {', '.join(stale)} ({trained_on}); the installed ones are "
            f"{ {r.name: r.id for r in reps} }. Install the versions it was trained with, or retrain with `ser train --backbone`.")
    return VoiceBackend(head, reps, str(directory))
