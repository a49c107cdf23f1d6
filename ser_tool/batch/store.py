"""The output folder of `ser batch`: part files written atomically, read back to resume, and summary.json.

Crash safety comes from three rules. A part is written to a hidden temporary file, flushed to disk and
renamed into place, so a part file either holds complete rows or does not exist; a killed run loses at
most the rows it had not yet written (one part, or `part_seconds` of work). A rerun reads the keys
(path, size, mtime) of every row in every part and skips those recordings, so nothing is analysed or
written twice. And one lock file keeps a second job from writing into the same folder at once.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ser_tool.batch.rows import KEY_COLUMNS, rows_to_table
from ser_tool.errors import ConfigError, SERError
from ser_tool.files import leftover_temporaries, replaced_atomically

__all__ = ["FORMATS", "OutputStore", "part_files", "read_rows", "read_table"]

FORMATS = {"parquet": ".parquet", "jsonl": ".jsonl"}
SUMMARY = "summary.json"
LOCK = ".ser-batch.lock"
_OLD_TMP_PREFIX = ".tmp-"  # the temporary files of versions before ser_tool.files wrote the parts
_TOTAL_COLUMNS = (*KEY_COLUMNS, "duration", "speech_duration", "emotion", "error_type", "backend", "model_id")

Key = tuple[str, int | None, int | None]


def part_files(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """The finished part files in `folder`, by format, in name (= time) order."""
    folder = Path(folder)
    return {fmt: sorted(folder.glob(f"part-*{suffix}")) for fmt, suffix in FORMATS.items()}


def _require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError("ser batch writes Parquet with pyarrow, which is not installed: "
                          "pip install -e '.[batch]' (or pyarrow)") from None


def _read_part(path: Path, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            names = [c for c in columns if c in table.column_names] if columns else table.column_names
            return table.select(names).to_pylist()
        rows = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    rows.append({c: row.get(c) for c in columns} if columns else row)
        return rows
    except Exception as e:  # pyarrow and json raise many kinds; all mean the same thing here
        raise ConfigError(f"{path}: cannot read this part file ({type(e).__name__}: {e}). It was not written by "
                          "ser batch, or was damaged after it was written; move it away (its recordings are then "
                          "analysed again) and rerun") from None


def read_rows(folder: str | os.PathLike, columns: Sequence[str] | None = None, latest: bool = True) -> list[dict[str, Any]]:
    """Every row in the part files of a `ser batch` output folder (Parquet and JSONL alike).

    latest: keep one row per path, the newest (a recording that changed on disk and was analysed again).
    """
    _require_pyarrow()
    files = [p for ps in part_files(folder).values() for p in ps]
    rows = [row for p in sorted(files, key=lambda p: p.name) for row in _read_part(p, columns)]
    if not latest:
        return rows
    by_path: dict[str, dict[str, Any]] = {}
    for row in rows:  # parts sort by time, so a later row replaces an earlier one
        by_path.pop(row.get("path"), None)
        by_path[row.get("path")] = row
    return list(by_path.values())


def read_table(folder: str | os.PathLike, latest: bool = True):
    """The rows of a `ser batch` folder as one pyarrow Table (`.to_pandas()` for a DataFrame): the row
    columns (with the speaker columns when any row has them), then every manifest column any part has.
    latest: as in read_rows."""
    from ser_tool.batch.rows import ROW_FIELDS, SPEAKER_FIELDS

    rows = read_rows(folder, latest=latest)
    extra = list(dict.fromkeys(k for r in rows for k in r if k not in ROW_FIELDS and k not in SPEAKER_FIELDS))
    return rows_to_table(rows, extra)


class OutputStore:
    """Writes rows into part files in `folder`; knows which recordings earlier runs finished."""

    def __init__(self, folder: str | os.PathLike, fmt: str = "parquet", *, part_rows: int = 500,
                 part_seconds: float = 60.0, extra_columns: Sequence[str] = ()) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}")
        if part_rows < 1 or not part_seconds > 0:
            raise ConfigError("part_rows must be at least 1 and part_seconds positive")
        self.folder = Path(folder)
        self.fmt = fmt
        self.part_rows = part_rows
        self.part_seconds = part_seconds
        self.extra_columns = list(extra_columns)
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self._buffer: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()
        self._seq = 0
        self._lock_fd: int | None = None
        self.done: dict[Key, str | None] = {}  # key -> error_type (None when analysed)
        self.totals: Counter = Counter()
        self.emotions: Counter = Counter()
        self.errors: Counter = Counter()
        self.models: Counter = Counter()
        self.parts = 0

    # -- opening: lock, clean up, read what is done --------------------------------------------------
    def open(self) -> OutputStore:
        _require_pyarrow()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create the output folder {self.folder} ({e.strerror}); choose another output folder") from None
        if not os.access(self.folder, os.W_OK):
            raise ConfigError(f"the output folder {self.folder} is not writable; choose another output folder")
        self._lock()
        # parts a killed run was writing: incomplete by definition, and no one else writes here (the lock)
        for stale in [*leftover_temporaries(self.folder), *self.folder.glob(_OLD_TMP_PREFIX + "*")]:
            stale.unlink(missing_ok=True)
        parts = part_files(self.folder)
        other = next((f for f, ps in parts.items() if ps and f != self.fmt), None)
        if other:
            raise ConfigError(f"{self.folder} already holds {other} parts from an earlier run; rerun with "
                              f"the {other} format to resume it, or write {self.fmt} into another output folder")
        for path in parts[self.fmt]:
            for row in _read_part(path, _TOTAL_COLUMNS):
                self._count(row)
            self.parts += 1
        return self

    def _lock(self) -> None:
        import fcntl

        fd = os.open(self.folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(f"another ser batch job is writing into {self.folder}; wait for it to finish, "
                              "or give this one another output folder") from None
        self._lock_fd = fd

    def _count(self, row: Mapping[str, Any]) -> None:
        key = (row["path"], row.get("size_bytes"), row.get("mtime_ns"))
        self.done[key] = row.get("error_type")
        self.totals["rows"] += 1
        if row.get("error_type"):
            self.totals["failed"] += 1
            self.errors[row["error_type"]] += 1
        else:
            self.totals["ok"] += 1
            self.totals["audio_seconds"] += row.get("duration") or 0.0
            self.totals["speech_seconds"] += row.get("speech_duration") or 0.0
            self.emotions[row.get("emotion")] += 1
        if row.get("model_id"):
            self.models[f"{row.get('backend')}: {row['model_id']}"] += 1

    # -- writing ---------------------------------------------------------------------------------------
    def add(self, row: dict[str, Any]) -> Path | None:
        """Queue one finished row; a part is written (and returned) when enough rows or seconds have gathered."""
        self._buffer.append(row)
        self._count(row)
        if len(self._buffer) >= self.part_rows or time.monotonic() - self._last_flush >= self.part_seconds:
            return self.flush()
        return None

    def flush(self) -> Path | None:
        """Write the queued rows as one part file (temp file, fsync, rename); None when nothing was queued."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return None
        name = f"part-{self.run_id}-{self._seq:05d}{FORMATS[self.fmt]}"
        final = self.folder / name
        try:
            with replaced_atomically(final, durable=True) as tmp:
                if self.fmt == "parquet":
                    import pyarrow.parquet as pq

                    pq.write_table(rows_to_table(self._buffer, self.extra_columns), tmp, compression="zstd")
                else:
                    with tmp.open("w", encoding="utf-8") as f:
                        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in self._buffer)
        except OSError as e:
            raise SERError(f"cannot write {final} ({e.strerror or e}); {len(self._buffer)} finished row(s) were not "
                           "saved. Free disk space (or fix the folder's permissions) and rerun the same command: "
                           "it continues after the parts already written") from None
        self._buffer.clear()
        self._seq += 1
        self.parts += 1
        return final

    def write_summary(self, run: Mapping[str, Any]) -> Path:
        """summary.json: totals over every row in the folder, plus what the latest run did."""
        t = self.totals
        summary = {
            "folder": str(self.folder.resolve()),
            "format": self.fmt,
            "parts": self.parts,
            "rows": t["rows"],
            "analysed": t["ok"],
            "failed": t["failed"],
            "audio_hours": round(t["audio_seconds"] / 3600, 4),
            "speech_hours": round(t["speech_seconds"] / 3600, 4),
            "emotions": dict(self.emotions.most_common()),
            "errors": dict(self.errors.most_common()),
            "models": dict(self.models.most_common()),
            "last_run": dict(run),
        }
        path = self.folder / SUMMARY
        try:
            with replaced_atomically(path) as tmp:
                tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as e:
            raise SERError(f"cannot write {path} ({e.strerror or e}); the finished rows are saved in the part files. "
                           "Free disk space (or fix the folder's permissions) and rerun the same command: it continues "
                           "after the parts already written and writes the summary") from None
        return path

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def __enter__(self) -> OutputStore:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def pending(recordings: Iterable, done: Mapping[Key, Any]) -> list:
    """The recordings whose key no earlier row holds."""
    return [r for r in recordings if r.key not in done]
