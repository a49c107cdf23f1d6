"""Files written whole: a reader, or a rerun after a kill, finds the old file or the new one, never half of one."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["leftover_temporaries", "replaced_atomically"]

_TEMPORARY = re.compile(r"\..+\.\d+-[0-9a-f]{8}\.tmp")  # replaced_atomically's names: .NAME.PID-HEX.tmp


@contextmanager
def replaced_atomically(path: str | Path, durable: bool = False) -> Iterator[Path]:
    """A fresh temporary path beside `path` for the block to write; when the block ends without an error it is
    renamed onto `path` (atomic within one file system), otherwise it is removed and `path` is left as it was.
    The block creates the file itself, so it gets the usual permissions (the umask's). OSError passes through.
    durable: the file's bytes and then the rename reach the disk before this returns (fsync), so a power cut
    cannot leave a renamed but empty file (what a batch job's part files need; a report can be written again).

        with replaced_atomically(folder / "model.safetensors") as tmp:
            save_file(state, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        try:
            _fsync(path.parent)
        except OSError:  # some file systems do not let a folder be fsynced; the rename is still atomic
            pass


def leftover_temporaries(folder: str | Path) -> list[Path]:
    """The temporary files of replaced_atomically in `folder` that a killed process left (a kill skips the cleanup).
    Only whoever alone writes the folder may remove them: another writer's may be in use."""
    return sorted(p for p in Path(folder).glob(".*.tmp") if _TEMPORARY.fullmatch(p.name))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
