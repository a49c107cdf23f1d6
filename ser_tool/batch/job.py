"""One `ser batch` job: inputs -> what is not yet done -> an engine -> rows -> part files + summary.json."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ser_tool.analyzer import AnalysisOptions, Analyzer
from ser_tool.backends import BackendSpec
from ser_tool.batch.inputs import Recording, collect_inputs
from ser_tool.batch.rows import ROW_FIELDS, SPEAKER_FIELDS, row_fields
from ser_tool.batch.store import OutputStore, pending
from ser_tool.errors import ConfigError

__all__ = ["ENGINES", "AnalyzerFactory", "BatchResult", "Progress", "StopRequest", "available_cores", "run_batch"]

ENGINES = ("local", "ray")


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class AnalyzerFactory:
    """Builds an Analyzer inside a worker: picklable, so it travels to spawned processes and Ray actors."""

    spec: BackendSpec
    options: AnalysisOptions

    def __call__(self) -> Analyzer:
        return Analyzer(self.spec, self.options)


@dataclass(frozen=True)
class BatchResult:
    """What one run did. `failed_inputs` counts this job's recordings whose row in the folder holds an
    error, whichever run wrote it (so a rerun that skips everything reports the same failures)."""

    total: int
    skipped: int
    processed: int
    failed: int
    failed_inputs: int
    audio_seconds: float
    wall_seconds: float
    interrupted: bool
    summary: dict[str, Any]


class Progress:
    """Hooks the job calls: start(todo, skipped) once, row(row) per finished recording, close()."""

    def start(self, todo: int, skipped: int) -> None: ...

    def row(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class StopRequest:
    """A stop asked for by a signal (Ctrl-C, `kill`), which the job honours after the row in hand.

    Python raises a signal handler's KeyboardInterrupt wherever the main thread is, and one raised
    while a destructor runs is printed and dropped, so a stop that only raised could be lost and the
    job would run to the end. The handler therefore records the stop, and raises only while the job
    waits for its next row (to end a long wait); the loop checks the record before each row.
    """

    def __init__(self) -> None:
        self.requested = False
        self._waiting = False

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        if self._waiting:
            raise KeyboardInterrupt

    def each(self, rows: Iterable[Any]) -> Iterator[Any]:
        """The items of `rows` until a stop is requested (then KeyboardInterrupt, as an interrupted wait raises)."""
        it = iter(rows)
        while True:
            if self.requested:
                raise KeyboardInterrupt
            self._waiting = True
            try:
                item = next(it)
            except StopIteration:
                return
            finally:
                self._waiting = False
            yield item


def per_worker_spec(spec: BackendSpec, workers: int) -> BackendSpec:
    """Share the cores: a model whose thread count is unset gets cores / workers threads in each worker."""
    if spec.threads is not None or spec.name == "embedded":  # the embedded model runs on one thread already
        return spec
    return dataclasses.replace(spec, threads=max(1, available_cores() // max(1, workers)))


def run_batch(
    inputs: Sequence[str],
    out: str | os.PathLike,
    *,
    spec: BackendSpec,
    options: AnalysisOptions | None = None,
    pattern: str | None = None,
    fmt: str = "parquet",
    engine: str = "local",
    workers: int | None = None,
    address: str | None = None,
    part_rows: int = 500,
    part_seconds: float = 60.0,
    progress: Progress | None = None,
    make_analyzer: Callable[[], Any] | None = None,
    stop: StopRequest | None = None,
) -> BatchResult:
    """Analyse every recording named by `inputs` that `out` does not already hold; write rows and summary.json.

    Bad recordings become rows with an `error`. Raises ConfigError (bad inputs or folder) and
    ModelNotAvailableError (the model cannot be loaded). KeyboardInterrupt stops the job after the
    finished rows are written (the result says interrupted=True); a rerun continues where it stopped.
    make_analyzer: overrides the factory built from `spec` and `options` (picklable; for tests and embedders).
    stop: a StopRequest whose signal handler is installed; the job then stops cleanly on those signals too.
    With `options.speakers` set, the rows also have the speaker columns (rows.SPEAKER_FIELDS); `options` decides
    the columns even when `make_analyzer` is given.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    if address and engine != "ray":
        raise ConfigError("a Ray cluster address is only used by the ray engine: choose engine 'ray' with it")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    options = options or AnalysisOptions()
    fields = row_fields(options.speakers is not None)
    found = collect_inputs(inputs, pattern)
    progress = progress or Progress()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    with OutputStore(out, fmt, part_rows=part_rows, part_seconds=part_seconds,
                     extra_columns=[_column(c) for c in found.extra_columns]) as store:
        todo = pending(found.recordings, store.done)
        skipped = len(found.recordings) - len(todo)
        n_workers = workers or (None if engine == "ray" and address else available_cores())
        factory = make_analyzer or AnalyzerFactory(per_worker_spec(spec, n_workers or available_cores()), options)
        run = {
            "started_at": started_at, "engine": engine, "workers": n_workers, "address": address,
            "inputs": list(inputs), "pattern": pattern, "recordings": len(found.recordings), "skipped": skipped,
            "to_analyse": len(todo), **({"speakers": options.speakers} if options.speakers is not None else {}),
        }
        processed = failed = 0
        audio = 0.0
        interrupted = False
        rows = _engine(engine, todo, factory, n_workers, address) if todo else iter(())  # Ray: joined here
        progress.start(len(todo), skipped)
        stop = stop or StopRequest()
        try:
            for i, row in stop.each(rows):
                rec = todo[i]
                row = {name: row.get(name) for name in fields} | _extras(rec, found.extra_columns)
                processed += 1
                if row["error_type"]:
                    failed += 1
                else:
                    audio += row["duration"] or 0.0
                if store.add(row):  # a part was written: keep summary.json up to date with it
                    store.write_summary(_run_info(run, processed, failed, audio, t0, complete=False))
                progress.row(row)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            if hasattr(rows, "close"):
                rows.close()  # stops the engine's workers
            progress.close()
            store.flush()
            info = _run_info(run, processed, failed, audio, t0, complete=not interrupted and processed == len(todo))
            path = store.write_summary(info)
        failed_inputs = sum(1 for r in found.recordings if store.done.get(r.key))
    return BatchResult(len(found.recordings), skipped, processed, failed, failed_inputs, audio,
                       time.perf_counter() - t0, interrupted, json.loads(path.read_text(encoding="utf-8")))


def _column(name: str) -> str:
    # A manifest column named like a result column (with or without speakers) keeps its value under a prefixed name.
    return f"manifest_{name}" if name in ROW_FIELDS or name in SPEAKER_FIELDS else name


def _extras(rec: Recording, columns: Sequence[str]) -> dict[str, str | None]:
    return {_column(c): rec.extra.get(c) for c in columns}


def _engine(engine: str, todo: list[Recording], factory, workers: int | None, address: str | None):
    if engine == "ray":
        from ser_tool.batch.ray_engine import run_ray

        return run_ray(todo, factory, workers, address)
    from ser_tool.batch.local import run_local

    return run_local(todo, factory, min(workers or available_cores(), len(todo)))  # no idle model copies


def _run_info(run: dict[str, Any], processed: int, failed: int, audio: float, t0: float, complete: bool) -> dict[str, Any]:
    wall = time.perf_counter() - t0
    return {
        **run,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": complete,
        "processed": processed,
        "failed": failed,
        "audio_hours": round(audio / 3600, 4),
        "wall_seconds": round(wall, 2),
        "files_per_second": round(processed / wall, 3) if wall > 0 else None,
        "audio_hours_per_second": round(audio / 3600 / wall, 5) if wall > 0 else None,
        "x_real_time": round(audio / wall, 2) if wall > 0 else None,
    }
