"""The contract between the analyzer and every model: a pure function of 16 kHz waveforms.

A backend knows nothing of files, segments or reports. It receives a batch of mono float32
waveforms at `sample_rate` and returns probabilities over EMOTIONS (in that order) and, when the
model has a dimensional head, valence/arousal/dominance in 0..1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ser_tool.errors import BackendError, ConfigError, ModelNotAvailableError
from ser_tool.labels import EMOTIONS, label_index_map
from ser_tool.representations.base import check_precision


# The backend every entry point uses unless told otherwise: the voice heads shipped in ser_tool/models/voice
# (Whisper-tiny.en's middle layers; its weights are a core dependency), chosen by issue 11's rule (the model card).
# The compact model that ran before it stays available as "embedded".
DEFAULT_BACKEND = "voice"


@dataclass(frozen=True)
class BackendSpec:
    """How to load a backend: the one declaration of backend parameters.

    `load_backend(spec)` hands it to the chosen backend's loader, which reads the fields it uses;
    an Analyzer keeps it to load lazily, on first use.
    """

    name: str = DEFAULT_BACKEND  # "voice" | "embedded" | "meralion" | "hf"
    model: str | None = None  # hub id or local directory (meralion, hf); a `ser train` folder (embedded)
    device: str = "cpu"  # cpu, cuda, cuda:N, mps or auto
    offline: bool = False  # never contact the hub: local files and the cache only
    label_map: Mapping[str, str | None] | None = None  # hf: extra model-label -> emotion (None drops the label)
    trust_remote_code: bool = False  # hf: allow the checkpoint's own Python code to run
    # torch CPU threads while this backend runs a forward pass; the previous count is restored after
    # each one, so the setting never leaks into other backends or the host program. None = the
    # backend's default: 1 for the embedded and voice models, the caller's count for the others.
    threads: int | None = None
    # voice: the precision of its Whisper encoders' projections - "auto" (bfloat16 on a CPU that multiplies it
    # natively, float32 elsewhere), "float32" or "bfloat16"; the other backends and representations ignore it
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be at least 1, got {self.threads}")
        check_precision(self.precision)


@dataclass(frozen=True)
class Prediction:
    """Model output for a batch of B waveforms."""

    probabilities: np.ndarray  # (B, 7) float, rows sum to 1, columns in EMOTIONS order
    dimensions: np.ndarray | None = None  # (B, 3) float in 0..1: valence, arousal, dominance
    unmapped: np.ndarray | None = None  # (B,) raw probability mass on labels outside EMOTIONS

    def __post_init__(self) -> None:
        p = self.probabilities
        if p.ndim != 2 or p.shape[1] != len(EMOTIONS):
            raise BackendError(f"backend returned probabilities of shape {p.shape}, expected (batch, {len(EMOTIONS)})")
        if not np.all(np.isfinite(p)):
            raise BackendError("backend returned non-finite probabilities; the model or its input is broken")
        if self.dimensions is not None and self.dimensions.shape != (p.shape[0], 3):
            raise BackendError(f"backend returned dimensions of shape {self.dimensions.shape}, expected ({p.shape[0]}, 3)")


@runtime_checkable
class Backend(Protocol):
    """What the analyzer needs from a model."""

    name: str  # "embedded" | "meralion" | "hf"
    model_id: str
    sample_rate: int
    emotions_supported: tuple[str, ...]  # subset of EMOTIONS the model can put probability on
    has_dimensions: bool
    max_input_seconds: float | None  # longest waveform the model takes in one piece (None: no limit)
    # True when the model scales each input itself so that its volume does not matter (e.g. wav2vec2's
    # zero-mean unit-variance input). False: the analyzer first brings every input to `input_level_db`,
    # the active speech level (dBFS) the model reads best (ser_tool.level.model_inputs). A backend
    # without these attributes is normalised to ser_tool.level.TARGET_DB.
    normalises_input: bool
    input_level_db: float

    def predict(self, waveforms: Sequence[np.ndarray]) -> Prediction: ...


@dataclass(frozen=True)
class LabelProjection:
    """Folds a model's own label set onto EMOTIONS.

    Several model labels may land on one emotion (e.g. 'calm' and 'neutral'); their probabilities add.
    Labels with no counterpart are dropped and the rest renormalised; the dropped mass is reported
    per input as `unmapped` so a report can say how much the model thought was 'other'.
    """

    model_labels: tuple[str, ...]
    targets: tuple[int | None, ...]

    @classmethod
    def from_labels(cls, labels: Sequence[str], overrides: Mapping[str, str | None] | None = None) -> LabelProjection:
        targets = tuple(label_index_map(labels, overrides))
        if all(t is None for t in targets):
            raise ModelNotAvailableError(
                f"none of the model's labels {list(labels)} map onto the emotions {list(EMOTIONS)}; "
                "give a label map such as 'joy=happy,rage=angry' to say which label is which", setting="label_map"
            )
        return cls(tuple(labels), targets)

    @property
    def emotions_supported(self) -> tuple[str, ...]:
        present = {t for t in self.targets if t is not None}
        return tuple(EMOTIONS[i] for i in range(len(EMOTIONS)) if i in present)

    @property
    def has_unmapped(self) -> bool:
        return any(t is None for t in self.targets)

    def project(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """raw: (B, n_model_labels) probabilities -> ((B, 7) renormalised, (B,) unmapped mass or None)."""
        if raw.ndim != 2 or raw.shape[1] != len(self.targets):
            raise BackendError(f"model returned {raw.shape[-1]} scores but its config names {len(self.targets)} labels")
        out = np.zeros((raw.shape[0], len(EMOTIONS)), dtype=np.float64)
        for j, t in enumerate(self.targets):
            if t is not None:
                out[:, t] += raw[:, j]
        kept = out.sum(axis=1, keepdims=True)
        unmapped = np.clip(1.0 - kept[:, 0], 0.0, 1.0) if self.has_unmapped else None
        # A row whose whole mass went to unmapped labels carries no information: spread it evenly over
        # the supported emotions so that its confidence comes out as 0, not as a spurious certainty.
        support = np.zeros(len(EMOTIONS))
        for t in self.targets:
            if t is not None:
                support[t] = 1.0
        empty = kept[:, 0] <= 1e-12
        out[empty] = support / support.sum()
        kept[empty] = 1.0
        return out / kept, unmapped


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
