"""The model pool behind the tools: each backend loaded once (lazily or in the background) and shared
by every call; a call's own options (window, hop, VAD) cost a throwaway Analyzer, not a reload.

Everything here blocks: the server calls it from worker threads, never on the event loop.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager

from ser_tool import AnalysisCancelled, AnalysisOptions, Analyzer, BackendSpec, ConfigError, SegmentationOptions, SERError

log = logging.getLogger("mcp_server")


class ModelThread:
    """One long-lived daemon thread that runs model work (loading, forward passes) in submission order.

    What ThreadPoolExecutor(max_workers=1) gave, except that the interpreter does not wait for this thread at
    exit: a server whose client has gone (end of input on stdio) ends at once, even while the model is still
    loading in the background, where the executor's thread held the exit until the load was done (~10 s). The
    thread ends when this object is garbage-collected."""

    def __init__(self, name: str = "ser-inference") -> None:
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._jobs = jobs
        self._thread = threading.Thread(target=_serve_jobs, args=(jobs,), name=name, daemon=True)
        self._thread.start()
        weakref.finalize(self, jobs.put, None)  # no reference to self: the thread stops when nobody can submit

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        self._jobs.put((future, fn, args, kwargs))
        return future


def _serve_jobs(jobs: queue.SimpleQueue) -> None:
    while (job := jobs.get()) is not None:
        future, fn, args, kwargs = job
        if not future.set_running_or_notify_cancel():
            continue
        try:
            result = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting caller, as an executor does
            future.set_exception(e)
        else:
            future.set_result(result)
        del job, future, fn, args, kwargs  # do not keep the last job's objects alive while idle


class _SerialBackend:
    """A loaded backend shared by all calls; its forward passes run on the pool's inference thread."""

    def __init__(self, backend, inference: ModelThread) -> None:
        self._backend = backend
        self._inference = inference

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def predict(self, waveforms: Sequence):
        return self._inference.submit(self._backend.predict, waveforms).result()


class _SerialASR:
    """A speech recogniser whose passes run on the pool's inference thread."""

    def __init__(self, asr, inference: ModelThread) -> None:
        self._asr = asr
        self._inference = inference
        self.model_id = asr.model_id

    def transcribe(self, audio):
        return self._inference.submit(self._asr.transcribe, audio).result()


class ModelPool:
    """Backends by name (the first is the default), each loaded on first use and then reused.

    All model work (loading and every forward pass) runs on one long-lived thread, one pass at a time;
    decoding and speech detection run in the callers' worker threads, at most `max_concurrent` at once.
    Why one thread: backends are not promised to be thread-safe, and on a CPU parallel passes only
    compete for the same cores. Torch also keeps per-thread state: passes spread over a pool of worker
    threads tripled the server's peak RSS under load (benchmarks/mcp_load.py). Off the main thread,
    torch's OpenMP threads must not spin while idle (OMP_WAIT_POLICY=PASSIVE, which `ser-mcp` sets
    before torch loads): spinning teams made passes up to 20x slower on 2 cores.
    """

    def __init__(self, backends: Mapping[str, BackendSpec | object], options: AnalysisOptions | None = None,
                 max_concurrent: int = 4) -> None:
        if not backends:
            raise ConfigError("at least one backend must be configured")
        if max_concurrent < 1:
            raise ConfigError(f"max_concurrent must be at least 1, got {max_concurrent}")
        self.options = options or AnalysisOptions()
        self.names: tuple[str, ...] = tuple(backends)
        # Each analysis in flight holds decoder buffers and windows in memory; forward passes are
        # serialised anyway, so more than a few at once would add memory, not speed.
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._inference = ModelThread("ser-inference")
        # An Analyzer given a BackendSpec loads it on first access: we use that to load.
        self._loaders = {name: Analyzer(b, self.options) for name, b in backends.items()}
        self._shared: dict[str, _SerialBackend] = {}
        self._lock = threading.Lock()
        self._warming: Future | None = None

    @property
    def default(self) -> str:
        return self.names[0]

    def is_loaded(self, name: str | None = None) -> bool:
        return (name or self.default) in self._shared

    def backend(self, name: str | None = None) -> _SerialBackend:
        """The shared, loaded backend `name` (loads it the first time; blocks)."""
        name = name or self.default
        if name not in self._loaders:
            raise ConfigError(f"backend {name!r} is not configured on this server; choose one of {', '.join(self.names)}")
        shared = self._shared.get(name)
        if shared is None:
            shared = self._inference.submit(self._load, name).result()
        return shared

    def _load(self, name: str) -> _SerialBackend:
        """Runs on the inference thread."""
        if name in self._shared:
            return self._shared[name]
        t0 = time.perf_counter()
        loaded = self._loaders[name].backend
        with self._lock:
            shared = self._shared.setdefault(name, _SerialBackend(loaded, self._inference))
        log.info("backend %s ready (%s), %.1f s", name, loaded.model_id, time.perf_counter() - t0)
        return shared

    def analyzer(self, name: str | None = None, *, window: float | None = None, hop: float | None = None,
                 vad: str | None = None) -> Analyzer:
        """An Analyzer over the shared backend with this call's segmentation (blocks while the model loads)."""
        seg = self.segmentation(window=window, hop=hop, vad=vad)
        options = self.options if seg == self.options.segmentation else dataclasses.replace(self.options, segmentation=seg)
        return Analyzer(self.backend(name), options)

    def analyze(self, analyzer: Analyzer, audio, *, cancel: threading.Event | None = None,
                time_limit: float | None = None, **kwargs):
        """analyzer.analyze(audio, cancel=cancel, **kwargs), at most `max_concurrent` at a time (blocks).

        Setting `cancel` stops the call within one batch, or while it waits for its turn, with
        AnalysisCancelled; its slot is freed at once. `time_limit` replaces the analyzer's (seconds).
        """
        if time_limit is not None:
            analyzer = Analyzer(analyzer.backend, dataclasses.replace(analyzer.options, time_limit=time_limit))
        with self._slot(cancel):
            return analyzer.analyze(audio, cancel=cancel, **kwargs)

    def transcribe(self, analyzer: Analyzer, asr, audio, *, cancel: threading.Event | None = None, **kwargs):
        """transcribe_with_emotion(audio, ...), in a slot like `analyze`; the recogniser's passes run on
        the inference thread too, one at a time with the emotion model's (blocks)."""
        from ser_tool import transcribe_with_emotion

        serial_asr = _SerialASR(asr, self._inference)
        with self._slot(cancel):
            return transcribe_with_emotion(audio, analyzer=analyzer, asr=serial_asr, cancel=cancel, **kwargs)

    @contextmanager
    def _slot(self, cancel: threading.Event | None) -> Iterator[None]:
        """One of the `max_concurrent` analysis slots; waiting for it stops when `cancel` is set."""
        while not self._slots.acquire(timeout=0.05):
            if cancel is not None and cancel.is_set():
                raise AnalysisCancelled("the call was cancelled while it waited for its turn")
        try:
            yield
        finally:
            self._slots.release()

    def segmentation(self, *, window: float | None, hop: float | None, vad: str | None) -> SegmentationOptions:
        """The configured segmentation with a call's overrides (a new window without a hop means no overlap)."""
        base = self.options.segmentation
        if window is None and hop is None and vad is None:
            return base
        new_hop = hop if hop is not None else (None if window is not None else base.hop)
        return dataclasses.replace(base, window=window if window is not None else base.window, hop=new_hop,
                                   vad=vad if vad is not None else base.vad)

    def warm_up_in_background(self) -> Future | None:
        """Start loading the default backend on the inference thread and return at once. Errors are
        logged (and raised again on first use). Does nothing when it is loaded or loading already."""

        def warm() -> None:
            try:
                self._load(self.default)
            except SERError as e:
                log.warning("could not load the %s backend in the background: %s", self.default, e)
            except Exception:  # noqa: BLE001 - a bug must not kill the server; the first call reports it
                log.exception("unexpected error while loading the %s backend", self.default)

        with self._lock:
            if self.is_loaded() or self._warming is not None:
                return None
            self._warming = self._inference.submit(warm)
        return self._warming
