"""The local engine: N worker processes on this machine, each loading the model once.

Workers are spawned (not forked: torch and threads do not survive a fork) and build their Analyzer in
the pool initializer, so the model loads once per worker, not once per file. Only a few recordings per
worker are in flight, so results stream back as they finish. A file that kills its worker outright
(a crash in native code, the out-of-memory killer) breaks the pool: the recordings that were in flight
are then retried one at a time in a fresh pool, and the one that breaks it alone becomes an error row.
A job that stops early (Ctrl-C, `kill`, a fatal error) terminates its workers rather than waiting for the
recordings in flight, whose rows would not be written anyway.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ser_tool.batch.inputs import Recording
from ser_tool.batch.rows import analyze_row, crash_row

__all__ = ["run_local"]

_analyzer = None
_init_error: BaseException | None = None


def _init_worker(make_analyzer: Callable[[], Any]) -> None:
    global _analyzer, _init_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the job cleanly
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        analyzer = make_analyzer()
        analyzer.backend  # load the model now, once
        _analyzer = analyzer
    except BaseException as e:  # reported with the first task: an initializer error would only break the pool
        _init_error = e


def _work(i: int, rec: Recording) -> tuple[int, dict[str, Any]]:
    if _init_error is not None:
        raise _init_error
    return i, analyze_row(_analyzer, rec)


def run_local(recordings: Sequence[Recording], make_analyzer: Callable[[], Any], workers: int,
              in_flight_per_worker: int = 2) -> Iterator[tuple[int, dict[str, Any]]]:
    """Analyse `recordings` in `workers` processes; yields (index into recordings, row) as each finishes.

    make_analyzer: a picklable callable that builds the Analyzer in a worker (e.g. AnalyzerFactory).
    Raises the fatal errors of rows.analyze_row (model not loadable, bad settings) from the first task.
    """
    todo: deque[int] = deque(range(len(recordings)))
    suspects: deque[int] = deque()
    ctx = multiprocessing.get_context("spawn")
    while todo or suspects:
        isolate = bool(suspects)  # after a crash: the files that were in flight, one at a time
        queue = suspects if isolate else todo
        limit = 1 if isolate else max(1, workers * in_flight_per_worker)
        pool = ProcessPoolExecutor(max_workers=1 if isolate else workers, mp_context=ctx,
                                   initializer=_init_worker, initargs=(make_analyzer,))
        inflight: dict[Future, int] = {}
        broken = False
        try:
            while (queue or inflight) and not broken:
                while queue and len(inflight) < limit:
                    i = queue.popleft()
                    inflight[pool.submit(_work, i, recordings[i])] = i
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                for fut in done:
                    i = inflight.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        broken = True
                        if isolate:
                            yield i, crash_row(recordings[i], getattr(make_analyzer, "spec", None))
                        else:
                            suspects.append(i)
            suspects.extend(inflight.values())  # the rest of a broken pool's work: each gets its own try
            inflight.clear()
        finally:
            if inflight:  # stopped early (interrupted, or the reader closed us): the files in flight are abandoned
                _terminate_workers(pool)  # a rerun does them again; waiting would hold the stop up a file's length
            pool.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no public way to stop a running task before Python 3.14's terminate_workers().
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        proc.terminate()
