"""The MCP server in-process, through the SDK's memory-stream client session.

Behaviour around the model (sandbox, errors, concurrency, progress, lazy loading) is checked with the
deterministic FakeBackend; real audio goes through a real backend (the shipped embedded model when it
is there, and a tiny random hf model) and every structured result is validated against the tool's
published output schema.
"""

import base64
import json
import threading
import time
from contextlib import asynccontextmanager

import anyio
import numpy as np
import pytest
import soundfile as sf
from mcp.shared.memory import create_connected_server_and_client_session

from mcp_server.pool import ModelPool
from mcp_server.prompts import render_empathetic_prompt
from mcp_server.server import build_server
from mcp_server.settings import ServerSettings
from mcp_server.tools import BatchReport
from ser_tool import EMOTIONS, AffectReport, EmotionTranscript
from ser_tool.testing import SR, FakeBackend, voice
from tests.helpers import (
    backend_settings,
    check_batch,
    check_report,
    embedded_available,
    error_text,
    file_server,
)

pytestmark = pytest.mark.anyio

ANALYZE, BATCH = "analyze_speech_emotion", "analyze_speech_emotion_batch"


@pytest.fixture(scope="module", params=["embedded", "hf-tiny"])
def real_server(request, audio_dir, tiny_hf):
    """A server over a real backend (one per module and backend, so the model loads once)."""
    if request.param == "embedded" and not embedded_available():
        pytest.skip("the embedded model is not in this checkout")
    settings = ServerSettings(allowed_dirs=[audio_dir], warm_up=False, **backend_settings(request.param, tiny_hf))
    return build_server(settings)


class SlowFakeBackend(FakeBackend):
    """FakeBackend whose forward pass takes a while and that counts how many run at once."""

    def __init__(self, delay=0.05):
        super().__init__()
        self.delay, self.active, self.peak = delay, 0, 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def predict(self, waveforms):
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        try:
            return super().predict(waveforms)
        finally:
            with self._lock:
                self.active -= 1


def fake_server(*allowed_dirs, backends=None, **settings):
    settings = ServerSettings(allowed_dirs=list(allowed_dirs), warm_up=False, **settings)
    pool = ModelPool(backends or {"fake": FakeBackend()}, settings.analysis_options())
    return build_server(settings, pool=pool)


@asynccontextmanager
async def session(server):
    async with create_connected_server_and_client_session(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        yield client, tools


# -- listing ---------------------------------------------------------------------------------------

async def test_tools_resources_and_prompt_are_listed(audio_dir):
    async with session(fake_server(audio_dir)) as (client, tools):
        assert set(tools) == {ANALYZE, BATCH, "transcribe_speech_emotion"}
        analyze = tools[ANALYZE]
        assert set(analyze.inputSchema["properties"]) == {"path", "url", "audio_base64", "timeline", "window", "hop", "vad",
                                                       "speakers", "detail", "max_segments"}
        assert analyze.outputSchema["title"] == "AffectReport"
        assert "valence" in json.dumps(analyze.outputSchema)  # field descriptions travel with the schema
        for word in ("expressed", "not what the speaker", "0..1", "timeline", str(audio_dir).lower()):
            assert word in analyze.description.lower()
        assert analyze.annotations.readOnlyHint
        assert tools[BATCH].outputSchema["title"] == "BatchReport"
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert uris == {"ser://labels", "ser://schema/affect-report", "ser://config"}
        labels = json.loads((await client.read_resource("ser://labels")).contents[0].text)
        assert labels["emotion_order"] == list(EMOTIONS)
        assert [d["name"] for d in labels["dimensions"]] == ["valence", "arousal", "dominance"]
        config = json.loads((await client.read_resource("ser://config")).contents[0].text)
        assert config["allowed_folders"] == [str(audio_dir)] and config["url_fetching"] is False
        schema = json.loads((await client.read_resource("ser://schema/affect-report")).contents[0].text)
        assert schema == AffectReport.model_json_schema()
        prompts = (await client.list_prompts()).prompts
        assert [p.name for p in prompts] == ["empathetic_reply"]
        assert {a.name for a in prompts[0].arguments} == {"affect_report", "transcript", "situation"}


async def test_text_is_a_compact_summary_and_detail_full_adds_the_json(audio_dir):
    """The text an LLM reads stays small (the structured content always holds the full report):
    max_segments caps the timeline lines (segments, else merged episodes), detail='full' adds the JSON."""
    async with session(fake_server(audio_dir)) as (client, tools):
        tool = tools[ANALYZE]
        for name in ("detail", "max_segments"):
            assert tool.inputSchema["properties"][name]["description"]
        args = {"path": "long.flac", "timeline": True, "window": 2.0}
        listed = await client.call_tool(ANALYZE, {**args, "max_segments": 50})
        report = check_report(listed, tool)
        n = sum(s.speech for s in report.timeline)
        assert n > 3 and f"Timeline ({n} speech segments):" in listed.content[0].text
        assert "detail='full'" not in listed.content[0].text  # nothing was left out of the text
        merged = await client.call_tool(ANALYZE, {**args, "max_segments": 2})
        check_report(merged, tool)
        text = merged.content[0].text
        assert "Episodes (" in text and f"full timeline, {len(report.timeline)} segments; call again with detail='full'" in text
        full = await client.call_tool(ANALYZE, {**args, "detail": "full"})
        assert check_report(full, tool, detail="full") == report
        batch = await client.call_tool(BATCH, {"paths": ["short.wav"], "detail": "full"})
        assert len(batch.content) == 2 and json.loads(batch.content[1].text) == batch.structuredContent
        assert len((await client.call_tool(BATCH, {"paths": ["short.wav"]})).content) == 1
        assert "max_segments" in error_text(await client.call_tool(ANALYZE, {**args, "max_segments": 0}))
        assert "detail" in error_text(await client.call_tool(ANALYZE, {**args, "detail": "everything"}))


def test_text_of_a_one_hour_report_stays_under_the_cap():
    from mcp_server.tools import _result
    from ser_tool import Affect, EmotionProbabilities
    from ser_tool.report import Segment

    timeline = []
    for i in range(720):  # an hour of 5-s windows whose reading flips every few windows
        emotion = EMOTIONS[(i // 3 + i % 2) % len(EMOTIONS)]
        probs = EmotionProbabilities(**{e: 0.7 if e == emotion else 0.05 for e in EMOTIONS})
        timeline.append(Segment(start=5.0 * i, end=5.0 * i + 5, speech=True,
                                affect=Affect(emotion=emotion, confidence=0.65, probabilities=probs)))
    hour = AffectReport(source="hour.wav", duration=3600.0, speech_duration=3600.0, sample_rate=SR, backend="fake",
                        model_id="fake", emotions_supported=list(EMOTIONS), overall=timeline[0].affect, timeline=timeline,
                        window=5.0, hop=5.0, description="An hour.")
    result = _result(hour)
    assert len(result.content) == 1 and len(result.content[0].text) < 4000
    assert result.structuredContent["timeline"] == [s.model_dump(mode="json") for s in timeline]
    assert len(_result(hour, detail="full").content[1].text) > 100_000


async def test_backend_argument_only_when_several_backends(audio_dir):
    server = fake_server(audio_dir, backends={"fake": FakeBackend(), "other": FakeBackend(("neutral", "sad"))})
    async with session(server) as (client, tools):
        prop = tools[ANALYZE].inputSchema["properties"]["backend"]
        assert "fake" in json.dumps(prop) and "other" in json.dumps(prop)
        res = await client.call_tool(ANALYZE, {"path": "short.wav", "backend": "other"})
        assert check_report(res, tools[ANALYZE]).emotions_supported == ["neutral", "sad"]
        assert "backend" in error_text(await client.call_tool(ANALYZE, {"path": "short.wav", "backend": "nope"}))


@pytest.mark.parametrize("names", [("fake",), ("fake", "other")])
async def test_backend_is_a_choice_of_the_configured_names_and_absent_with_one(audio_dir, names):
    server = fake_server(audio_dir, backends={n: FakeBackend() for n in names})
    async with session(server) as (client, tools):
        for name in (ANALYZE, BATCH):
            props = tools[name].inputSchema["properties"]
            if len(names) == 1:
                assert "backend" not in props, name
            else:
                choice = next(s for s in props["backend"]["anyOf"] if s.get("type") == "string")
                assert choice["enum"] == list(names), name
                assert "default fake" in props["backend"]["description"]
        assert "backend" not in tools["transcribe_speech_emotion"].inputSchema["properties"]
        # the hop's default is the configured one unless the call gives a window
        assert "ser://config" in tools[ANALYZE].inputSchema["properties"]["hop"]["description"]
        res = await client.call_tool(BATCH, {"paths": ["short.wav"], "backend": names[-1]})
        assert check_batch(res, tools[BATCH])["analysed"] == 1


async def test_each_tool_publishes_its_pydantic_result_schema(audio_dir):
    async with session(fake_server(audio_dir)) as (client, tools):
        expected = {ANALYZE: AffectReport, BATCH: BatchReport, "transcribe_speech_emotion": EmotionTranscript}
        for name, model in expected.items():
            assert tools[name].outputSchema == model.model_json_schema(), name


# -- real backends on real audio -------------------------------------------------------------------

async def test_analyze_real_audio(real_server, audio_dir):
    async with session(real_server) as (client, tools):
        tool = tools[ANALYZE]
        sample = check_report(await client.call_tool(ANALYZE, {"path": "speech_en.ogg"}), tool)
        assert sample.source == "speech_en.ogg" and sample.duration > 5
        short = check_report(await client.call_tool(ANALYZE, {"path": str(audio_dir / "short.wav"), "timeline": False}), tool)
        assert short.timeline is None and abs(sum(short.overall.probabilities.as_tuple()) - 1) < 1e-3
        long = check_report(await client.call_tool(ANALYZE, {"path": "long.flac", "timeline": True, "window": 4.0}), tool)
        assert long.window == 4.0 and len([s for s in long.timeline if s.speech]) >= 3
        inline = base64.b64encode((audio_dir / "short.wav").read_bytes()).decode()
        from_b64 = check_report(await client.call_tool(ANALYZE, {"audio_base64": inline}), tool)
        assert from_b64.overall == short.overall


async def test_batch_real_audio_with_per_file_errors(real_server, audio_dir):
    async with session(real_server) as (client, tools):
        res = await client.call_tool(BATCH, {"paths": ["short.wav", "corrupt.wav", "speech_en.ogg", "../etc/passwd"]})
        batch = check_batch(res, tools[BATCH])
        assert (batch["analysed"], batch["failed"]) == (2, 2)
        assert [r["error"] is None for r in batch["results"]] == [True, False, True, False]
        assert "'..'" in batch["results"][3]["error"]
        lines = res.content[0].text.splitlines()
        assert lines[0].startswith("short.wav: ")
        assert lines[1].startswith("ERROR ") and lines[1].count("corrupt.wav") == 1  # the failed file named once
        folder = check_batch(await client.call_tool(BATCH, {"folder": str(audio_dir), "pattern": "*.wav"}), tools[BATCH])
        assert [r["source"].rsplit("/", 1)[1] for r in folder["results"]] == ["corrupt.wav", "short.wav", "silent.wav"]
        assert folder["failed"] == 2  # corrupt, silent


# -- bad requests: an error result each, and the server keeps serving ------------------------------

@pytest.fixture(scope="module")
def outside_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outside")
    sf.write(folder / "secret.wav", voice(2.0), SR)
    return folder / "secret.wav"


async def test_bad_requests_give_error_results_and_serving_goes_on(audio_dir, outside_file, tmp_path):
    (tmp_path / "link_out.wav").symlink_to(outside_file)
    big = base64.b64encode(b"\0" * (2 * 2**20)).decode()
    bad = {
        "missing file": ({"path": "nope.wav"}, "no such file"),
        "dot-dot": ({"path": "../" + outside_file.parent.name + "/secret.wav"}, "'..' is not allowed"),
        "absolute outside": ({"path": str(outside_file)}, "outside the allowed folders"),
        "symlink escape": ({"path": "link_out.wav"}, "symbolic link"),
        "two sources": ({"path": "short.wav", "audio_base64": "UklGRg=="}, "exactly one"),
        "no source": ({}, "exactly one"),
        "oversize base64": ({"audio_base64": big}, "limit is 1.0 MiB"),
        "corrupt audio": ({"path": "corrupt.wav"}, "not an audio file"),
        "corrupt base64 audio": ({"audio_base64": base64.b64encode(b"not audio at all").decode()}, "not an audio file"),
        "url disabled": ({"url": "https://example.org/a.wav"}, "disabled"),
        "silence": ({"path": "silent.wav"}, "silent"),
        "folder as file": ({"path": "."}, "is a folder"),
        "window out of range": ({"path": "short.wav", "window": 0.01}, "window"),
        "hop above window": ({"path": "short.wav", "window": 2.0, "hop": 3.0}, "hop"),
    }
    async with session(fake_server(audio_dir, tmp_path, max_inline_mb=1.0)) as (client, tools):
        for case, (args, words) in bad.items():
            text = error_text(await client.call_tool(ANALYZE, args))
            assert words in text, f"{case}: {text}"
            check_report(await client.call_tool(ANALYZE, {"path": "short.wav"}), tools[ANALYZE])
        for args, words in (({}, "exactly one"), ({"paths": ["a.wav"], "folder": "."}, "exactly one"),
                            ({"folder": "nope"}, "no such file"), ({"folder": ".", "pattern": "*.xyz"}, "no files")):
            assert words in error_text(await client.call_tool(BATCH, args))
        check_report(await client.call_tool(ANALYZE, {"path": "short.wav"}), tools[ANALYZE])


async def test_urls_when_enabled(audio_dir, tmp_path):
    server = fake_server(audio_dir, allow_urls=True, url_allow_private=True, max_download_mb=0.5)
    sf.write(tmp_path / "short.wav", voice(3.0), SR)
    sf.write(tmp_path / "big.wav", voice(20.0), SR)  # 640 kB
    with file_server(tmp_path) as base:
        async with session(server) as (client, tools):
            report = check_report(await client.call_tool(ANALYZE, {"url": base + "/short.wav?sig=abc"}), tools[ANALYZE])
            assert report.source == base + "/short.wav"  # no query string (tokens) in the report
            assert "HTTP 404" in error_text(await client.call_tool(ANALYZE, {"url": base + "/none.wav"}))
            assert "only http" in error_text(await client.call_tool(ANALYZE, {"url": "file:///etc/passwd"}))
            assert "download limit" in error_text(await client.call_tool(ANALYZE, {"url": base + "/big.wav"}))
            check_report(await client.call_tool(ANALYZE, {"url": base + "/short.wav"}), tools[ANALYZE])
    async with session(fake_server(audio_dir, allow_urls=True)) as (client, _):  # loopback is private by default
        with file_server(tmp_path) as base:
            assert "non-public" in error_text(await client.call_tool(ANALYZE, {"url": base + "/short.wav"}))


# -- deployment behaviour ---------------------------------------------------------------------------

async def test_model_loads_lazily_once_and_is_shared(audio_dir, tiny_hf):
    settings = ServerSettings(allowed_dirs=[audio_dir], warm_up=False, **backend_settings("hf-tiny", tiny_hf))
    pool = ModelPool(settings.backend_specs(), settings.analysis_options())
    server = build_server(settings, pool=pool)
    t0 = time.perf_counter()
    async with session(server) as (client, tools):
        handshake = time.perf_counter() - t0
        assert not pool.is_loaded() and handshake < 1.0
        messages = []

        async def progress(done, total, message):
            messages.append(message)

        await client.call_tool(ANALYZE, {"path": "short.wav"}, progress_callback=progress)
        assert pool.is_loaded() and any("loading" in (m or "") for m in messages)
        shared = pool.backend()
        await client.call_tool(ANALYZE, {"path": "short.wav", "window": 2.0})
        assert pool.backend() is shared


async def test_warm_up_loads_in_the_background(audio_dir):
    settings = ServerSettings(allowed_dirs=[audio_dir], warm_up=True)
    pool = ModelPool({"fake": FakeBackend()}, settings.analysis_options())
    async with session(build_server(settings, pool=pool)):
        for _ in range(100):
            if pool.is_loaded():
                break
            await anyio.sleep(0.01)
        assert pool.is_loaded()


async def test_concurrent_calls_are_safe_and_run_off_the_event_loop(audio_dir):
    backend = SlowFakeBackend(delay=0.1)
    server = fake_server(audio_dir, backends={"fake": backend})
    async with session(server) as (client, tools):
        expected = check_report(await client.call_tool(ANALYZE, {"path": "long.flac", "window": 2.0}), tools[ANALYZE])
        results = {}

        async def call(i):
            results[i] = await client.call_tool(ANALYZE, {"path": "long.flac", "window": 2.0})

        async def ping():  # the event loop answers while inference runs in worker threads
            await anyio.sleep(0.05)
            t = time.perf_counter()
            await client.read_resource("ser://labels")
            results["ping"] = time.perf_counter() - t

        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(call, i)
            tg.start_soon(ping)
        for i in range(8):
            assert check_report(results[i], tools[ANALYZE]).overall == expected.overall
        assert results["ping"] < 0.5
        assert backend.peak == 1  # forward passes are serialised ...
        assert len(backend.threads) == 1 and "MainThread" not in backend.threads  # ... on one inference thread


async def test_progress_is_reported_for_long_recordings(audio_dir, tmp_path):
    sf.write(tmp_path / "minute.wav", np.tile(voice(10.0), 6), SR)
    async with session(fake_server(audio_dir, tmp_path)) as (client, tools):
        seen = []

        async def progress(done, total, message):
            seen.append((done, total))

        check_report(await client.call_tool(ANALYZE, {"path": "minute.wav", "window": 5.0}, progress_callback=progress), tools[ANALYZE])
        window_updates = [s for s in seen if s[1]]
        assert len(window_updates) >= 2 and window_updates[-1][0] == window_updates[-1][1] >= 12
        assert [d for d, _ in window_updates] == sorted(d for d, _ in window_updates)


async def test_empathetic_reply_prompt(audio_dir):
    async with session(fake_server(audio_dir)) as (client, tools):
        res = await client.call_tool(ANALYZE, {"path": "short.wav"})
        report = check_report(res, tools[ANALYZE])
        prompt = await client.get_prompt("empathetic_reply", {"affect_report": json.dumps(res.structuredContent), "transcript": "I'm fine."})
        text = prompt.messages[0].content.text
        assert report.overall.emotion in text and "I'm fine." in text and "not what the person feels" in text
        # a description (or any text) works too
        assert "sounds tired" in render_empathetic_prompt("The voice sounds tired.")


# -- speakers on the batch and transcript tools ---------------------------------------------------------

def _two_voices(path, f0s=(110.0, 230.0, 110.0)):
    from ser_tool.testing import silence

    parts = [silence(0.5)]
    for f0 in f0s:
        parts += [voice(4.0, f0=f0), silence(1.0)]
    sf.write(path, np.concatenate(parts), SR)
    return path


async def test_batch_and_transcript_tools_attribute_speakers(tmp_path, monkeypatch):
    from ser_tool import speakers as S
    from ser_tool.testing import SpectrumSpeakerEncoder

    monkeypatch.setattr(S, "load_speaker_encoder", SpectrumSpeakerEncoder)  # fast and weightless
    _two_voices(tmp_path / "call.wav")
    _two_voices(tmp_path / "other.wav", f0s=(230.0, 110.0))
    async with session(fake_server(tmp_path)) as (client, tools):
        for name in (BATCH, "transcribe_speech_emotion"):
            assert tools[name].inputSchema["properties"]["speakers"]["description"], name
        plain = check_batch(await client.call_tool(BATCH, {"folder": "."}), tools[BATCH])
        assert all("speakers" not in r["report"] for r in plain["results"]) and "speaker 1" not in plain["summary"]
        res = await client.call_tool(BATCH, {"folder": ".", "speakers": 2})
        batch = check_batch(res, tools[BATCH])
        assert batch["analysed"] == 2
        for entry in batch["results"]:
            assert [s["name"] for s in entry["report"]["speakers"]] == ["speaker 1", "speaker 2"]
            assert entry["report"]["timeline"] is None  # timelines only when asked for
        assert all("; speaker 1 (" in line and "; speaker 2 (" in line for line in res.content[0].text.splitlines())
        timed = check_batch(await client.call_tool(BATCH, {"paths": ["call.wav"], "speakers": "auto", "timeline": True}),
                            tools[BATCH])
        assert {s.get("speaker") for s in timed["results"][0]["report"]["timeline"] if s["speech"]} == {1, 2}
        assert "speakers" in error_text(await client.call_tool(BATCH, {"folder": ".", "speakers": "lots"}))

        res = await client.call_tool("transcribe_speech_emotion", {"path": "call.wav", "transcript": "hello there",
                                                                   "speakers": 2})
        assert not res.isError, res.content[0].text
        transcript = EmotionTranscript.model_validate(res.structuredContent)
        assert [s.speaker for s in transcript.segments] == [1]  # one segment over the call: speaker 1 holds most
        assert len(transcript.report.speakers) == 2 and "] speaker 1 (" in res.content[0].text
        res = await client.call_tool("transcribe_speech_emotion", {"path": "call.wav", "transcript": "hello there"})
        assert "speaker" not in res.structuredContent["segments"][0] and "speakers" not in res.structuredContent["report"]
