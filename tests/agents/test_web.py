"""`ser-agent web` at the API level (FastAPI's TestClient, no browser): upload -> job -> result, the timeline
picture, the report download, the chat with and without affect, the queue, and every kind of bad input
answered with the core's message while the app keeps serving. The browser test is test_web_browser.py."""

from __future__ import annotations

import io
import argparse
import json
import socket
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from agents.cli import main
from agents.pipeline import AffectPipeline, Conversation
from agents.testing import ScriptedChatModel
from agents.web import CAVEAT, NO_WORDS_NOTE, create_app
from agents.web.timeline import EMOTION_COLOURS, timeline_png
from ser_tool import EMOTIONS, AffectReport, AnalysisOptions, Analyzer, AudioLimits, BackendError, SegmentationOptions
from ser_tool.testing import SR, FakeBackend, silence, voice

AFFECT_HEADER = "Affect of the whole recording"


def wav_bytes(x: np.ndarray, sr: int = SR) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV")
    return buf.getvalue()


def speech(seconds: float = 12.0) -> bytes:
    """Loud then quiet voice: the fake backend reads the loud part as angry, the quiet one as sad."""
    return wav_bytes(np.concatenate([voice(seconds / 2, amp=0.4), voice(seconds / 2, amp=0.08)]))


def echo_model(**kwargs) -> ScriptedChatModel:
    """Replies say whether the first turn's prompt carried the affect block (so the two replies differ visibly);
    a follow-up turn is echoed."""
    def rule(text: str) -> str:
        return "with affect" if AFFECT_HEADER in text else "words only" if "Transcript:" in text else f"follow-up: {text}"

    return ScriptedChatModel(rule=rule, **kwargs)


def client(backend=None, *, model=None, limits: AudioLimits | None = None, window: float = 2.0, batch_size: int = 8,
           **app_kwargs) -> TestClient:
    options = AnalysisOptions(segmentation=SegmentationOptions(window=window), limits=limits or AudioLimits(),
                              batch_size=batch_size)
    analyzer = Analyzer(backend or FakeBackend(), options)
    return TestClient(create_app(AffectPipeline(model or echo_model(), analyzer=analyzer), **app_kwargs))


def upload(c: TestClient, data: bytes, name: str = "voice.wav", words: str = "") -> dict:
    r = c.post("/api/analyze", params={"name": name, "words": words}, content=data)
    assert r.status_code == 202, r.text
    return r.json()


def wait(c: TestClient, job: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = c.get(f"/api/jobs/{job}").json()
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not finish in {timeout} s: {status}")


def analysed(c: TestClient, data: bytes | None = None, **kwargs) -> tuple[str, dict]:
    job = upload(c, data or speech(), **kwargs)["job"]
    status = wait(c, job)
    assert status["state"] == "done", status
    return job, status


# -- the happy path ------------------------------------------------------------------------------------------

def test_config_names_a_colour_for_every_emotion():
    with client() as c:
        cfg = c.get("/api/config").json()
    assert list(cfg["colours"]) == list(EMOTIONS)
    assert len({v["hex"] for v in cfg["colours"].values()}) == len(EMOTIONS)  # distinct
    assert all(v["name"] for v in cfg["colours"].values())
    assert "not felt" in cfg["caveat"] and cfg["chat_model"] == "ScriptedChatModel"


def test_upload_gives_a_tinted_timeline_a_picture_and_the_report():
    with client() as c:
        job, status = analysed(c)
        result = status["result"]
        assert status["done"] == status["total"] > 0  # the progress reached its end
        segments = result["segments"]
        assert len(segments) >= 4 and all(s["text"] is None for s in segments)  # the words are unknown
        emotions = [s["affect"]["emotion"] for s in segments]
        assert emotions[0] == "angry" and emotions[-1] == "sad"  # the fake model: loud -> angry, quiet -> sad
        assert all(s["affect"]["colour"] == EMOTION_COLOURS[s["affect"]["emotion"]][1] for s in segments)
        assert [s["start"] for s in segments] == sorted(s["start"] for s in segments)
        assert result["caveat"] == CAVEAT and result["description"]
        assert result["overall"]["emotion"] in EMOTIONS and 0 <= result["overall"]["confidence"] <= 1

        png = c.get(f"/api/jobs/{job}/timeline.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n") and len(png.content) > 5000

        r = c.get(f"/api/jobs/{job}/report.json")
        assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
        assert r.headers["content-disposition"].endswith('voice.wav.affect.json"')
        report = AffectReport.model_validate_json(r.content)
        assert report.source == "voice.wav" and report.overall.emotion == result["overall"]["emotion"]
        assert [s.start for s in report.timeline if s.speech] == [s["start"] for s in segments]


def test_typed_words_are_the_transcript():
    with client() as c:
        _, status = analysed(c, words="I'm fine, really.")
    segments = status["result"]["segments"]
    assert [s["text"] for s in segments] == ["I'm fine, really."] and segments[0]["affect"] is not None
    assert status["result"]["words"] == "I'm fine, really."


def test_page_is_served_with_its_parts():
    with client() as c:
        page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for part in ("file-input", "record-btn", "MediaRecorder", "transcript", "timeline", "chat-form", "compare-toggle",
                 "download-json", "caveat"):
        assert part in page.text


# -- chat ----------------------------------------------------------------------------------------------------

def test_chat_replies_with_the_affect_and_compares_without_it():
    model = echo_model()
    with client(model=model) as c:
        job, _ = analysed(c, words="The train was late again.")
        first = c.post(f"/api/jobs/{job}/chat", json={"message": "How do I sound?", "compare": True}).json()
        assert first == {"message": "How do I sound?", "reply": "with affect", "reply_without_affect": "words only"}
        second = c.post(f"/api/jobs/{job}/chat", json={"message": "And now?"}).json()
    assert second["reply"] == "follow-up: And now?" and "reply_without_affect" not in second
    with_affect, without, follow_up = model.calls
    assert AFFECT_HEADER in with_affect[1].text and "The train was late again." in with_affect[1].text
    assert AFFECT_HEADER not in without[1].text and "The train was late again." in without[1].text
    assert [m.text for m in follow_up[:2]] == [m.text for m in with_affect[:2]]  # the thread keeps its history
    assert follow_up[-1].text == "And now?" and follow_up[-2].text == "with affect"


def test_a_degenerate_reply_comes_with_a_warning_for_the_page():
    """A model that says the user's message back: asked once more, then the turn carries a one-line warning
    (for each thread) that the page shows under the reply."""
    fair = echo_model().rule

    def rule(text: str) -> str:  # fair replies, until the user complains: then the line with their words, said back
        return next((line for line in text.splitlines() if "every single day" in line), None) or fair(text)

    model = ScriptedChatModel(rule=rule)
    with client(model=model) as c:
        job, _ = analysed(c, words="The train was late again.")
        first = c.post(f"/api/jobs/{job}/chat", json={"message": "How do I sound?"}).json()
        assert "warning" not in first  # a fair reply: no warning
        turn = c.post(f"/api/jobs/{job}/chat", json={"message": "It is late every single day.", "compare": True}).json()
        page = c.get("/").text
    assert "It is late every single day." in turn["reply"] and model.n_calls == 1 + 2 + 2  # each thread asked twice
    assert "echoed your message" in turn["warning"] and "\n" not in turn["warning"]
    assert "echoed your message" in turn["warning_without_affect"]
    assert "reply-warning" in page and "data.warning" in page


def test_no_words_no_reply_without_affect_but_a_note():
    model = echo_model()
    with client(model=model) as c:
        job, _ = analysed(c)
        turn = c.post(f"/api/jobs/{job}/chat", json={"message": "How do I sound?", "compare": True}).json()
    assert turn["reply"] == "with affect" and turn["without_affect_note"] == NO_WORDS_NOTE
    assert model.n_calls == 1  # no words-only call with nothing to go on


def test_chat_model_failure_is_a_message_and_the_thread_goes_on():
    model = echo_model(fail_after=1)
    with client(model=model) as c:
        job, _ = analysed(c)
        assert c.post(f"/api/jobs/{job}/chat", json={"message": "hi"}).status_code == 200
        r = c.post(f"/api/jobs/{job}/chat", json={"message": "still there?"})
        assert r.status_code == 502 and "chat model failed" in r.json()["error"] and "connection lost" in r.json()["error"]
        assert c.get("/api/config").status_code == 200


def test_chat_refuses_bad_requests_with_messages():
    with client() as c:
        job, _ = analysed(c)
        for body in ({"message": ""}, {"message": "x" * 5000}, {"compare": True}, {"message": "   "}):
            r = c.post(f"/api/jobs/{job}/chat", json=body)
            assert r.status_code == 400 and r.json()["error"], body
        r = c.post(f"/api/jobs/{job}/chat", content=b"not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not valid" in r.json()["error"]
        r = c.post("/api/jobs/nope/chat", json={"message": "hi"})
        assert r.status_code == 404 and "upload the recording again" in r.json()["error"]
        for path in ("/api/jobs/nope", "/api/jobs/nope/timeline.png", "/api/jobs/nope/report.json"):
            assert c.get(path).status_code == 404 and "error" in c.get(path).json()


def test_unavailable_chat_model_still_analyses_and_says_why(capsys, monkeypatch):
    from agents.web.cli import build_app
    from agents.cli import build_parser

    monkeypatch.delenv("SER_AGENT_MODEL", raising=False)
    args = build_parser().parse_args(["web", "--model", "no-such-provider:model"])
    with TestClient(build_app(args)) as c:
        assert "not available" in c.get("/api/config").json()["chat_model"]
        job, _ = analysed(c, wav_bytes(voice(3.0)))
        r = c.post(f"/api/jobs/{job}/chat", json={"message": "hi"})
    assert r.status_code == 502 and "no chat model" in r.json()["error"] and "provider" in r.json()["error"]
    assert "the chat is off" in capsys.readouterr().err


# -- bad input -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "name", "expected"), [
    (b"this is a text file, not audio\n" * 20, "notes.txt", "not an audio file"),
    (wav_bytes(silence(3.0)), "silence.wav", "silent"),
    (wav_bytes(voice(6.0)), "long.wav", "the limit is 0:05"),
])
def test_bad_audio_shows_the_core_message_and_the_app_keeps_serving(data, name, expected):
    with client(limits=AudioLimits(max_duration=5.0)) as c:
        status = wait(c, upload(c, data, name=name)["job"])
        assert status["state"] == "failed" and expected in status["error"], status
        assert "Traceback" not in status["error"] and "result" not in status
        _, ok = analysed(c, wav_bytes(voice(3.0)))  # still serving
        assert ok["result"]["segments"]


def test_too_large_and_empty_uploads_are_refused_before_analysis():
    with client(limits=AudioLimits(max_file_bytes=50_000)) as c:
        r = c.post("/api/analyze", params={"name": "big.wav"}, content=wav_bytes(voice(3.0)))
        assert r.status_code == 413 and "big.wav is" in r.json()["error"] and "the limit is" in r.json()["error"]
        r = c.post("/api/analyze", params={"name": "empty.wav"}, content=b"")
        assert r.status_code == 400 and "empty" in r.json()["error"]
        r = c.post("/api/analyze", params={"name": "x.wav", "words": "w" * 6000}, content=b"RIFF")
        assert r.status_code == 400 and "limit is 5000" in r.json()["error"]
        assert wait(c, upload(c, wav_bytes(voice(1.0)))["job"])["state"] == "done"


class BrokenBackend(FakeBackend):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def predict(self, waveforms):
        raise self.error


def test_model_failure_is_its_message_and_a_bug_is_no_traceback(caplog):
    with client(BrokenBackend(BackendError("the model ran out of memory; use a shorter window"))) as c:
        status = wait(c, upload(c, speech())["job"])
    assert status["state"] == "failed" and status["error"] == "the model ran out of memory; use a shorter window"
    with client(BrokenBackend(ZeroDivisionError("division by zero"))) as c:
        status = wait(c, upload(c, speech())["job"])
        assert c.get("/api/config").status_code == 200
    assert status["state"] == "failed" and "ZeroDivisionError" in status["error"] and "server's log" in status["error"]
    assert "division by zero" not in status["error"] and "Traceback" not in status["error"]
    assert any("ZeroDivisionError" in (r.exc_text or "") for r in caplog.records)  # the details went to the log


def test_file_names_are_shown_safely():
    with client() as c:
        status = wait(c, upload(c, b"junk" * 100, name="evil\u202e\nname.txt")["job"])
    assert "\n" not in status["error"] and "\\u202e" in status["error"] and "\\n" in status["error"]


# -- queue ---------------------------------------------------------------------------------------------------

class GatedBackend(FakeBackend):
    """Waits for `gate` before every prediction but the first, so a test can hold the worker busy mid-analysis."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def predict(self, waveforms):
        if self.batches:
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
        return super().predict(waveforms)


def test_a_second_upload_queues_and_a_full_queue_refuses():
    backend = GatedBackend()
    with client(backend, max_pending=2, batch_size=1) as c:
        first = upload(c, speech(), name="first.wav")["job"]
        assert backend.entered.wait(30)
        second = upload(c, speech(), name="second.wav")
        assert second["ahead"] == 1
        status = c.get(f"/api/jobs/{second['job']}").json()
        assert status["state"] == "queued" and status["ahead"] == 1
        running = c.get(f"/api/jobs/{first}").json()
        assert running["state"] == "running" and running["done"] == 1 and running["total"] > 1  # progress
        r = c.post("/api/analyze", params={"name": "third.wav"}, content=speech())
        assert r.status_code == 503 and "busy" in r.json()["error"]
        backend.gate.set()
        assert wait(c, first)["state"] == "done" and wait(c, second["job"])["state"] == "done"
        assert upload(c, speech(), name="fourth.wav")["job"]  # room again


def test_old_analyses_are_forgotten_beyond_keep():
    with client(keep=2) as c:
        jobs = [analysed(c, wav_bytes(voice(1.0)))[0] for _ in range(3)]
        assert c.get(f"/api/jobs/{jobs[0]}").status_code == 404
        assert all(c.get(f"/api/jobs/{j}").status_code == 200 for j in jobs[1:])


# -- the picture and the command -----------------------------------------------------------------------------

def test_timeline_png_without_dimensions_or_timeline(fake_backend):
    class NoDims(FakeBackend):
        has_dimensions = False

        def predict(self, waveforms):
            p = super().predict(waveforms)
            return type(p)(p.probabilities)

    report = Analyzer(NoDims()).analyze(voice(2.0), sample_rate=SR)  # 2 s < one window: no timeline
    assert report.timeline is None and report.overall.dimensions is None
    assert timeline_png(report).startswith(b"\x89PNG")


def test_taken_port_is_one_clear_message(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code = main(["web", "--port", str(port)], model=echo_model())
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err and "Traceback" not in err


def test_web_flags_have_web_defaults():
    from agents.cli import build_parser
    from agents.settings import AgentSettings

    args = build_parser().parse_args(["web"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    cfg = AgentSettings.from_args(args)
    assert cfg.max_duration == 1800.0 and cfg.max_file_mb == 100.0
    assert json.loads(json.dumps(vars(args), default=str))["command"] == "web"
    # no recogniser unless one is named (the README's configuration table), and --asr-model's help says so
    assert cfg.asr_model is None
    web = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["web"]
    assert "default: none - the words come from 'What was said'" in next(a.help for a in web._actions if a.dest == "asr_model")


# -- the pipeline hooks the web uses -------------------------------------------------------------------------

def test_perceive_reports_progress_and_a_conversation_reuses_a_perception():
    model = echo_model()
    pipeline = AffectPipeline(model, analyzer=Analyzer(FakeBackend(), AnalysisOptions(
        segmentation=SegmentationOptions(window=2.0), batch_size=2)))
    calls = []
    heard = pipeline.perceive(speech(), "the words", progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert total >= 4 and [d for d, _ in calls] == list(range(2, total + 1, 2)) + ([total] if total % 2 else [])
    assert all(t == total for _, t in calls)
    plain = Conversation(pipeline, perception=heard, mode="none")
    assert plain.perception is heard and plain.say("Hi?") == "words only"
    assert Conversation(pipeline, perception=heard).say("Hi?") == "with affect"  # the pipeline's mode
    assert len(model.calls) == 2  # no second perception, no extra call
    with pytest.raises(Exception, match="affect mode must be one of"):
        Conversation(pipeline, perception=heard, mode="loud")
