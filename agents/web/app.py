"""The web demo's server: one static page and a small JSON API over an `AffectPipeline`.

    POST /api/analyze?name=FILE&words=TEXT   body: the audio file's bytes -> 202 {"job": id}
    GET  /api/jobs/{id}                      state, queue place, progress; once done the result the page shows
    GET  /api/jobs/{id}/timeline.png         the timeline picture
    GET  /api/jobs/{id}/report.json          the affect report (a download)
    POST /api/jobs/{id}/chat                 {"message": ..., "compare": bool} -> the reply (and the one without affect)
    GET  /api/config                         colours, limits, chat model - what the page needs to draw itself

Every failure answers {"error": message} with the core's message (what went wrong and what to do), never a
traceback; analyses and replies run one at a time on one worker (agents.web.jobs), so the server keeps serving.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from agents.cli import EMPATHETIC_CONTEXT
from agents.pipeline import AffectPipeline, Conversation, Perception
from agents.web.jobs import BusyError, Job, Worker, user_message
from agents.web.timeline import AROUSAL_COLOUR, EMOTION_COLOURS, VALENCE_COLOUR, timeline_png
from ser_tool import AffectReport, AudioLimits, AudioTooLargeError, SERError, safe_name

__all__ = ["CAVEAT", "NO_WORDS_NOTE", "create_app"]

CAVEAT = ("Expressed, not felt: these readings describe the emotion the voice expresses (its tone), not what the "
          "speaker feels. The model ignores the meaning of the words and can be wrong.")
NO_WORDS_NOTE = ("No reply without affect: the words of this recording are unknown (no speech recogniser is configured "
                 "and none were typed), so a words-only model would know nothing about it. Type what was said before "
                 "analysing to compare.")
MAX_WORDS_CHARS = 5000
MAX_MESSAGE_CHARS = 4000
DRAIN_FACTOR = 4  # an oversized upload is read (and dropped) up to this many times the limit, then cut off


@dataclass
class Heard:
    """One analysed recording, kept while its page may still chat about it."""

    perception: Perception
    view: dict[str, Any]
    png: bytes
    with_affect: Conversation
    without_affect: Conversation | None = None
    turns: list[dict[str, Any]] = field(default_factory=list)


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="What the user says.")
    compare: bool = Field(False, description="Also answer without the affect block (the words only), for comparison.")


def create_app(pipeline: AffectPipeline, *, chat_model_name: str | None = None, limits: AudioLimits | None = None,
               max_pending: int = 8, keep: int = 32) -> FastAPI:
    """The web app over `pipeline` (its chat model answers; its analyzer and ASR hear the uploads).

    limits: the upload limits (default: the pipeline analyzer's). chat_model_name: shown in the page.
    max_pending: most analyses and replies waiting or running at once; keep: analyses kept for chat.
    """
    if limits is None:
        limits = pipeline.analyzer.options.limits if pipeline.analyzer is not None else AudioLimits()
    worker = Worker(max_pending=max_pending, keep=keep)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        worker.close()

    app = FastAPI(title="ser-agent web", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.worker, app.state.pipeline, app.state.limits = worker, pipeline, limits
    page = resources.files("agents.web").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'request'}: {e['msg']}" for e in exc.errors())
        return _error(400, f"the request is not valid ({problems})")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, user_message(exc))

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/config")
    def config() -> dict[str, Any]:
        return {
            "colours": {e: {"name": n, "hex": h} for e, (n, h) in EMOTION_COLOURS.items()},
            "valence_colour": {"name": VALENCE_COLOUR[0], "hex": VALENCE_COLOUR[1]},
            "arousal_colour": {"name": AROUSAL_COLOUR[0], "hex": AROUSAL_COLOUR[1]},
            "max_file_bytes": limits.max_file_bytes,
            "max_duration": limits.max_duration,
            "chat_model": chat_model_name or type(pipeline.model).__name__,
            "asr": pipeline.asr is not None,
            "caveat": CAVEAT,
        }

    @app.post("/api/analyze", status_code=202)
    async def analyze(request: Request, name: str = "upload", words: str = "") -> Any:
        name = name.strip()[:240] or "upload"
        if len(words) > MAX_WORDS_CHARS:
            return _error(400, f"the words are {len(words)} characters long; the limit is {MAX_WORDS_CHARS}. Shorten them")
        body = bytearray()
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limits.max_file_bytes:
                body += chunk
            elif size > DRAIN_FACTOR * limits.max_file_bytes:
                break  # stop reading a flood; the answer below is the same
        if size > limits.max_file_bytes:
            body = bytearray()
            try:
                limits.check_size(size, safe_name(name))
            except AudioTooLargeError as e:
                return _error(413, safe_name(e, None))
        if not body:
            return _error(400, "the upload is empty: choose an audio file (WAV, FLAC, OGG/Opus, MP3, M4A, WebM, ...) "
                               "or record from the microphone")
        audio = bytes(body)
        del body

        def work(job: Job) -> Heard:
            perception = pipeline.perceive(audio, words.strip() or None, name=name, modes=["predicted"],
                                           progress=job.progress)
            return _heard(pipeline, perception)

        try:
            job = worker.start_job(name, work)
        except BusyError as e:
            return _error(503, str(e))
        return {"job": job.id, "ahead": worker.ahead_of(job)}

    @app.get("/api/jobs/{job_id}")
    def status(job_id: str) -> Any:
        job = worker.job(job_id)
        if job is None:
            return _gone()
        out: dict[str, Any] = {"job": job.id, "name": safe_name(job.name), "state": job.state, "ahead": worker.ahead_of(job),
                               "done": job.done, "total": job.total}
        if job.state == "failed":
            out["error"] = job.error
        if job.state == "done":
            out["result"] = job.result.view
        return out

    @app.get("/api/jobs/{job_id}/timeline.png")
    def timeline(job_id: str) -> Response:
        heard = _finished(worker, job_id)
        if heard is None:
            return _gone()
        return Response(heard.png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/report.json")
    def report(job_id: str) -> Response:
        heard = _finished(worker, job_id)
        if heard is None:
            return _gone()
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in heard.perception.report.source)[:80]
        return Response(heard.perception.report.model_dump_json(indent=2), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{stem or "recording"}.affect.json"'})

    @app.post("/api/jobs/{job_id}/chat")
    async def chat(job_id: str, request: ChatRequest) -> Any:
        heard = _finished(worker, job_id)
        if heard is None:
            return _gone()
        text = request.message.strip()
        if not text:
            return _error(400, "the message is empty: type something to say")
        try:
            future = worker.call(lambda: _say(heard, text, request.compare))
        except BusyError as e:
            return _error(503, str(e))
        try:
            return await asyncio.wrap_future(future)
        except Exception as e:  # noqa: BLE001 - the chat model's failure is a message in the page
            return _error(502 if isinstance(e, SERError) else 500, user_message(e))

    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _gone() -> JSONResponse:
    return _error(404, "this analysis is not (or no longer) kept by the server: upload the recording again")


def _finished(worker: Worker, job_id: str) -> Heard | None:
    job = worker.job(job_id)
    return job.result if job is not None and job.state == "done" else None


def _heard(pipeline: AffectPipeline, perception: Perception) -> Heard:
    report = perception.report
    return Heard(perception=perception, view=_view(perception), png=timeline_png(report),
                 with_affect=Conversation(pipeline, perception=perception, mode="predicted", context=EMPATHETIC_CONTEXT))


def _say(heard: Heard, text: str, compare: bool) -> dict[str, Any]:
    """One turn: the reply with the affect block and, when asked, the same turn without it. The thread without
    affect starts at the first turn that asks for it."""
    reply = heard.with_affect.turn(text)
    turn: dict[str, Any] = {"message": text, "reply": reply.text}
    if reply.warning:  # a degenerate reply (empty, repeated, the message echoed) is flagged, not shown as an answer
        turn["warning"] = reply.warning
    if compare:
        if heard.perception.words is None:
            turn["without_affect_note"] = NO_WORDS_NOTE
        else:
            if heard.without_affect is None:
                heard.without_affect = Conversation(heard.with_affect.pipeline, perception=heard.perception, mode="none",
                                                    context=EMPATHETIC_CONTEXT)
            plain = heard.without_affect.turn(text)
            turn["reply_without_affect"] = plain.text
            if plain.warning:
                turn["warning_without_affect"] = plain.warning
    heard.turns.append(turn)
    return turn


def _affect_view(affect) -> dict[str, Any] | None:
    if affect is None:
        return None
    dims = affect.dimensions
    return {"emotion": affect.emotion, "confidence": affect.confidence, "colour": EMOTION_COLOURS[affect.emotion][1],
            "colour_name": EMOTION_COLOURS[affect.emotion][0],
            "valence": None if dims is None else dims.valence, "arousal": None if dims is None else dims.arousal,
            "dominance": None if dims is None else dims.dominance}


def _view(perception: Perception) -> dict[str, Any]:
    """What the page shows: the tinted transcript segments, the overall reading, description, caveat, warnings."""
    report: AffectReport = perception.report
    if perception.aligned is not None:
        segments = [{"start": s.start, "end": s.end, "text": s.text, "affect": _affect_view(s.affect)}
                    for s in perception.aligned.segments]
        words = perception.aligned.text
    else:
        timeline = report.timeline or []
        segments = [{"start": s.start, "end": s.end, "text": None, "affect": _affect_view(s.affect)}
                    for s in timeline if s.speech]
        words = None
    return {
        "source": safe_name(report.source),
        "duration": report.duration,
        "speech_duration": report.speech_duration,
        "model_id": report.model_id,
        "overall": _affect_view(report.overall),
        "description": report.description,
        "caveat": CAVEAT,
        "warnings": list(report.warnings),
        "words": words,
        "segments": segments,
    }
