"""The LangChain tool: speech emotion recognition for any LangChain agent. Thin by design.

    from ser_tool import SpeechEmotionTool
    tool = SpeechEmotionTool()          # the default model, loaded on the first call, then reused
    msg = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name, "args": {"audio_path": "call.wav"}})
    msg.content, msg.artifact           # the summary for the LLM, the AffectReport for code

The LLM reads a compact summary (content: the description, then the timeline as segments or, for a
long recording, merged episodes, main changes, peaks and per-part lines - a few thousand characters at
any length; `ser_tool.describe.report_text`); code gets the full AffectReport (or EmotionTranscript) as
the tool message's artifact. User errors (unreadable file, path not allowed, no speech) raise
ToolException, which the agent sees as a message it can recover from; bugs propagate.
Needs the `langchain` extra (`pip install -e ".[langchain]"` in the ser-tool source folder); the only
module of ser_tool that imports langchain.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

try:
    from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
    from langchain_core.tools import BaseTool, ToolException
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the LangChain tool needs the langchain extra, which is not installed: pip install -e \".[langchain]\" "
        "in the ser-tool source folder"
    ) from e
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from ser_tool.access import AllowedFolders
from ser_tool.analyzer import Analyzer
from ser_tool.asr import ASR, GivenTranscript
from ser_tool.describe import MESSAGE_MAX_CHARS, UNCERTAIN_BELOW, report_text, safe_name, transcript_text
from ser_tool.errors import Hint, SERError
from ser_tool.report import AffectReport, EmotionTranscript

__all__ = ["SpeechEmotionInput", "SpeechEmotionTool"]

TOOL_DESCRIPTION = (
    "Hear HOW something was said in a speech recording: returns the emotion the speaker's voice expresses "
    f"(neutral, happy, sad, angry, fearful, disgusted, surprised), a confidence (0..1; below {UNCERTAIN_BELOW} it is a guess), "
    "valence/arousal/dominance (0..1) and a short description. This is expressed emotion in the tone of voice, "
    "not what the speaker feels and not the meaning of the words. Give audio_path (a file path). Ask for "
    "timeline=true to see how the emotion changes over a long recording, and transcribe=true to get the words "
    "with the emotion of each spoken segment; if you already have the words, pass them as transcript instead."
)


class SpeechEmotionInput(BaseModel):
    """Arguments of the speech emotion tool: one audio source plus options."""

    audio_path: str | None = Field(
        default=None, description="Path of an audio file (WAV, FLAC, OGG/Opus, MP3, ...). Give this or audio_base64.")
    audio_base64: str | None = Field(
        default=None, description="The bytes of an audio file, base64-encoded - for programs, never typed by a model.")
    timeline: bool | None = Field(
        default=None, description="true: a reading per segment over time; false: overall only; omitted: automatic "
                                  "(included for recordings longer than one analysis window).")
    speakers: int | Literal["auto"] | None = Field(
        default=None, description="For a conversation: the number of speakers (1-8) or 'auto' to estimate it; then "
                                  "each segment says which speaker (1, 2, ... in order of first speech) and the result "
                                  "summarises the affect of each speaker. Omitted: one reading for the whole recording.")
    transcript: str | None = Field(
        default=None, description="The words that were said, if you already have them: the result is then the "
                                  "emotion-aware transcript with these words (no speech recognition runs). Plain text "
                                  "is one segment over the whole recording.")
    transcribe: bool = Field(
        default=False, description="true: also recognise the words (speech recognition) and give each spoken segment "
                                   "its expressed emotion. Not needed when you pass transcript.")


def _invalid_arguments(error: Exception) -> str:
    """What the LLM reads when its arguments do not fit the schema (instead of a pydantic traceback)."""
    problems = []
    for item in getattr(error, "errors", lambda: [])():
        where = ".".join(str(p) for p in item.get("loc", ())) or "arguments"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    detail = "; ".join(problems) or str(error)
    return (f"invalid arguments ({detail}). audio_path is a file path, timeline true/false, transcript the words as "
            "text (if you have them), transcribe true/false (speech recognition)")


class SpeechEmotionTool(BaseTool):
    """Speech emotion recognition as a LangChain tool (sync and async), sharing one model across calls.

    analyzer: the Analyzer to use (default: the default backend's model, loaded on the first call).
    asr: a speech recogniser for transcribe=true (e.g. `ser_tool.asr.WhisperASR("openai/whisper-small")`).
    The arguments the LLM fills in mean what they mean on every surface: `transcript` is the words (as in the
    MCP tool transcribe_speech_emotion), `transcribe` the switch that asks for speech recognition.
    allowed_dirs: if set, audio_path must lie inside one of these folders - the same rules as the MCP
    server's (`ser_tool.AllowedFolders`: relative paths are looked up in each folder, '..' is refused,
    links may not lead out, the file is opened once and decoded from that open file); None: any
    file this process can read (relative to the working directory).
    max_base64_mb: largest audio_base64 payload (decoded). allow_hardlinks: with allowed_dirs, also
    read files that have more than one name (off: refused, since another name may lie outside).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = "analyze_speech_emotion"
    description: str = TOOL_DESCRIPTION
    args_schema: type[BaseModel] = SpeechEmotionInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True
    # arguments of the wrong type (e.g. transcript=true) come back to the LLM as a message it can act on
    handle_validation_error: bool | str | Callable[..., str] | None = _invalid_arguments

    analyzer: Analyzer | None = Field(default=None, exclude=True)
    asr: Any = Field(default=None, exclude=True)
    allowed_dirs: list[Path] | None = None
    max_base64_mb: float = Field(default=10.0, gt=0)
    allow_hardlinks: bool = False

    _shared: Analyzer | None = PrivateAttr(default=None)

    def _analyzer(self) -> Analyzer:
        if self.analyzer is not None:
            return self.analyzer
        if self._shared is None:
            self._shared = Analyzer()
        return self._shared

    def _run(
        self,
        audio_path: str | None = None,
        audio_base64: str | None = None,
        timeline: bool | None = None,
        transcript: str | None = None,
        transcribe: bool = False,
        speakers: int | Literal["auto"] | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, AffectReport | EmotionTranscript]:
        if (audio_path is None) == (audio_base64 is None):
            raise ToolException("give exactly one of audio_path or audio_base64")
        words = transcript.strip() if transcript is not None and transcript.strip() else None
        if transcribe and words is None and self.asr is None:
            raise ToolException("transcribe=true needs a speech recogniser, and none is configured for this tool; "
                                "pass the words as transcript if you have them, or call again without transcribe")
        try:
            with self._audio(audio_path, audio_base64) as (audio, name):
                if words is not None or transcribe:
                    asr: ASR = GivenTranscript(words) if words is not None else self.asr
                    result = self._analyzer().transcribe(audio, asr, name=name, speakers=speakers)
                    return transcript_text(result, heading="Transcript with expressed emotion per segment:"), result
                report = self._analyzer().analyze(audio, name=name, timeline=timeline, speakers=speakers)
        except SERError as e:
            raise ToolException(_message(e)) from e
        return report_text(report), report

    async def _arun(self, *args: Any, run_manager: AsyncCallbackManagerForToolRun | None = None,
                    **kwargs: Any) -> tuple[str, AffectReport | EmotionTranscript]:
        """`_run`'s arguments (the tool's args_schema); the model work blocks, so it runs off the event loop."""
        return await asyncio.to_thread(self._run, *args, **kwargs)

    def allowed_folders(self) -> AllowedFolders:
        """The file policy this tool applies (the one the MCP server applies too)."""
        return AllowedFolders(
            folders=None if self.allowed_dirs is None else tuple(self.allowed_dirs),
            max_file_bytes=self._analyzer().options.limits.max_file_bytes,
            max_inline_bytes=int(self.max_base64_mb * 2**20),
            allow_hardlinks=self.allow_hardlinks,
        )

    @contextmanager
    def _audio(self, audio_path: str | None, audio_base64: str | None) -> Iterator[tuple[Any, str | None]]:
        """(audio, name): decoded base64, or the file opened once (closed on leaving) for the decoder to read."""
        folders = self.allowed_folders()
        if audio_base64 is not None:
            yield folders.decode_base64(audio_base64), None
            return
        with folders.open_file(audio_path) as opened:
            yield opened.file, opened.name


# Settings that are this tool's own fields; every other setting belongs to the tool's analyzer.
_TOOL_FIELDS = {"allowed_dirs": "the tool's allowed_dirs", "max_inline_mb": "the tool's max_base64_mb",
                "allow_hardlinks": "the tool's allow_hardlinks=True"}


def tool_words(hint: Hint) -> str | None:
    """A hint for whoever set the tool up: one of its fields, or an option of its analyzer."""
    if hint.setting == "folder":  # the tool takes one file; the message says so already
        return None
    if hint.setting in _TOOL_FIELDS:
        return _TOOL_FIELDS[hint.setting]
    if hint.value is None:
        return f"the {hint.setting} option of the tool's analyzer"
    return f"the tool's analyzer with {hint.setting}={hint.value!r}"


def _message(e: SERError) -> str:
    """The error text the LLM reads; it may quote a file name, so control characters are escaped."""
    return safe_name(e.worded(tool_words), MESSAGE_MAX_CHARS)
