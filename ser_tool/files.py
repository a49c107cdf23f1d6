"""Files written whole: a reader, or a rerun after a kill, finds the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replaced_atomically"]


@contextmanager
def replaced_atomically(path: str | Path) -> Iterator[Path]:
    """A fresh temporary path beside `path` for the block to write; when the block ends without an error it is
    renamed onto `path` (atomic within one file system), otherwise it is removed and `path` is left as it was.
    The block creates the file itself, so it gets the usual permissions (the umask's). OSError passes through.

        with replaced_atomically(folder / "model.safetensors") as tmp:
            save_file(state, tmp)
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
