"""Model backends behind one Protocol. Heavy imports (torch, transformers) happen inside each loader:
the voice model (the default, DEFAULT_BACKEND) and the embedded model need torch only, the meralion and hf
backends torch and transformers.
"""

from __future__ import annotations

from ser_tool.backends.base import DEFAULT_BACKEND, Backend, BackendSpec, LabelProjection, Prediction
from ser_tool.errors import ConfigError

BACKENDS: tuple[str, ...] = ("embedded", "meralion", "hf", "voice")

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "BackendSpec", "LabelProjection", "Prediction", "load_backend"]


def load_backend(spec: BackendSpec | str = DEFAULT_BACKEND, **options) -> Backend:
    """Load a backend from its BackendSpec, or from a name and BackendSpec's fields as keywords.

    `load_backend("hf", model="superb/wav2vec2-base-superb-er")` is
    `load_backend(BackendSpec("hf", model="superb/wav2vec2-base-superb-er"))`; the fields are documented
    on BackendSpec. The spec's `threads` applies to this backend's forward passes only: loading a
    backend does not change torch's thread count for the process.
    """
    if isinstance(spec, str):
        spec = BackendSpec(spec, **options)
    elif options:
        raise ConfigError("pass backend options either in the BackendSpec or as keywords with a backend name, not both")
    if spec.name == "embedded":
        from ser_tool.backends.embedded import load_embedded

        return load_embedded(spec)
    if spec.name == "voice":
        from ser_tool.backends.voice import load_voice

        return load_voice(spec)
    if spec.name == "meralion":
        from ser_tool.backends.meralion import load_meralion

        return load_meralion(spec)
    if spec.name == "hf":
        from ser_tool.backends.hf import load_hf

        return load_hf(spec)
    raise ConfigError(f"unknown backend {spec.name!r}; choose one of {', '.join(BACKENDS)}")
