"""The compact model that ships inside the package (trained by `ser train`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ser_tool.backends.base import Backend
from ser_tool.errors import ModelNotAvailableError

DEFAULT_MODEL_DIR = "models/embedded"


def default_model_dir() -> Path:
    return Path(str(resources.files("ser_tool") / DEFAULT_MODEL_DIR))


def load_embedded(model_dir: str | None = None, *, device: str = "cpu") -> Backend:
    directory = Path(model_dir) if model_dir else default_model_dir()
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise ModelNotAvailableError(
            f"no embedded model weights at {weights}. This version of ser-tool does not bundle its own model "
            "yet. Use another backend: '--backend meralion' (MERaLiON-SER-v1, downloaded from the Hugging Face "
            "hub once) or '--backend hf --model PATH_OR_ID' (any audio-classification checkpoint)."
        )
    raise ModelNotAvailableError(f"found {weights}, but this version of ser-tool cannot load embedded models yet")
