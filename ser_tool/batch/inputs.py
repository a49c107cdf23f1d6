"""What `ser batch` reads: the list of recordings behind its INPUT arguments.

An INPUT is an audio file, a folder (searched recursively), a glob, a manifest CSV (a `path` column;
its other columns travel with each recording into the output rows) or a text file listing paths (one
per line, `#` comments). Relative paths in a manifest or list are relative to that file's folder, as
in the corpus manifests under shared/data. Each recording is stat'ed here once: its absolute path,
size and modification time are the key that lets a rerun skip what is already done.
"""

from __future__ import annotations

import csv
import fnmatch
import glob
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ser_tool.access import AUDIO_EXTENSIONS
from ser_tool.errors import ConfigError

__all__ = ["MANIFEST_SUFFIXES", "LIST_SUFFIXES", "Recording", "Inputs", "collect_inputs"]

MANIFEST_SUFFIXES = frozenset({".csv"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
_GLOB_CHARS = frozenset("*?[")

Key = tuple[str, int | None, int | None]


@dataclass(frozen=True)
class Recording:
    """One recording to analyse. `size_bytes` and `mtime_ns` are None when the file could not be stat'ed
    (it will become a row with the error)."""

    path: str  # absolute
    source: str  # as the user named it: the argument, the manifest or list entry, or folder + relative path
    size_bytes: int | None
    mtime_ns: int | None
    extra: Mapping[str, str | None] = field(default_factory=dict, compare=False)  # manifest columns

    @property
    def key(self) -> Key:
        """What identifies a recording across runs: the same path with the same size and modification time."""
        return (self.path, self.size_bytes, self.mtime_ns)


@dataclass(frozen=True)
class Inputs:
    recordings: list[Recording]
    extra_columns: list[str]  # manifest columns other than `path`, in first-seen order


def collect_inputs(inputs: Sequence[str], pattern: str | None = None) -> Inputs:
    """Expand INPUT arguments into recordings, in order, each path once (the first mention wins).

    pattern: file-name glob for folders and glob arguments (e.g. '*.wav'); default: audio file extensions.
    Raises ConfigError for an argument that names nothing, an unreadable manifest or list, or a manifest
    without a `path` column.
    """
    if not inputs:
        raise ConfigError("no INPUT given: name audio files, folders, globs, a manifest CSV or a text file of paths")
    seen: dict[str, Recording] = {}
    columns: dict[str, None] = {}
    for arg in inputs:
        for source, path, extra in _expand(arg, pattern):
            for name in extra:
                columns.setdefault(name)
            full = os.path.abspath(os.path.expanduser(path))
            if full not in seen:
                seen[full] = _stat(full, source, extra)
    return Inputs(list(seen.values()), list(columns))


def _expand(arg: str, pattern: str | None) -> Iterable[tuple[str, str, dict[str, str | None]]]:
    path = Path(os.path.expanduser(arg))
    if path.is_dir():
        yield from ((str(p), str(p), {}) for p in _walk(path, pattern))
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix in MANIFEST_SUFFIXES:
            yield from _manifest(path)
        elif suffix in LIST_SUFFIXES:
            yield from _path_list(path)
        else:
            yield arg, arg, {}
    elif _GLOB_CHARS & set(arg):
        matches = sorted(glob.glob(os.path.expanduser(arg), recursive=True))
        found = False
        for m in matches:
            if os.path.isdir(m):
                if "**" in arg:  # `dir/**` also lists every file below, one by one
                    continue
                for p in _walk(Path(m), pattern):
                    found = True
                    yield str(p), str(p), {}
            elif _wanted(m, pattern):
                found = True
                yield m, m, {}
        if not found:
            raise ConfigError(f"{arg}: the pattern matched no audio files. Check the pattern (quote it so that "
                              "the shell does not expand it), or give a pattern for other file names")
    else:
        raise ConfigError(f"{arg}: no such file or folder. Name audio files, folders, globs, a manifest "
                          "CSV (with a 'path' column) or a text file listing paths")


def _wanted(name: str, pattern: str | None) -> bool:
    base = os.path.basename(name)
    return fnmatch.fnmatch(base, pattern) if pattern else os.path.splitext(base)[1].lower() in AUDIO_EXTENSIONS


def _walk(folder: Path, pattern: str | None) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(folder, onerror=None):
        dirs.sort()
        out.extend(Path(root) / f for f in sorted(files) if _wanted(f, pattern))
    return out


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read this {what} ({e}); it must be a readable UTF-8 text file") from None


def _resolve(base: Path, entry: str) -> str:
    entry = os.path.expanduser(entry)
    return entry if os.path.isabs(entry) else str(base / entry)


def _manifest(path: Path) -> Iterable[tuple[str, str, dict[str, str | None]]]:
    text = _read_text(path, "manifest")
    try:
        reader = csv.DictReader(text.splitlines())
        fields = reader.fieldnames or []
        if "path" not in fields:
            raise ConfigError(f"{path}: a manifest needs a 'path' column (found: {', '.join(fields) or 'no header'}). "
                              "Add one, or pass a .txt file with one path per line")
        others = [f for f in fields if f != "path" and f]
        rows = list(reader)
    except csv.Error as e:
        raise ConfigError(f"{path}: not a readable CSV file ({e})") from None
    base = path.parent
    for n, row in enumerate(rows, start=2):
        entry = (row.get("path") or "").strip()
        if not entry:
            raise ConfigError(f"{path}, line {n}: the 'path' cell is empty; every row needs the recording's path")
        yield entry, _resolve(base, entry), {k: (row.get(k) or None) for k in others}


def _path_list(path: Path) -> Iterable[tuple[str, str, dict[str, str | None]]]:
    base = path.parent
    for line in _read_text(path, "list of paths").splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            yield entry, _resolve(base, entry), {}


def _stat(full: str, source: str, extra: dict[str, str | None]) -> Recording:
    try:
        st = os.stat(full)
        size, mtime = (st.st_size, st.st_mtime_ns) if os.path.isfile(full) else (None, None)
    except OSError:
        size = mtime = None
    return Recording(full, source, size, mtime, extra)
