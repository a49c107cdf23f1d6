"""The MCP tools: module-level typed functions that return the pydantic result (AffectReport,
BatchReport, EmotionTranscript), so FastMCP publishes its schema as the tool's output schema. What
every call shares (the model pool, the sandbox, the speech recogniser) comes from the server's lifespan
context, a `ServerState`. Thin by design: argument checks, the sandbox, threads, cancellation and
progress live here; everything about emotion lives in ser_tool.

`add_tools` publishes them on a server, fitted to its configuration: descriptions that name its folders
and limits, a `backend` argument only when several backends are configured, and on every tool the text
arguments `detail` and `max_segments`. It is also the one place a failure becomes an error result
(`_tool_error`) and a result becomes structured content (always the full result) + text (by default a
compact summary of a few thousand characters at any recording length; `detail="full"` adds the JSON).

No `from __future__ import annotations` here: FastMCP reads the tool signatures at run time.
"""

import functools
import inspect
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Literal

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.session import ServerSession
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from ser_tool import (
    ASR,
    AffectReport,
    EmotionTranscript,
    GivenTranscript,
    SERError,
    safe_name,
)
from ser_tool.describe import (
    SUMMARY_MAX_CHARS, SUMMARY_MAX_SEGMENTS, UNCERTAIN_BELOW, file_failure, report_summary, report_text, transcript_text,
)

from mcp_server.messages import safe_text, tool_message
from mcp_server.pool import ModelPool
from mcp_server.sandbox import Sandbox, SandboxPolicy, validate_one_source
from mcp_server.settings import ServerSettings

log = logging.getLogger("mcp_server")


@dataclass(frozen=True)
class ServerState:
    """What every tool call shares: the server's lifespan context (`ctx.request_context.lifespan_context`)."""

    settings: ServerSettings
    pool: ModelPool  # the loaded backends; all model work runs there
    sandbox: Sandbox  # what a call may read: allowed files, inline audio, URLs when enabled
    asr: ASR | None = None  # the speech recogniser (settings.asr_model); None: callers pass the words


ToolContext = Context[ServerSession, ServerState]


# -- arguments -------------------------------------------------------------------------------------

_SCALES = (
    "Scores describe emotion as EXPRESSED in the voice (tone, prosody), not what the speaker actually feels, and "
    "they ignore the meaning of the words. Emotions (probabilities 0..1, summing to 1): neutral, happy, sad, angry, "
    f"fearful, disgusted, surprised. confidence 0..1 says how clearly the top emotion stands out: below about {UNCERTAIN_BELOW} the "
    "reading is uncertain, treat the emotion as a guess and say so. valence (0 negative .. 1 positive), arousal "
    "(0 calm .. 1 energetic), dominance (0 submissive .. 1 assertive), each 0..1 with 0.5 the middle; null when the "
    "model has none. 'description' is a ready summary for a reply; 'warnings' lists reliability caveats."
)
_TIMELINE_HELP = (
    "timeline: true to get a reading per segment (start/end seconds) when you need to know how the emotion CHANGES "
    "over time - a long call, a meeting, a conversation that escalates or calms down; false for one overall reading "
    "only (smaller result); omitted: included automatically when the recording is longer than one analysis window."
)

PathArg = Annotated[str | None, Field(
    description="Path of an audio file (WAV, FLAC, OGG/Opus, MP3, ...) inside one of the server's allowed folders, "
                "absolute or relative to an allowed folder. '..' is not allowed.")]
UrlArg = Annotated[str | None, Field(
    description="http(s) URL of an audio file, only if this server has URL fetching enabled (see ser://config).")]
Base64Arg = Annotated[str | None, Field(
    description="The bytes of an audio file, base64-encoded. For programs sending audio they hold in memory; "
                "do not type or invent base64 yourself. Size-capped (see ser://config).")]
TimelineArg = Annotated[bool | None, Field(description=_TIMELINE_HELP)]
BatchTimelineArg = Annotated[bool | None, Field(description="true: include each file's segment timeline.")]
WindowArg = Annotated[float | None, Field(
    ge=0.5, le=60.0,
    description="Analysis window in seconds for the timeline (default: the server's, 10 unless configured). Shorter windows show faster changes but "
                "are less reliable; longer speech stretches are cut into windows of this length.")]
HopArg = Annotated[float | None, Field(
    ge=0.25, le=60.0,
    description="Step between window starts in seconds; must not exceed window. Default: equal to window (no overlap) "
                "when you give window, else the server's hop (hop_s in ser://config).")]
VadArg = Annotated[Literal["webrtc", "energy"] | None, Field(
    description="Speech detector. 'webrtc' (default) finds speech; 'energy' analyses everything above the noise floor - "
                "use it when a quiet or noisy recording returned 'no speech detected'.")]
SpeakersArg = Annotated[int | Literal["auto"] | None, Field(
    description="Who sounded how in a conversation: the number of speakers (1-8), or 'auto' to estimate it. Then every "
                "speech segment of the timeline carries 'speaker' (1, 2, ... in order of first speech) and 'speakers' "
                "summarises each one (speaking time, overall affect, how it changes). Omit for one recording-wide reading.")]
BatchSpeakersArg = Annotated[int | Literal["auto"] | None, Field(
    description="For conversations: the number of speakers in each file (1-8), or 'auto' to estimate it per file. Then "
                "each report has 'speakers' (per speaker: speaking time, share, overall affect, how it changes) and the "
                "summary line adds each speaker's share and emotion; with timeline=true every speech segment carries "
                "'speaker'. Omit for one reading per file.")]
TranscriptSpeakersArg = Annotated[int | Literal["auto"] | None, Field(
    description="For a conversation: the number of speakers (1-8), or 'auto' to estimate it. Then each transcript "
                "segment carries 'speaker' (1, 2, ... in order of first speech: who says these words) and the report "
                "summarises each speaker's affect. Omit for no speaker attribution.")]
# Published only when the server has several backends, then as a choice of their names (see _fit_backend).
BackendArg = Annotated[str | None, Field(description="Which model to use (default: the server's first).")]
TranscriptArg = Annotated[str | None, Field(
    description="The words, if you already have them: then no speech recognition runs. Plain text becomes one segment over "
                "the whole recording (its emotion is the overall one); for per-segment emotion let the server transcribe.")]
DetailArg = Annotated[Literal["summary", "full"], Field(
    description="What the text result holds. 'summary' (default): a compact reading that stays a few thousand characters "
                "at any length - the description, the timeline as merged emotion episodes (brief changes absorbed), the "
                "main changes, the strongest moments and per-minute (or per-tenth) lines for long audio. 'full': the "
                "same plus the complete result as JSON text (large for long recordings; the structured result always "
                "holds it).")]
MaxSegmentsArg = Annotated[int | None, Field(
    ge=1, le=200,
    description=f"How many timeline lines the summary lists at most: every speech segment when there are this many or "
                f"fewer, else this many merged episodes. Default: {SUMMARY_MAX_SEGMENTS}, fewer if needed to keep the "
                f"text under {SUMMARY_MAX_CHARS} characters; a number you give is not trimmed.")]
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


# -- the tools -------------------------------------------------------------------------------------

async def analyze_speech_emotion(
    ctx: ToolContext, path: PathArg = None, url: UrlArg = None, audio_base64: Base64Arg = None,
    timeline: TimelineArg = None, window: WindowArg = None, hop: HopArg = None, vad: VadArg = None,
    backend: BackendArg = None, speakers: SpeakersArg = None,
) -> AffectReport:
    """The affect report of one recording."""
    state: ServerState = ctx.request_context.lifespan_context
    t0 = time.perf_counter()
    kind = validate_one_source(path=path, url=url, audio_base64=audio_base64)
    async with _audio_source(state.sandbox, kind, path, url, audio_base64) as (audio, name):
        analyzer = await _analyzer(ctx, state.pool, backend, window, hop, vad)
        report = await run_stoppable(state.pool.analyze, analyzer, audio, name=name, timeline=timeline, speakers=speakers,
                                     progress=_window_progress(ctx, safe_name(name or "audio")))
    log.info("analysed %s (%s, %.1f s of audio) in %.2f s", safe_name(report.source), kind, report.duration, time.perf_counter() - t0)
    return report


async def analyze_speech_emotion_batch(
    ctx: ToolContext, paths: PathsArg = None, folder: FolderArg = None, pattern: PatternArg = None,
    timeline: BatchTimelineArg = None, window: WindowArg = None, hop: HopArg = None, vad: VadArg = None,
    backend: BackendArg = None, speakers: BatchSpeakersArg = None,
) -> BatchReport:
    """One affect report (or error) per file, and a line per file to compare them."""
    state: ServerState = ctx.request_context.lifespan_context
    sandbox, pool = state.sandbox, state.pool
    kind = validate_one_source(paths=paths or None, folder=folder)
    if kind == "folder":
        files = await anyio.to_thread.run_sync(sandbox.files.list_folder, folder, pattern)
        if not files:
            raise _no_files(folder, pattern)
    else:
        cap = sandbox.policy.max_batch_files
        if len(paths) > cap:
            raise ToolError(f"{len(paths)} paths given; one call analyses at most {cap}. Split them over several calls")
        files = list(paths)
    analyzer = await _analyzer(ctx, pool, backend, window, hop, vad)
    results: list[FileResult] = []
    # The call's time limit covers all its files: each gets what the ones before it left.
    limit = pool.options.time_limit
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
                report = await run_stoppable(pool.analyze, analyzer, opened.file, name=opened.name,
                                             timeline=True if timeline else False, time_limit=remaining,
                                             speakers=speakers)
            results.append(FileResult(source=user_path, report=report))
        except SERError as e:
            results.append(FileResult(source=user_path, error=_message(e, "analyze_speech_emotion_batch")))
        except Exception as e:  # noqa: BLE001 - one broken file must not sink the batch
            log.exception("unexpected error on %s", safe_name(user_path))
            results.append(FileResult(source=user_path, error=_safe(f"internal error ({type(e).__name__}: {e})")))
    await _report_progress(ctx, len(files), len(files), "done")
    ok = sum(r.report is not None for r in results)
    batch = BatchReport(results=results, analysed=ok, failed=len(results) - ok, summary=_summary(results))
    log.info("batch: %d analysed, %d failed", batch.analysed, batch.failed)
    return batch


async def transcribe_speech_emotion(
    ctx: ToolContext, path: PathArg = None, url: UrlArg = None, audio_base64: Base64Arg = None,
    transcript: TranscriptArg = None, vad: VadArg = None, speakers: TranscriptSpeakersArg = None,
) -> EmotionTranscript:
    """The words of one recording, each segment with the emotion its voice expresses."""
    state: ServerState = ctx.request_context.lifespan_context
    kind = validate_one_source(path=path, url=url, audio_base64=audio_base64)
    if transcript is not None and transcript.strip():
        recogniser = GivenTranscript(transcript)
    elif state.asr is None:
        raise ToolError("this server has no speech recogniser configured (SER_ASR_MODEL, or the offline one: "
                        "pip install -e '.[asr]' on the server); pass the words as transcript, or use "
                        "analyze_speech_emotion for the affect alone")
    else:
        recogniser = state.asr
    async with _audio_source(state.sandbox, kind, path, url, audio_base64) as (audio, name):
        analyzer = await _analyzer(ctx, state.pool, None, None, None, vad)
        await _report_progress(ctx, 0, None, "transcribing and analysing")
        return await run_stoppable(state.pool.transcribe, analyzer, recogniser, audio, name=name, speakers=speakers)


# -- publishing ------------------------------------------------------------------------------------

def add_tools(server: FastMCP, state: ServerState) -> None:
    """Publish the tools on `server`, with descriptions that say what this server accepts."""
    policy = state.sandbox.policy
    where = _where_text(policy)
    read_only = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=policy.allow_urls)
    _publish(server, analyze_speech_emotion, state, title="Analyse speech emotion", annotations=read_only, description=(
        "Analyse HOW something was said in ONE speech recording and return its affect report. " + _SCALES + " "
        "Give the audio by reference, exactly one of: path (" + where + "), url (" +
        ("enabled: http(s) only, size-capped" if policy.allow_urls else "disabled on this server") + "), or "
        f"audio_base64 (for programs; at most {policy.max_inline_bytes / 2**20:g} MiB). " + _TIMELINE_HELP + " "
        "Long recordings take a while (progress is reported). For several files use analyze_speech_emotion_batch."
    ))
    _publish(server, analyze_speech_emotion_batch, state, title="Analyse speech emotion in several files",
             annotations=ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False), description=(
        f"Analyse HOW something was said in SEVERAL recordings (at most {policy.max_batch_files} per call) and return one "
        "affect report per file, plus a one-line-per-file summary for comparing them - e.g. 'which of these calls "
        "sounds angriest?' or 'who sounds most stressed?'. Give either paths (a list) or folder (+ optional pattern); "
        f"{where}. A file that cannot be analysed gets an error entry; the others are still analysed. " + _SCALES + " "
        "Timelines are left out unless timeline=true (they make the result large)."
    ))
    asr = state.asr
    _publish(server, transcribe_speech_emotion, state, title="Emotion-aware transcript", annotations=read_only, description=(
        "Transcribe ONE speech recording and give each spoken segment the emotion its voice expresses: the words with "
        "start/end seconds, and per segment the expressed emotion, confidence and valence/arousal/dominance (the "
        "overlapping analysis windows, weighted by overlap; null where no speech was analysed), plus the full affect "
        "report. Use it when you need to know WHICH words were said how - e.g. 'when did the caller get angry, and "
        "about what?'. " + _SCALES + " Give the audio as for analyze_speech_emotion: exactly one of path (" + where +
        "), url, or audio_base64. " +
        (f"Speech recognition runs on this server ({asr.model_id}); pass transcript only if you already have the words."
         if asr is not None else
         "This server has no speech recogniser configured (SER_ASR_MODEL), so pass the words as transcript.")
    ))


def _publish(server: FastMCP, tool: Callable[..., Awaitable[BaseModel]], state: ServerState, *, title: str,
             description: str, annotations: ToolAnnotations) -> None:
    """Register one tool function as this server publishes it (see `_fit_backend`), with the text
    arguments `detail` and `max_segments` added. Its result becomes structured content + text, and any
    failure an error result: the server keeps serving."""

    @functools.wraps(tool)
    async def call(detail: str = "summary", max_segments: int | None = None, **kwargs) -> CallToolResult:
        try:
            result = await tool(**kwargs)
        except Exception as e:  # noqa: BLE001 - every failure becomes an error result
            raise _tool_error(e, tool.__name__) from e
        return _result(result, detail=detail, max_segments=max_segments)

    call.__signature__ = _with_text_arguments(_fit_backend(inspect.signature(tool), state.pool))
    server.add_tool(call, name=tool.__name__, title=title, description=description, annotations=annotations)


def _with_text_arguments(signature: inspect.Signature) -> inspect.Signature:
    """The tool's signature plus `detail` and `max_segments`: how much text the result carries is the
    publishing layer's business, not the tool function's."""
    extra = [inspect.Parameter("detail", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="summary", annotation=DetailArg),
             inspect.Parameter("max_segments", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                               annotation=MaxSegmentsArg)]
    return signature.replace(parameters=[*signature.parameters.values(), *extra])


def _fit_backend(signature: inspect.Signature, pool: ModelPool) -> inspect.Signature:
    """The tool's signature with its `backend` argument fitted to the pool: a choice of the configured
    names when there are several, left out when there is one (a choice of one is noise to a model).
    FastMCP builds the published input schema and the argument validation from this one signature."""
    params = dict(signature.parameters)
    if "backend" not in params:
        return signature
    if len(pool.names) > 1:
        choice = Annotated[Literal[pool.names] | None, Field(  # type: ignore[valid-type]
            description=f"Which model to use: {', '.join(pool.names)} (default {pool.default}).")]
        params["backend"] = params["backend"].replace(annotation=choice)
    else:
        del params["backend"]
    return signature.replace(parameters=list(params.values()))


def _result(result: AffectReport | BatchReport | EmotionTranscript, *, detail: str = "summary",
            max_segments: int | None = None) -> CallToolResult:
    """Structured content (the full result, validated against the published schema) + the text an LLM
    reads: the compact summary, and with detail='full' the full JSON as a second text block."""
    data = result.model_dump(mode="json")
    content = [TextContent(type="text", text=_text(result, max_segments))]
    if detail == "full":
        content.append(TextContent(type="text", text=json.dumps(data)))
    return CallToolResult(content=content, structuredContent=data)


def _text(result: AffectReport | BatchReport | EmotionTranscript, max_segments: int | None) -> str:
    if isinstance(result, BatchReport):
        return result.summary
    if isinstance(result, EmotionTranscript):
        return transcript_text(result)
    n = len(result.timeline or ())
    return report_text(result, max_segments=max_segments, merged_note=(
        f"(The structured result holds the full timeline, {n} segments; call again with detail='full' for it as "
        "JSON text, or with a larger max_segments for more lines.)"))


# -- errors: the one place the MCP surface words a failure -----------------------------------------

def _message(e: SERError, tool: str) -> str:
    """The one place MCP words a core error: hints in the server's words, names escaped (mcp_server.messages)."""
    return tool_message(e, tool)


def _safe(text: str) -> str:
    return safe_text(text)


def _tool_error(e: Exception, tool: str) -> ToolError:
    if isinstance(e, ToolError):
        return e
    if isinstance(e, SERError):
        log.info("%s refused: %s", tool, e)
        return ToolError(_message(e, tool))
    if isinstance(e, ValidationError):
        return ToolError(_safe(f"invalid arguments: {e}"))
    log.exception("%s: unexpected error", tool)
    return ToolError(_safe(f"internal error in {tool} ({type(e).__name__}: {e}); this is a bug in ser-tool's MCP server"))


def _no_files(folder: str, pattern: str | None) -> ToolError:
    what = f"matching {pattern!r}" if pattern else "with an audio extension (.wav, .flac, .ogg, .opus, .mp3, ...)"
    return ToolError(_safe(f"{folder} has no files {what}"))


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


async def _analyzer(ctx: ToolContext, pool: ModelPool, backend: str | None, window, hop, vad):
    if not pool.is_loaded(backend):
        await _report_progress(ctx, 0, None, "loading the emotion model (first call only)")
    return await anyio.to_thread.run_sync(functools.partial(pool.analyzer, backend, window=window, hop=hop, vad=vad))


def _window_progress(ctx: ToolContext, label: str):
    """A progress callback for Analyzer.analyze (runs in the worker thread) that notifies the client."""

    def progress(done: int, total: int) -> None:
        try:
            anyio.from_thread.run(_report_progress, ctx, done, total, f"{label}: {done}/{total} windows")
        except Exception:  # noqa: BLE001 - a lost notification must not fail the analysis
            log.debug("progress notification failed", exc_info=True)

    return progress


async def _report_progress(ctx: ToolContext, done: float, total: float | None, message: str) -> None:
    try:
        await ctx.report_progress(done, total, message)
    except Exception:  # noqa: BLE001 - e.g. the client went away; the work goes on
        log.debug("progress notification failed", exc_info=True)


def _summary(results: list[FileResult]) -> str:
    """One line per file. Names are escaped (a newline in a file name must not start a line of its own);
    the structured results keep them raw (JSON escapes them)."""
    lines = []
    for r in results:
        name = safe_name(r.source)
        if r.report is None:  # the error names the file (else file_failure puts the name in front), once
            lines.append(f"ERROR {file_failure(r.source, r.error or '')}")
            continue
        lines.append(f"{name}: {report_summary(r.report)}")
    return "\n".join(lines)


def _where_text(policy: SandboxPolicy) -> str:
    dirs = policy.allowed_dirs
    if not dirs:
        return "reading files is disabled on this server: no allowed folders are configured"
    return "files must lie inside the allowed folders: " + ", ".join(str(d) for d in dirs)
