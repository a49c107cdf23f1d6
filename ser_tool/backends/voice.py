"""The voice backend: frozen pretrained representation(s) + the voice head trained by `ser train --backbone`.

`model` is a folder written by `ser train --backbone REP[+REP]` (model.safetensors + config.json); without
one, the head shipped in ser_tool/models/voice.
Each waveform is encoded at its real length (no padding to 30 s) by the representations named in the
config, their frames fused, and the head returns calibrated probabilities (its prior shift and the temperature
fitted on the dev speakers are part of the weights) and valence/arousal/dominance. Runs offline: the
representations' weights come from installed packages (the shipped head's Whisper-tiny.en with ser-tool itself; the
other representations from `ser-tool[voice]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ser_tool.backends.base import Backend, Prediction, softmax
from ser_tool.errors import Hint, ModelNotAvailableError
from ser_tool.labels import EMOTIONS
from ser_tool.level import TARGET_DB

if TYPE_CHECKING:
    from ser_tool.backends.base import BackendSpec

# The head is small and the representations run one clip at a time, like the embedded model: one
# thread per forward pass unless the BackendSpec names a count (see ser_tool.backends.embedded).
DEFAULT_THREADS = 1


class VoiceBackend:
    name = "voice"
    has_dimensions = True
    sample_rate = 16_000
    max_input_seconds = None
    # Not level-invariant as a whole: Resemblyzer only raises quiet audio (to -30 dBFS RMS, never lowers
    # it), and the Whisper log-mel and the prosody energy track read the absolute level. So the analyzer
    # brings every input to one active speech level first (input_level_db, set per model), and `ser train
    # --backbone` encodes its training clips at that same level (VoiceTrainConfig.input_level_db).
    normalises_input = False

    def __init__(self, head, representations: Sequence, model_id: str, threads: int | None = DEFAULT_THREADS,
                 device: object = "cpu", input_level_db: float | None = TARGET_DB) -> None:
        self.head = head
        self.representations = list(representations)
        self.model_id = model_id
        self.threads = threads  # torch CPU threads during predict (None: the caller's count)
        self.device = device  # where the head runs (a torch.device); the representations were loaded for it too
        self.emotions_supported = EMOTIONS
        # the level the head was trained at (its config's input_level_db); None: a head trained on the corpora's
        # own levels (older folders), which still gets the shared level
        self.input_level_db = TARGET_DB if input_level_db is None else float(input_level_db)

    def frames(self, wave: np.ndarray) -> np.ndarray:
        parts = [r.frames(wave) if hasattr(r, "frames") else r.features(wave).frames for r in self.representations]
        t = min(len(p) for p in parts)
        return np.concatenate([p[:t] for p in parts], axis=1)

    def predict(self, waveforms: Sequence[np.ndarray]) -> Prediction:
        import torch

        from ser_tool.backends._torch import as_waveform_batch, forward_errors, torch_threads

        batch = as_waveform_batch(waveforms, sample_rate=self.sample_rate, max_seconds=None, what=f"voice model {self.model_id}")
        if not batch:
            return Prediction(np.zeros((0, len(EMOTIONS))), np.zeros((0, 3)))
        logits = np.zeros((len(batch), len(EMOTIONS)))
        dims = np.zeros((len(batch), 3))
        with torch_threads(self.threads), forward_errors(f"voice model {self.model_id}"), torch.inference_mode():
            frames = [self.frames(wave) for wave in batch]  # each at its real length
            # the head pools over its whole input, so padding would change it: inputs of one length (the full windows
            # of a long recording) share one pass, which gives each what it would get alone
            by_length: dict[int, list[int]] = {}
            for i, f in enumerate(frames):
                by_length.setdefault(len(f), []).append(i)
            for same in by_length.values():
                lo, d = self.head(torch.from_numpy(np.stack([frames[i] for i in same])).to(self.device))
                logits[same] = lo.cpu().numpy()
                dims[same] = d.cpu().numpy()
        return Prediction(softmax(logits), dims)


def shipped_model_dir() -> Path:
    """The voice head that installs with the package (ser_tool/models/voice; its MODEL_CARD.md says how it was
    trained and measured). Its encoder's weights, Whisper-tiny.en's, install with ser-tool."""
    from importlib import resources

    return Path(str(resources.files("ser_tool") / "models" / "voice"))


def load_voice(spec: BackendSpec) -> Backend:
    """Load the voice head in spec.model (a folder written by `ser train` with a backbone; default: the shipped
    head, shipped_model_dir()) and its representations,
    all on spec.device: the head and Resemblyzer through torch, whisper-base through CTranslate2 (CPU or CUDA;
    another device is refused with a ConfigError before anything loads), prosody in NumPy on the CPU."""
    from ser_tool.backends._torch import resolve_device
    from ser_tool.backends.voice_model import load_voice_head
    from ser_tool.representations import load_representation

    model_dir = spec.model or (shipped_model_dir() if (shipped_model_dir() / "config.json").is_file() else None)
    if not model_dir:
        raise ModelNotAvailableError(
            "the 'voice' backend needs a model: the folder written by `ser train` with a backbone "
            "(resemblyzer, whisper-base, whisper-base-mid, whisper-tiny-en-mid, prosody, hf-whisper:FOLDER_OR_HUB_ID or several joined by '+')", hints=(Hint("model"),))
    device = resolve_device(spec.device)
    directory = Path(model_dir).expanduser()
    head, config = load_voice_head(directory)
    reps = [load_representation(n, **_on(device, n, spec.precision)) for n in config["representations"]]
    trained_on = config.get("representation_ids") or {}
    stale = [r.name for r in reps if trained_on.get(r.name) not in (None, r.id)]
    if stale:
        raise ModelNotAvailableError(
            f"{directory} was trained on other versions of {', '.join(stale)} ({trained_on}); the installed ones are "
            f"{ {r.name: r.id for r in reps} }. Install the versions it was trained with, or retrain it with `ser train` on the same backbone.")
    threads = DEFAULT_THREADS if spec.threads is None else spec.threads
    model_id = "ser-tool/voice" if spec.model is None else str(directory)  # the shipped head, or the folder given
    return VoiceBackend(head.to(device), reps, model_id, threads, device, config.get("input_level_db"))


def _on(device, representation: str, precision: str = "auto") -> dict:
    """The keywords that put `representation` on `device` (prosody is NumPy: the CPU, whatever the device), and
    give the torch Whisper encoders their precision (CTranslate2's whisper-base keeps its own)."""
    from ser_tool.representations import TORCH_WHISPER
    from ser_tool.representations.hf_whisper import PREFIX

    if representation == "prosody":
        return {}
    if representation in TORCH_WHISPER or representation.startswith(PREFIX):
        return {"device": device, "precision": precision}
    return {"device": device}
