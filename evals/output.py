"""Writing an evaluation's files. A disk that is full, a read-only or unwritable folder, or a file where a
folder should be becomes an `OutputError` that says what to do, never a traceback; and `ensure_writable`
checks an output folder before a long run starts, not after it ends."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from ser_tool.errors import SERError
from ser_tool.files import replaced_atomically

__all__ = ["OutputError", "ensure_writable", "output_error", "write_atomic"]

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a file is in the way where a folder should be",
    errno.EEXIST: "a file is in the way where a folder should be",
    errno.EISDIR: "a folder is in the way where a file should be",
    errno.ENAMETOOLONG: "the path is too long",
}


class OutputError(SERError):
    """An evaluation's files (report, chart, call cache) could not be written."""


def output_error(e: OSError, path: str | Path, what: str, flag: str = "--out") -> OutputError:
    """`e` (raised while writing `what` at `path`) as an OutputError naming the cause and the way out."""
    reason = _REASONS.get(e.errno) or e.strerror or f"{type(e).__name__}: {e}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = f"free some space, or write to another disk with {flag} DIR"
    else:
        advice = f"choose a folder you can write to with {flag} DIR"
    return OutputError(f"cannot write {what} at {path} ({reason}); {advice}")


def ensure_writable(folder: str | Path, what: str, flag: str = "--out") -> Path:
    """Create `folder` if needed and prove a file can be written in it (then removed); raises OutputError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise output_error(e, folder, what, flag) from None
    return folder


def write_atomic(path: str | Path, text: str, what: str, flag: str = "--out") -> Path:
    """Write `text` to `path` whole (ser_tool.files.replaced_atomically): a reader (or a rerun after a kill) sees
    the old file or the new one, never half of one. Raises OutputError."""
    path = Path(path)
    try:
        with replaced_atomically(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as e:
        raise output_error(e, path, what, flag) from None
    return path
