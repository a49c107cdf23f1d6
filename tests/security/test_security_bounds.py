"""Bounded work per call (security issue, finding 4): a window plan that would multiply the work is
refused before the model runs, a cancel hook and a time limit stop an analysis within one batch, MCP
cancellation and client disconnects stop the worker thread and free its slot, and the settings that
size the work (window, hop, threads) are bounded when they come from the environment or flags.

Nothing here waits on wall-clock thresholds: the stub backends count batches and block on events, and
the time limit runs on a fake clock.
"""

import threading

import anyio
import numpy as np
import pytest
import soundfile as sf
from mcp.shared.exceptions import McpError
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import CancelledNotification, CancelledNotificationParams, ClientNotification

from mcp_server import cli as mcp_cli
from mcp_server.pool import ModelPool
from mcp_server.server import build_server
from mcp_server.settings import ServerSettings
from ser_tool import (
    AnalysisCancelled,
    AnalysisOptions,
    AnalysisTimeLimitError,
    Analyzer,
    SegmentationOptions,
    TooManyWindowsError,
    transcribe_with_emotion,
)
from ser_tool import cli as ser_cli
from ser_tool.analyzer import MAX_WINDOWS
from ser_tool.segment import plan_segments
from ser_tool.settings import MAX_THREADS, Settings
from ser_tool.testing import SR, CountingASR, FakeBackend, voice

ANALYZE, BATCH = "analyze_speech_emotion", "analyze_speech_emotion_batch"
FINE = SegmentationOptions(window=0.5, hop=0.5, vad="energy")  # many small windows: a long plan from a short clip


def _analyzer(backend, seg=FINE, **options) -> Analyzer:
    return Analyzer(backend, AnalysisOptions(segmentation=seg, batch_size=4, **options))


class CallbackBackend(FakeBackend):
    """FakeBackend that runs `on_batch(n)` after recording its n-th batch (1-based)."""

    def __init__(self, on_batch=None):
        super().__init__()
        self.on_batch = on_batch or (lambda n: None)

    def predict(self, waveforms):
        out = super().predict(waveforms)
        self.on_batch(len(self.batches))
        return out


# -- the window cap ------------------------------------------------------------------------------------

def test_default_cap_passes_a_max_duration_recording_at_the_default_window():
    two_hours = [(0.0, 7200.0)]
    plan = plan_segments(two_hours, 7200.0, SegmentationOptions(), max_windows=MAX_WINDOWS)
    assert len(plan) == 720
    assert len(plan_segments(two_hours, 7200.0, SegmentationOptions(hop=5.0), max_windows=MAX_WINDOWS)) <= MAX_WINDOWS
    with pytest.raises(TooManyWindowsError, match="longer window or hop"):
        plan_segments(two_hours, 7200.0, SegmentationOptions(window=0.5, hop=0.25), max_windows=MAX_WINDOWS)


def test_the_cap_is_exact_and_none_means_no_cap():
    opts = SegmentationOptions(window=1.0)
    n = len(plan_segments([(0.0, 100.0)], 100.0, opts))
    assert len(plan_segments([(0.0, 100.0)], 100.0, opts, max_windows=n)) == n
    with pytest.raises(TooManyWindowsError):
        plan_segments([(0.0, 100.0)], 100.0, opts, max_windows=n - 1)
    # several regions share one budget; only speech windows count (gaps cost no model time)
    regions = [(0.0, 40.0), (50.0, 90.0)]
    n = sum(seg.speech for seg in plan_segments(regions, 100.0, opts))
    assert len(plan_segments(regions, 100.0, opts, max_windows=n)) > n
    with pytest.raises(TooManyWindowsError):
        plan_segments(regions, 100.0, opts, max_windows=n - 1)


def test_a_tiny_window_stops_at_the_cap_instead_of_growing_without_end():
    # SegmentationOptions accepts any positive window (Python callers); the cap keeps the plan bounded
    with pytest.raises(TooManyWindowsError, match="needs about"):
        plan_segments([(0.0, 7200.0)], 7200.0, SegmentationOptions(window=1e-9), max_windows=MAX_WINDOWS)


def test_oversized_plan_is_refused_before_the_model_runs():
    backend = FakeBackend()
    with pytest.raises(TooManyWindowsError) as e:
        _analyzer(backend, max_windows=10).analyze(voice(20), sample_rate=SR, name="call.wav")
    text = str(e.value)
    assert text.startswith("call.wav:") and "more than the 10" in text and "longer window or hop" in text
    assert backend.batches == []  # refused before any forward pass
    assert _analyzer(FakeBackend(), max_windows=None).analyze(voice(20), sample_rate=SR).timeline


# -- cancel hook and time limit ----------------------------------------------------------------------

@pytest.mark.parametrize("hook", ["event", "callable"])
def test_cancel_stops_a_long_analysis_within_one_batch(hook):
    event = threading.Event()
    backend = CallbackBackend(on_batch=lambda n: event.set() if n == 3 else None)
    cancel = event if hook == "event" else event.is_set
    with pytest.raises(AnalysisCancelled, match="cancelled"):
        _analyzer(backend).analyze(voice(30), sample_rate=SR, cancel=cancel)
    assert len(backend.batches) == 3  # the batch in flight finished; no further batch ran


def test_cancel_also_stops_the_speech_detection_pass():
    checks = []

    def cancel() -> bool:
        checks.append(1)
        return len(checks) >= 2  # the second 30-s block of the VAD pass

    backend = FakeBackend()
    with pytest.raises(AnalysisCancelled):
        _analyzer(backend).analyze(np.full(120 * SR, 0.01, np.float32), sample_rate=SR, cancel=cancel)
    assert len(checks) == 2 and backend.batches == []


def test_time_limit_stops_the_analysis_with_a_clear_message(monkeypatch):
    import ser_tool.analyzer as analyzer_module

    clock = [1000.0]
    monkeypatch.setattr(analyzer_module.time, "monotonic", lambda: clock[0])

    def tick(n: int) -> None:
        clock[0] += 10.0  # every batch "takes" 10 s

    backend = CallbackBackend(on_batch=tick)
    with pytest.raises(AnalysisTimeLimitError, match=r"time limit \(25 s\).*shorter recording"):
        _analyzer(backend, time_limit=25.0).analyze(voice(30), sample_rate=SR)
    assert len(backend.batches) == 3  # 30 s > 25 s after the third batch: stopped before the fourth


def test_transcription_stops_before_the_recogniser_when_cancelled():
    event, asr = threading.Event(), CountingASR("hello")
    backend = CallbackBackend(on_batch=lambda n: event.set() if n == 1 else None)
    with pytest.raises(AnalysisCancelled):
        transcribe_with_emotion(voice(30), sample_rate=SR, analyzer=_analyzer(backend), asr=asr, cancel=event)
    assert len(backend.batches) == 1 and asr.heard == []


def test_bad_options_are_refused():
    from ser_tool import ConfigError

    for kwargs in ({"max_windows": 0}, {"time_limit": 0}, {"time_limit": -1.0}):
        with pytest.raises(ConfigError):
            AnalysisOptions(**kwargs)


# -- MCP --------------------------------------------------------------------------------------------

class CancelWatchingPool(ModelPool):
    """A model pool that keeps each call's cancel event, so a stub backend can wait until it is set."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cancels: list[threading.Event] = []

    def analyze(self, analyzer, audio, *, cancel=None, **kwargs):
        self.cancels.append(cancel)
        return super().analyze(analyzer, audio, cancel=cancel, **kwargs)


class BlockingBackend(FakeBackend):
    """Blocks in its `block_at`-th batch until the call's cancel event is set (at most `patience` s), so
    a test knows exactly which batch was in flight when the cancellation reached the worker."""

    def __init__(self, pool_ref, block_at=3, patience=20.0):
        super().__init__()
        self.pool_ref, self.block_at, self.patience = pool_ref, block_at, patience
        self.blocked = threading.Event()
        self.saw_cancel = False

    def predict(self, waveforms):
        out = super().predict(waveforms)
        if len(self.batches) == self.block_at:
            self.blocked.set()
            self.saw_cancel = self.pool_ref[0].cancels[-1].wait(self.patience)
        return out


@pytest.fixture(scope="module")
def long_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    sf.write(folder / "long.flac", voice(40.0), SR)  # 80 half-second windows: 10 batches of 8
    sf.write(folder / "long2.flac", voice(40.0, f0=200), SR)
    sf.write(folder / "short.wav", voice(2.0), SR)
    return folder


def blocking_server(folder, **settings):
    settings = ServerSettings(allowed_dirs=[folder], warm_up=False, vad="energy", max_concurrent=1, **settings)
    ref: list[ModelPool] = []
    backend = BlockingBackend(ref)
    pool = CancelWatchingPool({"fake": backend}, settings.analysis_options(), settings.max_concurrent)
    ref.append(pool)
    return build_server(settings, pool=pool), pool, backend


def _error_text(result) -> str:
    assert result.isError, result.content[0].text[:200]
    return result.content[0].text


async def _wait_for(event: threading.Event, timeout: float = 20.0) -> bool:
    return await anyio.to_thread.run_sync(event.wait, timeout)


@pytest.mark.anyio
async def test_mcp_refuses_an_oversized_window_plan_before_the_model(long_dir):
    settings = ServerSettings(allowed_dirs=[long_dir], warm_up=False, vad="energy", max_windows=20)
    backend = FakeBackend()
    server = build_server(settings, pool=ModelPool({"fake": backend}, settings.analysis_options()))
    async with create_connected_server_and_client_session(server) as client:
        result = await client.call_tool(ANALYZE, {"path": "long.flac", "window": 0.5, "hop": 0.25})
        text = _error_text(result)
        assert "long.flac" in text and "more than the 20" in text and "longer window or hop" in text
        assert backend.batches == []
        # the default window fits, and the server keeps serving
        assert not (await client.call_tool(ANALYZE, {"path": "long.flac"})).isError
        batch = (await client.call_tool(BATCH, {"paths": ["long.flac", "short.wav"], "window": 0.5, "hop": 0.25})).structuredContent
        assert "longer window or hop" in batch["results"][0]["error"] and batch["results"][1]["report"] is not None


@pytest.mark.anyio
async def test_mcp_cancellation_stops_the_worker_and_frees_its_slot(long_dir):
    server, pool, backend = blocking_server(long_dir)
    async with create_connected_server_and_client_session(server) as client:
        outcome = {}

        async def call() -> None:
            try:
                outcome["result"] = await client.call_tool(ANALYZE, {"path": "long.flac", "window": 0.5})
            except McpError as e:
                outcome["error"] = e.error.message

        request_id = client._request_id  # the id the next request gets (the SDK has no public handle for it)
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            assert await _wait_for(backend.blocked), "the analysis never reached its third batch"
            await client.send_notification(ClientNotification(CancelledNotification(
                params=CancelledNotificationParams(requestId=request_id, reason="the user changed their mind"))))
        assert "cancelled" in outcome.get("error", "").lower(), outcome
        # max_concurrent=1: this call can only run once the cancelled one has stopped and freed its slot
        result = await client.call_tool(ANALYZE, {"path": "short.wav"})
        assert not result.isError, result.content[0].text
    assert backend.saw_cancel, "the cancellation never reached the worker thread"
    assert len(backend.batches) == 3 + 1  # the cancelled call ran no batch after the one in flight; +1: short.wav


@pytest.mark.anyio
async def test_mcp_cancellation_stops_a_batch_call_before_its_remaining_files(long_dir):
    server, pool, backend = blocking_server(long_dir)
    async with create_connected_server_and_client_session(server) as client:
        request_id = client._request_id

        async def call() -> None:
            with pytest.raises(McpError, match="cancelled"):
                await client.call_tool(BATCH, {"paths": ["long.flac", "long2.flac"], "window": 0.5})

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            assert await _wait_for(backend.blocked)
            await client.send_notification(ClientNotification(CancelledNotification(
                params=CancelledNotificationParams(requestId=request_id))))
        assert not (await client.call_tool(ANALYZE, {"path": "short.wav"})).isError
    assert backend.saw_cancel and len(pool.cancels) == 2  # long.flac and short.wav: long2.flac never started
    assert len(backend.batches) == 3 + 1


@pytest.mark.anyio
async def test_client_disconnect_stops_the_worker(long_dir):
    server, pool, backend = blocking_server(long_dir)
    async with anyio.create_task_group() as outer:
        async def client_that_leaves() -> None:
            async with create_connected_server_and_client_session(server) as client:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(client.call_tool, ANALYZE, {"path": "long.flac", "window": 0.5})
                    assert await _wait_for(backend.blocked)
                    tg.cancel_scope.cancel()  # the client gives up and closes its session

        outer.start_soon(client_that_leaves)
    # leaving the session waited for the server, so the worker has ended by now
    assert backend.saw_cancel and pool.cancels[0].is_set()
    assert len(backend.batches) == 3
    assert pool._slots.acquire(blocking=False)  # the slot was freed
    pool._slots.release()


@pytest.mark.anyio
async def test_call_time_limit_is_a_clear_error_and_covers_a_whole_batch(long_dir, monkeypatch):
    import ser_tool.analyzer as analyzer_module

    settings = ServerSettings(allowed_dirs=[long_dir], warm_up=False, vad="energy", call_timeout=25)
    clock = [1000.0]
    monkeypatch.setattr(analyzer_module.time, "monotonic", lambda: clock[0])

    def tick(n: int) -> None:
        clock[0] += 10.0

    backend = CallbackBackend(on_batch=tick)
    server = build_server(settings, pool=ModelPool({"fake": backend}, settings.analysis_options()))
    async with create_connected_server_and_client_session(server) as client:
        text = _error_text(await client.call_tool(ANALYZE, {"path": "long.flac", "window": 0.5}))
        assert "time limit (25 s)" in text
        assert len(backend.batches) == 3
    assert settings.analysis_options().time_limit == 25
    assert ServerSettings(call_timeout=0).analysis_options().time_limit is None


# -- bounds on settings from the environment and flags --------------------------------------------

BAD_ENV = [
    ({"SER_WINDOW": "1e-9"}, "window must be 0.5 to 60 seconds"),
    ({"SER_WINDOW": "nan"}, "window must be 0.5 to 60 seconds"),
    ({"SER_HOP": "0.01"}, "hop must be 0.25 seconds to the window"),
    ({"SER_WINDOW": "5", "SER_HOP": "9"}, "hop must be 0.25 seconds to the window (5 s)"),
    ({"SER_THREADS": "100000"}, f"threads must be 1 to {MAX_THREADS}"),
    ({"SER_THREADS": "0"}, f"threads must be 1 to {MAX_THREADS}"),
    ({"SER_MAX_WINDOWS": "0"}, "max_windows must be at least 1"),
]


@pytest.mark.parametrize(("env", "message"), BAD_ENV)
def test_ser_refuses_out_of_bounds_environment(env, message, monkeypatch, capsys, tmp_path):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "a.wav"
    sf.write(path, voice(1.0), SR)
    assert ser_cli.main(["analyze", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ser: error: invalid settings") and message in err and "Traceback" not in err
    assert list(env)[-1] in err  # names the variable to fix (the last one set is the bad one)


@pytest.mark.parametrize(("env", "message"), BAD_ENV)
def test_ser_mcp_refuses_out_of_bounds_environment(env, message, monkeypatch, capsys):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert mcp_cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ser-mcp: error: invalid settings") and message in err and "Traceback" not in err


@pytest.mark.parametrize("flags", [["--window", "1e-9"], ["--threads", "100000"], ["--window", "2", "--hop", "3"],
                                   ["--max-windows", "0"]])
def test_ser_refuses_out_of_bounds_flags(flags, capsys, tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, voice(1.0), SR)
    assert ser_cli.main(["analyze", str(path), *flags]) == 2
    assert "must be" in capsys.readouterr().err


def test_ser_mcp_refuses_out_of_bounds_flags(capsys):
    assert mcp_cli.main(["--window", "100"]) == 2
    assert "window must be 0.5 to 60 seconds" in capsys.readouterr().err
    assert mcp_cli.main(["--call-timeout", "-1"]) == 2


def test_bounds_keep_the_defaults_and_the_edges():
    s = Settings(window=0.5, hop=0.25, threads=1)
    assert (s.window, s.hop, s.threads) == (0.5, 0.25, 1)
    assert Settings(window=60, hop=60, threads=MAX_THREADS).hop == 60
    d = Settings()
    assert (d.window, d.hop, d.threads, d.max_windows) == (10.0, None, None, MAX_WINDOWS)
    assert ServerSettings(max_windows=50).analysis_options().max_windows == 50

