"""The fixed pipeline (deterministic; what the evaluations run):

    audio -> ASR (unless a transcript is given) -> SER -> render the affect into the prompt -> chat model -> answer

in two steps: `perceive` (ASR + SER, once per recording) and `answer` (prompt + chat model, per question
and mode; `run` is both), and `Conversation`, the same with follow-up turns. The affect mode chooses what the prompt carries:
"none" (words only), "predicted" (ser-tool's affect), "oracle" (a dataset's labels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agents.errors import AgentError, ChatModelError
from agents.models import chat_model
from agents.prompt import (
    AFFECT_MODES,
    DEFAULT_TEMPLATE,
    AffectMode,
    OracleAffect,
    PromptTemplate,
    RenderedPrompt,
    render_prompt,
)
from agents.replies import NUDGES, degenerate_reply, warning_text
from ser_tool import (
    ASR,
    SAMPLE_RATE,
    AffectReport,
    Analyzer,
    EmotionTranscript,
    GivenTranscript,
    SERError,
    Transcript,
    open_audio,
    transcribe_with_emotion,
)

__all__ = ["AffectPipeline", "Answer", "Conversation", "Perception", "Reply"]

Audio = str | Path | bytes | np.ndarray
GivenWords = str | Transcript | Sequence[Any]
ProgressCallback = Callable[[int, int], None]  # (windows done, windows total), as Analyzer.analyze calls it


@dataclass(frozen=True)
class Perception:
    """What the pipeline heard about one recording, enough for every affect mode it was perceived for.

    words: what was said - as given, or recognised by the ASR; None when unknown.
    report: how it was said (the affect report), when the voice was analysed (mode 'predicted').
    aligned: the words aligned with the report's timeline, each segment with its affect (both known).
    """

    words: Transcript | str | None
    report: AffectReport | None = None
    aligned: EmotionTranscript | None = None

    @property
    def transcript(self) -> EmotionTranscript | Transcript | str | None:
        """The richest form of the words: aligned with the affect when the voice was analysed."""
        return self.aligned if self.aligned is not None else self.words


@dataclass(frozen=True)
class Answer:
    answer: str
    prompt: RenderedPrompt
    perception: Perception
    mode: str
    messages: list[BaseMessage] = field(default_factory=list)


class AffectPipeline:
    """ASR -> SER -> prompt -> chat model, with one Analyzer and one ASR shared by every call.

    Perceiving (ASR + SER) and answering are separate steps, so a recording can be heard once and
    questioned in several modes: `perceive(audio, modes=[...])`, then `answer(question, perception, mode=...)`;
    `run` does both. Every chat-model call goes through `reply` (and so through `self.model`): wrap the
    model (e.g. with a cache) to change how calls are made.

    model: a LangChain chat model object, a provider:model string, or "local" (see agents.models).
    analyzer: the SER analyzer (default: the default backend's model, loaded on first use).
    asr: the speech recogniser used when no transcript is given (None: without a transcript the words are
    unknown; every mode still answers, and the prompt says so).
    mode: "none" | "predicted" | "oracle" (the default of every call). temperature: passed to the chat model.
    """

    def __init__(self, model: Any, *, analyzer: Analyzer | None = None, asr: ASR | None = None,
                 mode: AffectMode = "predicted", template: PromptTemplate = DEFAULT_TEMPLATE,
                 temperature: float | None = None) -> None:
        self.model = chat_model(model, temperature=temperature)
        self.analyzer = analyzer
        self.asr = asr
        self.mode = _checked_mode(mode)
        self.template = template
        self.temperature = temperature

    def _analyzer(self) -> Analyzer:
        if self.analyzer is None:
            self.analyzer = Analyzer()
        return self.analyzer

    def perceive(self, audio: Audio | None = None, transcript: GivenWords | None = None, *,
                 sample_rate: int | None = None, name: str | None = None,
                 modes: Sequence[AffectMode] | None = None, progress: ProgressCallback | None = None) -> Perception:
        """Hear one recording once, as the given affect modes need it (default: the pipeline's mode): the
        words (given, or recognised by the ASR, which runs at most once; None when neither) and, for
        'predicted', the affect report with the words aligned to its timeline.

        audio: a file path, the bytes of an audio file, or a NumPy array of samples with its `sample_rate`.
        progress: called with (windows done, windows total) as the emotion model works (Analyzer.analyze).
        """
        modes = (self.mode,) if modes is None else tuple(_checked_mode(m) for m in modes)
        if not modes:
            raise AgentError(f"no affect mode to perceive for; give modes from {', '.join(AFFECT_MODES)}")
        analyse = "predicted" in modes
        if analyse and audio is None:
            raise AgentError("affect mode 'predicted' needs the audio (pass audio=...)")
        listen = transcript is None and self.asr is not None and audio is not None
        if listen:  # decode once: the same waveform goes to the ASR and to the SER model
            limits = self._analyzer().options.limits if analyse else None
            with open_audio(audio, sample_rate=sample_rate, name=name, limits=limits) as source:
                name, audio, sample_rate = source.name, source.read(0, source.num_samples), SAMPLE_RATE
            words: Transcript | str | None = self.asr.transcribe(audio)
        else:
            words = _as_transcript(transcript) if transcript is not None else None
        if not analyse:
            return Perception(words=words)
        analyzer = self._analyzer()
        if words is None:
            return Perception(words=None, report=analyzer.analyze(audio, sample_rate=sample_rate, name=name, timeline=True,
                                                                 progress=progress))
        recogniser = _Recognised(words) if listen else _given(transcript)
        aligned = transcribe_with_emotion(audio, sample_rate=sample_rate, name=name, analyzer=analyzer, asr=recogniser,
                                          progress=progress)
        return Perception(words=words, report=aligned.report, aligned=aligned)

    def prompt(self, question: str, perception: Perception, *, mode: AffectMode | None = None,
               oracle: OracleAffect | dict | None = None, context: str | None = None) -> RenderedPrompt:
        """The rendered prompt for one question in one affect mode (default: the pipeline's)."""
        mode = self.mode if mode is None else _checked_mode(mode)
        if mode == "oracle" and oracle is None:
            raise AgentError("affect mode 'oracle' needs the dataset's labels (oracle=OracleAffect(emotion=...))")
        if mode == "predicted" and perception.report is None:
            raise AgentError("affect mode 'predicted' needs the affect report: perceive the audio with mode 'predicted'")
        if isinstance(oracle, dict):
            oracle = OracleAffect.model_validate(oracle)
        transcript = perception.transcript if mode == "predicted" else perception.words
        return render_prompt(question, mode=mode, transcript=transcript, report=perception.report,
                             oracle=oracle, context=context, template=self.template)

    def reply(self, messages: list[BaseMessage]) -> str:
        """The chat model's reply to a conversation: the one place the model is called."""
        return invoke(self.model, messages)

    def answer(self, question: str, perception: Perception, *, mode: AffectMode | None = None,
               oracle: OracleAffect | dict | None = None, context: str | None = None) -> Answer:
        """Answer one question about a perceived recording in one affect mode (default: the pipeline's)."""
        if not question or not question.strip():
            raise AgentError("no question given")
        mode = self.mode if mode is None else _checked_mode(mode)
        prompt = self.prompt(question, perception, mode=mode, oracle=oracle, context=context)
        messages: list[BaseMessage] = [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        reply = self.reply(messages)
        return Answer(answer=reply, prompt=prompt, perception=perception, mode=mode, messages=messages + [AIMessage(reply)])

    def run(self, question: str, *, audio: Audio | None = None, transcript: GivenWords | None = None,
            sample_rate: int | None = None, oracle: OracleAffect | dict | None = None,
            context: str | None = None) -> Answer:
        """Answer one question about one recording: `perceive`, then `answer`."""
        if not question or not question.strip():
            raise AgentError("no question given")
        perception = self.perceive(audio, transcript, sample_rate=sample_rate)
        return self.answer(question, perception, oracle=oracle, context=context)


class Conversation:
    """A chat about one recording: the first turn carries the rendered affect; follow-ups keep the history."""

    def __init__(self, pipeline: AffectPipeline, *, audio: Audio | None = None, transcript: GivenWords | None = None,
                 sample_rate: int | None = None, oracle: OracleAffect | dict | None = None,
                 context: str | None = None, perception: Perception | None = None,
                 mode: AffectMode | None = None) -> None:
        """perception: a recording already heard (then `audio` and `transcript` are not used); mode: the affect
        mode of the first turn's prompt (default: the pipeline's)."""
        self.pipeline = pipeline
        self.perception = perception if perception is not None else pipeline.perceive(audio, transcript, sample_rate=sample_rate)
        self.oracle, self.context = oracle, context
        self.mode = None if mode is None else _checked_mode(mode)
        self.messages: list[BaseMessage] = []

    def say(self, text: str) -> str:
        """The chat model's reply to the user's next turn (see `turn`, which also says when it is degenerate)."""
        return self.turn(text).text

    def turn(self, text: str) -> Reply:
        """The user's next turn -> the chat model's reply. A degenerate reply (empty, the previous reply again,
        the user's message echoed: agents.replies) is asked for once more, with a line added to the user's
        message that names the fault; when that is no better, the reply carries a one-line `warning`."""
        if not text.strip():
            raise AgentError("empty message")
        if not self.messages:
            prompt = self.pipeline.prompt(text, self.perception, mode=self.mode, oracle=self.oracle, context=self.context)
            self.messages = [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        else:
            self.messages.append(HumanMessage(text.strip()))
        previous = next((m.text for m in reversed(self.messages) if isinstance(m, AIMessage)), None)
        message = self.messages[-1].text
        try:
            reply = self.pipeline.reply(self.messages)
            fault = degenerate_reply(reply, message, turn=text, previous=previous)
            if fault is not None:
                nudged = f"{message}\n\n{NUDGES[fault]}"
                reply = self.pipeline.reply([*self.messages[:-1], HumanMessage(nudged)])
                fault = degenerate_reply(reply, nudged, turn=text, previous=previous)
        except ChatModelError:
            self.messages.pop() if len(self.messages) > 2 else self.messages.clear()
            raise
        self.messages.append(AIMessage(reply))
        return Reply(reply, None if fault is None else warning_text(fault))


@dataclass(frozen=True)
class Reply:
    """One chat turn's reply; `warning` (one line) when it is degenerate even after a second try."""

    text: str
    warning: str | None = None


def invoke(model: Any, messages: list[BaseMessage]) -> str:
    """The model's text reply; any failure of the model becomes a ChatModelError with the cause."""
    try:
        reply = model.invoke(messages)
    except SERError:
        raise
    except Exception as e:  # noqa: BLE001 - provider errors (auth, rate limits, network) vary by package
        raise ChatModelError(f"the chat model failed ({type(e).__name__}: {e})") from e
    return (reply.text if isinstance(reply, BaseMessage) else str(reply)).strip()


def _checked_mode(mode: str) -> AffectMode:
    if mode not in AFFECT_MODES:
        raise AgentError(f"affect mode must be one of {', '.join(AFFECT_MODES)}, got {mode!r}")
    return mode  # type: ignore[return-value]


@dataclass(frozen=True)
class _Recognised:
    """The ASR's transcript handed to the alignment as is: the recogniser already ran on this audio."""

    transcript: Transcript

    @property
    def model_id(self) -> str:
        return self.transcript.model_id

    def transcribe(self, audio: np.ndarray) -> Transcript:
        return self.transcript


def _as_transcript(transcript: GivenWords) -> str | Transcript:
    if isinstance(transcript, str | Transcript):
        return transcript
    segments = GivenTranscript(segments=transcript).segments  # validates dicts / (start, end, text) tuples
    return Transcript(text=" ".join(s.text for s in segments), segments=segments, model_id="given")


def _given(transcript: GivenWords) -> GivenTranscript:
    if isinstance(transcript, str):
        return GivenTranscript(transcript)
    if isinstance(transcript, Transcript):
        return GivenTranscript(segments=transcript.segments, language=transcript.language)
    return GivenTranscript(segments=transcript)
