"""The MCP surface: tools, resources and a prompt over one shared Engine. Thin by design: argument
checks, the sandbox, threads and progress live here; everything about emotion lives in ser_tool.

No `from __future__ import annotations` here: FastMCP reads the tool signatures at run time, and
the `backend` argument's choices are built from the configuration.
"""

import functools
import inspect
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import threading

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.fastmcp.prompts.base import UserMessage
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from ser_tool import (
    ASR,
    DIMENSIONS,
    EMOTIONS,
    Affect,
    AffectReport,
    Dimensions,
    EmotionProbabilities,
    EmotionTranscript,
    GivenTranscript,
    NoSpeechError,
    SERError,
    load_asr,
    report_json_schema,
    safe_name,
    transcript_lines,
)
from ser_tool.describe import MESSAGE_MAX_CHARS

from mcp_server.engine import Engine
from mcp_server.sandbox import Sandbox, validate_one_source
from mcp_server.settings import ServerSettings

log = logging.getLogger("mcp_server")

SERVER_NAME = "ser-tool"
LABELS_URI = "ser://labels"
SCHEMA_URI = "ser://schema/affect-report"
CONFIG_URI = "ser://config"

INSTRUCTIONS = (
    "Speech emotion recognition: hear HOW something was said. The tools analyse the speaker's voice in a "
    "recording and return an affect report: the emotion the voice expresses (not what the speaker feels, "
    "and not what the words mean), a confidence, valence/arousal/dominance and a short description. "
    f"Audio is passed by reference (a file path inside the allowed folders, see {CONFIG_URI}). "
    f"The label set and scales are in {LABELS_URI}; the 'empathetic_reply' prompt turns a report into a reply."
)

_SCALES = (
    "Scores describe emotion as EXPRESSED in the voice (tone, prosody), not what the speaker actually feels, and "
    "they ignore the meaning of the words. Emotions (probabilities 0..1, summing to 1): neutral, happy, sad, angry, "
    "fearful, disgusted, surprised. confidence 0..1 says how clearly the top emotion stands out: below about 0.3 the "
    "reading is uncertain, treat the emotion as a guess and say so. valence (0 negative .. 1 positive), arousal "
    "(0 calm .. 1 energetic), dominance (0 submissive .. 1 assertive), each 0..1 with 0.5 the middle; null when the "
    "model has none. 'description' is a ready summary for a reply; 'warnings' lists reliability caveats."
)
_TIMELINE_HELP = (
    "timeline: true to get a reading per segment (start/end seconds) when you need to know how the emotion CHANGES "
    "over time - a long call, a meeting, a conversation that escalates or calms down; false for one overall reading "
    "only (smaller result); omitted: included automatically when the recording is longer than one analysis window."
)


# -- arguments -------------------------------------------------------------------------------------

PathArg = Annotated[str | None, Field(
    description="Path of an audio file (WAV, FLAC, OGG/Opus, MP3, ...) inside one of the server's allowed folders, "
                "absolute or relative to an allowed folder. '..' is not allowed.")]
UrlArg = Annotated[str | None, Field(
    description="http(s) URL of an audio file, only if this server has URL fetching enabled (see ser://config).")]
Base64Arg = Annotated[str | None, Field(
    description="The bytes of an audio file, base64-encoded. For programs sending audio they hold in memory; "
                "do not type or invent base64 yourself. Size-capped (see ser://config).")]
TimelineArg = Annotated[bool | None, Field(description=_TIMELINE_HELP)]
WindowArg = Annotated[float | None, Field(
    ge=0.5, le=60.0,
    description="Analysis window in seconds for the timeline (default: the server's, 10 unless configured). Shorter windows show faster changes but "
                "are less reliable; longer speech stretches are cut into windows of this length.")]
HopArg = Annotated[float | None, Field(
    ge=0.25, le=60.0, description="Step between window starts in seconds (default: equal to window, no overlap); must not exceed window.")]
VadArg = Annotated[Literal["webrtc", "energy"] | None, Field(
    description="Speech detector. 'webrtc' (default) finds speech; 'energy' analyses everything above the noise floor - "
                "use it when a quiet or noisy recording returned 'no speech detected'.")]
TranscriptArg = Annotated[str | None, Field(
    description="The words, if you already have them: then no speech recognition runs. Plain text becomes one segment over "
                "the whole recording (its emotion is the overall one); for per-segment emotion let the server transcribe.")]
PathsArg = Annotated[list[str] | None, Field(
    description="Paths of audio files inside the allowed folders (absolute or relative to an allowed folder).")]
FolderArg = Annotated[str | None, Field(
    description="A folder inside the allowed folders: every audio file directly in it is analysed (or those matching pattern).")]
PatternArg = Annotated[str | None, Field(
    description="With folder: a glob inside it, e.g. '*.wav', 'call_*' or '**/*.flac' (recursive). Default: all audio files in the folder.")]


# -- results -------------------------------------------------------------------------------------

class FileResult(BaseModel):
    """One file of a batch: its affect report, or why it could not be analysed."""

    source: str = Field(description="The file's path as given (for a folder: folder/name).")
    report: AffectReport | None = Field(default=None, description="The affect report; null when the file failed.")
    error: str | None = Field(default=None, description="Why the file could not be analysed; null on success.")


class BatchReport(BaseModel):
    """Affect reports for several recordings, one entry per file in the order given (per-file errors, never all-or-nothing)."""

    results: list[FileResult] = Field(description="One entry per file, in order.")
    analysed: int = Field(ge=0, description="Number of files analysed successfully.")
    failed: int = Field(ge=0, description="Number of files that could not be analysed (see their error).")
    summary: str = Field(description="One line per file: top expressed emotion, confidence, arousal and valence - for comparing files.")


# -- the server ----------------------------------------------------------------------------------

def build_server(settings: ServerSettings, *, engine: Engine | None = None, sandbox: Sandbox | None = None,
                 asr: ASR | None = None) -> FastMCP:
    """The configured FastMCP server. Nothing heavy happens here: the model loads on first use
    (or in the background once the server runs, with settings.warm_up). `engine`, `sandbox` and `asr`
    (the speech recogniser, from settings.asr_model; none when unset) default to the ones `settings`
    describes (tests pass their own)."""
    engine = engine or Engine(settings.backend_specs(), settings.analysis_options(), settings.max_concurrent)
    if asr is None and settings.asr_model:
        asr = load_asr(settings.asr_model, device=settings.device, language=settings.language, offline=settings.offline)
    sandbox = sandbox or Sandbox(settings.sandbox_policy())
    policy = sandbox.policy

    @asynccontextmanager
    async def lifespan(_app: FastMCP):
        if settings.warm_up:
            engine.warm_up_in_background()
        yield {}

    inline_mb = policy.max_inline_bytes / 2**20
    extra = {}
    if "max_request_body_size" in inspect.signature(FastMCP.__init__).parameters:  # HTTP body cap (newer 1.x only)
        # room for the largest audio_base64 (4/3 of the bytes) plus the JSON around it
        extra["max_request_body_size"] = max(4 * 2**20, int(policy.max_inline_bytes * 4 / 3) + 2**20)
    server = FastMCP(
        SERVER_NAME,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        **extra,
    )
    where = _where_text(sandbox)
    read_only = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=policy.allow_urls)

    # -- analyze_speech_emotion ------------------------------------------------------------------

    analyze_description = (
        "Analyse HOW something was said in ONE speech recording and return its affect report. " + _SCALES + " "
        "Give the audio by reference, exactly one of: path (" + where + "), url (" +
        ("enabled: http(s) only, size-capped" if policy.allow_urls else "disabled on this server") + "), or "
        f"audio_base64 (for programs; at most {inline_mb:g} MiB). " + _TIMELINE_HELP + " "
        "Long recordings take a while (progress is reported). For several files use analyze_speech_emotion_batch."
    )

    async def analyze_one(ctx: Context, *, path: str | None, url: str | None, audio_base64: str | None,
                          timeline: bool | None, window: float | None, hop: float | None, vad: str | None,
                          backend: str | None) -> CallToolResult:
        t0 = time.perf_counter()
        try:
            kind = validate_one_source(path=path, url=url, audio_base64=audio_base64)
            async with _audio_source(sandbox, kind, path, url, audio_base64) as (audio, name):
                analyzer = await _analyzer(ctx, engine, backend, window, hop, vad)
                report = await run_stoppable(engine.analyze, analyzer, audio, name=name, timeline=timeline,
                                             progress=_window_progress(ctx, safe_name(name or "audio")))
        except Exception as e:  # noqa: BLE001 - every failure becomes an error result; the server keeps serving
            raise _tool_error(e, "analyze_speech_emotion") from e
        log.info("analysed %s (%s, %.1f s of audio) in %.2f s", safe_name(report.source), kind, report.duration, time.perf_counter() - t0)
        return _result(report, report.description)

    if len(engine.names) > 1:
        Backends = Literal[engine.names]  # type: ignore[valid-type]
        BackendArg = Annotated[Backends | None, Field(
            description=f"Which model to use: {', '.join(engine.names)} (default {engine.default}).")]

        async def analyze_speech_emotion(
            ctx: Context, path: PathArg = None, url: UrlArg = None, audio_base64: Base64Arg = None,
            timeline: TimelineArg = None, window: WindowArg = None, hop: HopArg = None, vad: VadArg = None,
            backend: BackendArg = None,
        ) -> Annotated[CallToolResult, AffectReport]:
            return await analyze_one(ctx, path=path, url=url, audio_base64=audio_base64, timeline=timeline,
                                     window=window, hop=hop, vad=vad, backend=backend)
    else:
        async def analyze_speech_emotion(
            ctx: Context, path: PathArg = None, url: UrlArg = None, audio_base64: Base64Arg = None,
            timeline: TimelineArg = None, window: WindowArg = None, hop: HopArg = None, vad: VadArg = None,
        ) -> Annotated[CallToolResult, AffectReport]:
            return await analyze_one(ctx, path=path, url=url, audio_base64=audio_base64, timeline=timeline,
                                     window=window, hop=hop, vad=vad, backend=None)

    server.add_tool(analyze_speech_emotion, name="analyze_speech_emotion", title="Analyse speech emotion",
                    description=analyze_description, annotations=read_only)

    # -- analyze_speech_emotion_batch --------------------------------------------------------------

    batch_description = (
        f"Analyse HOW something was said in SEVERAL recordings (at most {policy.max_batch_files} per call) and return one "
        "affect report per file, plus a one-line-per-file summary for comparing them - e.g. 'which of these calls "
        "sounds angriest?' or 'who sounds most stressed?'. Give either paths (a list) or folder (+ optional pattern); "
        f"{where}. A file that cannot be analysed gets an error entry; the others are still analysed. " + _SCALES + " "
        "Timelines are left out unless timeline=true (they make the result large)."
    )

    async def batch_files(ctx: Context, *, paths: list[str] | None, folder: str | None, pattern: str | None,
                          timeline: bool | None, window: float | None, hop: float | None, vad: str | None,
                          backend: str | None) -> CallToolResult:
        try:
            kind = validate_one_source(paths=paths or None, folder=folder)
            if kind == "folder":
                files = await anyio.to_thread.run_sync(sandbox.files.list_folder, folder, pattern)
                if not files:
                    raise _no_files(folder, pattern)
            else:
                if len(paths) > policy.max_batch_files:
                    raise ToolError(f"{len(paths)} paths given; one call analyses at most {policy.max_batch_files}. Split them over several calls")
                files = list(paths)
            analyzer = await _analyzer(ctx, engine, backend, window, hop, vad)
        except Exception as e:  # noqa: BLE001
            raise _tool_error(e, "analyze_speech_emotion_batch") from e
        results: list[FileResult] = []
        # The call's time limit covers all its files: each gets what the ones before it left.
        limit = engine.options.time_limit
        deadline = None if limit is None else time.monotonic() + limit
        for i, user_path in enumerate(files):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                results.append(FileResult(source=user_path, error=(
                    f"not analysed: this call reached its time limit ({limit:g} s) before this file; analyse the "
                    "remaining files in another call")))
                continue
            await _report_progress(ctx, i, len(files), f"analysing {safe_name(user_path)}")
            try:
                with await anyio.to_thread.run_sync(sandbox.files.open_file, user_path) as opened:
                    report = await run_stoppable(engine.analyze, analyzer, opened.file, name=opened.name,
                                                 timeline=True if timeline else False, time_limit=remaining)
                results.append(FileResult(source=user_path, report=report))
            except SERError as e:
                results.append(FileResult(source=user_path, error=_message(e)))
            except Exception as e:  # noqa: BLE001 - one broken file must not sink the batch
                log.exception("unexpected error on %s", safe_name(user_path))
                results.append(FileResult(source=user_path, error=_safe(f"internal error ({type(e).__name__}: {e})")))
        await _report_progress(ctx, len(files), len(files), "done")
        ok = sum(r.report is not None for r in results)
        batch = BatchReport(results=results, analysed=ok, failed=len(results) - ok, summary=_summary(results))
        log.info("batch: %d analysed, %d failed", batch.analysed, batch.failed)
        return _result(batch, batch.summary)

    if len(engine.names) > 1:
        async def analyze_speech_emotion_batch(
            ctx: Context, paths: PathsArg = None, folder: FolderArg = None, pattern: PatternArg = None,
            timeline: Annotated[bool | None, Field(description="true: include each file's segment timeline.")] = None,
            window: WindowArg = None, hop: HopArg = None, vad: VadArg = None, backend: BackendArg = None,
        ) -> Annotated[CallToolResult, BatchReport]:
            return await batch_files(ctx, paths=paths, folder=folder, pattern=pattern, timeline=timeline,
                                     window=window, hop=hop, vad=vad, backend=backend)
    else:
        async def analyze_speech_emotion_batch(
            ctx: Context, paths: PathsArg = None, folder: FolderArg = None, pattern: PatternArg = None,
            timeline: Annotated[bool | None, Field(description="true: include each file's segment timeline.")] = None,
            window: WindowArg = None, hop: HopArg = None, vad: VadArg = None,
        ) -> Annotated[CallToolResult, BatchReport]:
            return await batch_files(ctx, paths=paths, folder=folder, pattern=pattern, timeline=timeline,
                                     window=window, hop=hop, vad=vad, backend=None)

    server.add_tool(analyze_speech_emotion_batch, name="analyze_speech_emotion_batch",
                    title="Analyse speech emotion in several files", description=batch_description,
                    annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False))

    # -- transcribe_speech_emotion ------------------------------------------------------------------

    transcribe_description = (
        "Transcribe ONE speech recording and give each spoken segment the emotion its voice expresses: the words with "
        "start/end seconds, and per segment the expressed emotion, confidence and valence/arousal/dominance (the "
        "overlapping analysis windows, weighted by overlap; null where no speech was analysed), plus the full affect "
        "report. Use it when you need to know WHICH words were said how - e.g. 'when did the caller get angry, and "
        "about what?'. " + _SCALES + " Give the audio as for analyze_speech_emotion: exactly one of path (" + where +
        "), url, or audio_base64. " +
        (f"Speech recognition runs on this server ({asr.model_id}); pass transcript only if you already have the words."
         if asr is not None else
         "This server has no speech recogniser configured (SER_ASR_MODEL), so pass the words as transcript.")
    )

    async def transcribe_speech_emotion(
        ctx: Context, path: PathArg = None, url: UrlArg = None, audio_base64: Base64Arg = None,
        transcript: TranscriptArg = None, vad: VadArg = None,
    ) -> Annotated[CallToolResult, EmotionTranscript]:
        try:
            kind = validate_one_source(path=path, url=url, audio_base64=audio_base64)
            if transcript is not None and transcript.strip():
                recogniser = GivenTranscript(transcript)
            elif asr is None:
                raise ToolError("this server has no speech recogniser configured (SER_ASR_MODEL); pass the words "
                                "as transcript, or use analyze_speech_emotion for the affect alone")
            else:
                recogniser = asr
            async with _audio_source(sandbox, kind, path, url, audio_base64) as (audio, name):
                analyzer = await _analyzer(ctx, engine, None, None, None, vad)
                await _report_progress(ctx, 0, None, "transcribing and analysing")
                result = await run_stoppable(engine.transcribe, analyzer, recogniser, audio, name=name)
        except Exception as e:  # noqa: BLE001 - every failure becomes an error result
            raise _tool_error(e, "transcribe_speech_emotion") from e
        text = result.report.description + "\n" + "\n".join(transcript_lines(result))
        return _result(result, text)

    server.add_tool(transcribe_speech_emotion, name="transcribe_speech_emotion",
                    title="Emotion-aware transcript", description=transcribe_description, annotations=read_only)

    # -- resources -------------------------------------------------------------------------------

    @server.resource(LABELS_URI, name="labels", title="Emotion labels and scales", mime_type="application/json",
                     description="The 7 emotions (in report order), the valence/arousal/dominance scales and what confidence means.")
    def labels() -> str:
        return json.dumps(label_set(), indent=2)

    @server.resource(SCHEMA_URI, name="affect_report_schema", title="Affect report JSON schema", mime_type="application/json",
                     description="JSON schema of the affect report the analysis tools return (every field described).")
    def schema() -> str:
        return json.dumps(report_json_schema(), indent=2)

    @server.resource(CONFIG_URI, name="config", title="What this server accepts", mime_type="application/json",
                     description="Allowed folders, size and duration limits, whether URLs are fetched, the backends and whether the model is loaded.")
    def config() -> str:
        return json.dumps({
            "allowed_folders": [str(d) for d in policy.allowed_dirs],
            "hard_links_allowed": policy.allow_hardlinks,
            "url_fetching": policy.allow_urls,
            "max_file_mb": policy.max_file_bytes / 2**20,
            "max_audio_base64_mb": inline_mb,
            "max_download_mb": policy.max_download_bytes / 2**20 if policy.allow_urls else None,
            "max_duration_s": engine.options.limits.max_duration,
            "max_batch_files": policy.max_batch_files,
            "backends": list(engine.names),
            "default_backend": engine.default,
            "model_loaded": engine.is_loaded(),
            "max_windows": engine.options.max_windows,
            "call_time_limit_s": engine.options.time_limit,
            "window_s": engine.options.segmentation.window,
            "hop_s": engine.options.segmentation.step,
            "speech_recogniser": asr.model_id if asr is not None else None,
        }, indent=2)

    # -- prompt ----------------------------------------------------------------------------------

    @server.prompt(name="empathetic_reply", title="Empathetic reply",
                   description="Draft a reply that responds to how the person sounded, from an affect report "
                               "(the JSON an analysis tool returned, or its description) and optionally what they said.")
    def empathetic_reply(
        affect_report: Annotated[str, Field(description="The affect report JSON from analyze_speech_emotion (or its description text).")],
        transcript: Annotated[str | None, Field(description="What the person said (their words), if known.")] = None,
        situation: Annotated[str | None, Field(description="Context for the reply, e.g. 'customer support call'.")] = None,
    ) -> list[UserMessage]:
        return [UserMessage(render_empathetic_prompt(affect_report, transcript, situation))]

    return server


# -- helpers ---------------------------------------------------------------------------------------

async def run_stoppable(func, /, *args, **kwargs):
    """`func(*args, cancel=event, **kwargs)` in a worker thread; when the calling task is cancelled -
    the client sent notifications/cancelled (the SDK cancels the request's task) or went away (the
    SDK cancels every request in flight) - the event is set, the work stops at its next check (within
    one batch), and the cancellation goes on up once the thread has ended and freed its slot.

    anyio waits for a worker thread even when its task is cancelled (the wait is shielded), so a
    sibling task that only sleeps carries the cancellation to the thread.
    """
    stop = threading.Event()
    state = {"finished": False, "cancelled_at": None}

    async def carry_cancellation() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            if not state["finished"]:
                state["cancelled_at"] = time.perf_counter()
            stop.set()

    result = error = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(carry_cancellation)
        try:
            result = await anyio.to_thread.run_sync(functools.partial(func, *args, cancel=stop, **kwargs))
        except Exception as e:  # noqa: BLE001 - raised below, outside the task group (no exception group)
            error = e
        finally:
            state["finished"] = True
            tg.cancel_scope.cancel()
    if state["cancelled_at"] is not None:
        log.info("call cancelled (by the client, or it disconnected); its worker stopped %.3f s later",
                 time.perf_counter() - state["cancelled_at"])
        await anyio.lowlevel.checkpoint()  # raises the cancellation
    if error is not None:
        raise error
    return result


@asynccontextmanager
async def _audio_source(sandbox: Sandbox, kind: str, path: str | None, url: str | None, audio_base64: str | None):
    """(audio, name) for the one source given: an allowed file opened once (closed on leaving), a
    downloaded URL's bytes, or decoded base64. The decoder reads the open file, never the name again."""
    if kind == "path":
        opened = await anyio.to_thread.run_sync(sandbox.files.open_file, path)
        with opened:
            yield opened.file, opened.name
    elif kind == "url":
        yield await sandbox.fetch_url(url)
    else:
        yield await anyio.to_thread.run_sync(sandbox.files.decode_base64, audio_base64), None


async def _analyzer(ctx: Context, engine: Engine, backend: str | None, window, hop, vad):
    if not engine.is_loaded(backend):
        await _report_progress(ctx, 0, None, "loading the emotion model (first call only)")
    return await anyio.to_thread.run_sync(functools.partial(engine.analyzer, backend, window=window, hop=hop, vad=vad))


def _window_progress(ctx: Context, label: str):
    """A progress callback for Analyzer.analyze (runs in the worker thread) that notifies the client."""

    def progress(done: int, total: int) -> None:
        try:
            anyio.from_thread.run(_report_progress, ctx, done, total, f"{label}: {done}/{total} windows")
        except Exception:  # noqa: BLE001 - a lost notification must not fail the analysis
            log.debug("progress notification failed", exc_info=True)

    return progress


async def _report_progress(ctx: Context, done: float, total: float | None, message: str) -> None:
    try:
        await ctx.report_progress(done, total, message)
    except Exception:  # noqa: BLE001 - e.g. the client went away; the work goes on
        log.debug("progress notification failed", exc_info=True)


def _message(e: SERError) -> str:
    text = str(e)
    if isinstance(e, NoSpeechError):  # the core's hint names the CLI flag
        text = text.replace("try --vad energy", "call again with vad='energy'")
    return _safe(text)


def _safe(text: str) -> str:
    """Every message an LLM reads may quote a caller's path or a file name: no line breaks, escapes or
    bidi controls from them reach the text (see ser_tool.safe_name)."""
    return safe_name(text, MESSAGE_MAX_CHARS)


def _tool_error(e: Exception, tool: str) -> ToolError:
    if isinstance(e, ToolError):
        return e
    if isinstance(e, SERError):
        log.info("%s refused: %s", tool, e)
        return ToolError(_message(e))
    if isinstance(e, ValidationError):
        return ToolError(_safe(f"invalid arguments: {e}"))
    log.exception("%s: unexpected error", tool)
    return ToolError(_safe(f"internal error in {tool} ({type(e).__name__}: {e}); this is a bug in ser-tool's MCP server"))


def _no_files(folder: str, pattern: str | None) -> ToolError:
    what = f"matching {pattern!r}" if pattern else "with an audio extension (.wav, .flac, .ogg, .opus, .mp3, ...)"
    return ToolError(_safe(f"{folder} has no files {what}"))


def _result(model: BaseModel, text: str) -> CallToolResult:
    """Structured content (validated against the published schema) + the text an LLM reads first + the JSON."""
    data = model.model_dump(mode="json")
    return CallToolResult(
        content=[TextContent(type="text", text=text), TextContent(type="text", text=json.dumps(data))],
        structuredContent=data,
    )


def _summary(results: list[FileResult]) -> str:
    """One line per file. Names are escaped (a newline in a file name must not start a line of its own);
    the structured results keep them raw (JSON escapes them)."""
    lines = []
    for r in results:
        name = safe_name(r.source)
        if r.report is None:
            lines.append(f"{name}: ERROR {_safe(r.error or '')}")
            continue
        o = r.report.overall
        dims = f", arousal {o.dimensions.arousal:.2f}, valence {o.dimensions.valence:.2f}" if o.dimensions else ""
        top = sorted(zip(EMOTIONS, o.probabilities.as_tuple()), key=lambda x: -x[1])[:3]
        probs = ", ".join(f"{e} {p:.2f}" for e, p in top)
        lines.append(f"{name}: {o.emotion} (confidence {o.confidence:.2f}{dims}; {probs}; {r.report.duration:.1f} s)")
    return "\n".join(lines)


def _where_text(sandbox: Sandbox) -> str:
    dirs = sandbox.policy.allowed_dirs
    if not dirs:
        return "reading files is disabled on this server: no allowed folders are configured"
    return "files must lie inside the allowed folders: " + ", ".join(str(d) for d in dirs)


def label_set() -> dict[str, Any]:
    """The label set and scales, from the report schema's own field descriptions (one source of truth)."""
    return {
        "meaning": "Scores describe emotion as expressed in the voice (tone, prosody), not what the speaker feels, "
                   "and ignore the words' meaning.",
        "emotions": [{"name": e, "description": EmotionProbabilities.model_fields[e].description} for e in EMOTIONS],
        "emotion_order": list(EMOTIONS),
        "probabilities": "0..1 per emotion, summing to 1, always in emotion_order.",
        "dimensions": [{"name": d, "range": [0.0, 1.0], "description": Dimensions.model_fields[d].description}
                       for d in DIMENSIONS],
        "dimension_order": list(DIMENSIONS),
        "confidence": Affect.model_fields["confidence"].description,
        "uncertain_below": 0.3,
    }


def render_empathetic_prompt(affect_report: str, transcript: str | None = None, situation: str | None = None) -> str:
    """The empathetic-reply prompt for one affect report (JSON or plain description)."""
    reading = _reading(affect_report)
    parts = [
        "Write a short, warm reply to the person below. Respond to how they sounded as well as to what they said.",
        "",
        "How they sounded (speech emotion recognition on their voice):",
        reading,
    ]
    if transcript:
        parts += ["", "What they said:", transcript.strip()]
    if situation:
        parts += ["", f"Situation: {situation.strip()}"]
    parts += [
        "",
        "Guidelines:",
        "- The reading describes emotion expressed in the voice, not what the person feels. Never tell them what they "
        "feel; reflect tentatively ('you sound ...', 'it seems ...') and invite them to correct you.",
        "- If the confidence is low or the reading is uncertain, do not name an emotion; respond to the words and keep "
        "a calm, open tone.",
        "- If voice and words disagree (e.g. 'I'm fine' in a sad voice), gently acknowledge both.",
        "- Match the energy: calmer and slower for high arousal or distress, lighter for positive low-stakes moments.",
        "- No diagnosis, no lecture; two to four sentences, then one helpful next step or question.",
    ]
    return "\n".join(parts)


def _reading(affect_report: str) -> str:
    text = (affect_report or "").strip()
    try:
        report = AffectReport.model_validate_json(text)
    except ValidationError:
        try:
            data = json.loads(text)
        except ValueError:
            return text or "(no affect report given)"
        desc = data.get("description") if isinstance(data, dict) else None
        return desc or text
    o = report.overall
    lines = [f"- expressed emotion: {o.emotion} (confidence {o.confidence:.2f}"
             + (", uncertain" if o.confidence < 0.3 else "") + ")"]
    if o.dimensions:
        d = o.dimensions
        lines.append(f"- valence {d.valence:.2f}, arousal {d.arousal:.2f}, dominance {d.dominance:.2f} (each 0..1)")
    lines.append(f"- summary: {report.description}")
    lines += [f"- caveat: {w}" for w in report.warnings]
    return "\n".join(lines)
