"""Model backends behind one Protocol. Heavy imports (torch, transformers) happen inside each loader."""

from __future__ import annotations

from collections.abc import Mapping

from ser_tool.backends.base import Backend, LabelProjection, Prediction
from ser_tool.errors import ConfigError

BACKENDS: tuple[str, ...] = ("embedded", "meralion", "hf", "voice")

__all__ = ["BACKENDS", "Backend", "LabelProjection", "Prediction", "load_backend"]


def load_backend(
    name: str,
    *,
    model: str | None = None,
    device: str = "cpu",
    offline: bool = False,
    label_map: Mapping[str, str | None] | None = None,
    trust_remote_code: bool = False,
    threads: int | None = None,
) -> Backend:
    """Load a backend by name.

    threads: torch CPU threads for the process (torch.set_num_threads). None = the backend's choice:
    1 for the embedded model (it is small; on a busy machine extra threads only wait on each other,
    measured 19 ms vs 263 ms per 10-s window with 2 threads under load), torch's default otherwise.

    model: hub id or local directory (meralion/hf); the embedded backend takes an optional directory
    of weights. offline: never contact the hub (local files and cache only). label_map: extra
    model-label -> emotion mapping for `hf` (None as a value drops that label).
    """
    if threads is None and name in ("embedded", "voice"):
        threads = 1
    if threads is not None:
        from ser_tool.backends._torch import set_threads

        set_threads(threads)
    if name == "embedded":
        from ser_tool.backends.embedded import load_embedded

        return load_embedded(model, device=device)
    if name == "voice":
        from ser_tool.backends.voice import load_voice

        return load_voice(model, device=device)
    if name == "meralion":
        from ser_tool.backends.meralion import load_meralion

        return load_meralion(model, device=device, offline=offline)
    if name == "hf":
        if not model:
            raise ConfigError("the 'hf' backend needs a model: pass --model with a Hugging Face id or a local directory")
        from ser_tool.backends.hf import load_hf

        return load_hf(model, device=device, offline=offline, label_map=label_map, trust_remote_code=trust_remote_code)
    raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
