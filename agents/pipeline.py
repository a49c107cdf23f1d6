"""The fixed pipeline (deterministic; what the evaluations run):

    audio -> ASR (unless a transcript is given) -> SER -> render the affect into the prompt -> chat model -> answer

and `Conversation`, the same with follow-up turns. The affect mode chooses what the prompt carries:
"none" (words only), "predicted" (ser-tool's affect), "oracle" (a dataset's labels).
"""

from __future__ import annotations

from collections.abc import Sequence
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
from ser_tool import (
    ASR,
    AffectReport,
    Analyzer,
    EmotionTranscript,
    GivenTranscript,
    SERError,
    Transcript,
    load_audio,
    transcribe_with_emotion,
)

__all__ = ["AffectPipeline", "Answer", "Conversation", "Perception"]

Audio = str | Path | bytes | np.ndarray
GivenWords = str | Transcript | Sequence[Any]


@dataclass(frozen=True)
class Perception:
    """What the pipeline heard: the words (when known) and the affect report (when analysed)."""

    transcript: EmotionTranscript | Transcript | str | None
    report: AffectReport | None


@dataclass(frozen=True)
class Answer:
    answer: str
    prompt: RenderedPrompt
    perception: Perception
    mode: str
    messages: list[BaseMessage] = field(default_factory=list)


class AffectPipeline:
    """ASR -> SER -> prompt -> chat model, with one Analyzer and one ASR shared by every call.

    model: a LangChain chat model object, a provider:model string, or "local" (see agents.models).
    analyzer: the SER analyzer (default: the embedded model, loaded on first use).
    asr: the speech recogniser used when no transcript is given (None: the words must be given, or the
    prompt says they are unknown).
    mode: "none" | "predicted" | "oracle". temperature: passed to the chat model.
    """

    def __init__(self, model: Any, *, analyzer: Analyzer | None = None, asr: ASR | None = None,
                 mode: AffectMode = "predicted", template: PromptTemplate = DEFAULT_TEMPLATE,
                 temperature: float | None = None) -> None:
        if mode not in AFFECT_MODES:
            raise AgentError(f"affect mode must be one of {', '.join(AFFECT_MODES)}, got {mode!r}")
        self.model = chat_model(model, temperature=temperature)
        self.analyzer = analyzer
        self.asr = asr
        self.mode = mode
        self.template = template
        self.temperature = temperature

    def _analyzer(self) -> Analyzer:
        if self.analyzer is None:
            self.analyzer = Analyzer("embedded")
        return self.analyzer

    def perceive(self, audio: Audio | None, transcript: GivenWords | None = None) -> Perception:
        """Hear the recording as the mode needs it: words (given, or ASR) and, for 'predicted', the affect."""
        if self.mode == "predicted":
            if audio is None:
                raise AgentError("affect mode 'predicted' needs the audio (pass audio=...)")
            asr = _given(transcript) if transcript is not None else self.asr
            if asr is None:
                return Perception(transcript=None, report=self._analyzer().analyze(audio, timeline=True))
            result = transcribe_with_emotion(audio, analyzer=self._analyzer(), asr=asr)
            return Perception(transcript=result, report=result.report)
        # none / oracle: the words only
        if transcript is not None:
            return Perception(transcript=_as_transcript(transcript), report=None)
        if audio is None or self.asr is None:
            raise AgentError(f"affect mode {self.mode!r} needs the words: pass transcript=..., or audio and a speech recogniser (asr=...)")
        return Perception(transcript=self.asr.transcribe(load_audio(audio)), report=None)

    def prompt(self, question: str, perception: Perception, *, oracle: OracleAffect | dict | None = None,
               context: str | None = None) -> RenderedPrompt:
        if self.mode == "oracle" and oracle is None:
            raise AgentError("affect mode 'oracle' needs the dataset's labels (oracle=OracleAffect(emotion=...))")
        if isinstance(oracle, dict):
            oracle = OracleAffect.model_validate(oracle)
        return render_prompt(question, mode=self.mode, transcript=perception.transcript, report=perception.report,
                             oracle=oracle, context=context, template=self.template)

    def run(self, question: str, *, audio: Audio | None = None, transcript: GivenWords | None = None,
            oracle: OracleAffect | dict | None = None, context: str | None = None) -> Answer:
        """Answer one question about one recording."""
        if not question or not question.strip():
            raise AgentError("no question given")
        perception = self.perceive(audio, transcript)
        prompt = self.prompt(question, perception, oracle=oracle, context=context)
        messages: list[BaseMessage] = [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        reply = invoke(self.model, messages)
        return Answer(answer=reply, prompt=prompt, perception=perception, mode=self.mode, messages=messages + [AIMessage(reply)])


class Conversation:
    """A chat about one recording: the first turn carries the rendered affect; follow-ups keep the history."""

    def __init__(self, pipeline: AffectPipeline, *, audio: Audio | None = None, transcript: GivenWords | None = None,
                 oracle: OracleAffect | dict | None = None, context: str | None = None) -> None:
        self.pipeline = pipeline
        self.perception = pipeline.perceive(audio, transcript)
        self.oracle, self.context = oracle, context
        self.messages: list[BaseMessage] = []

    def say(self, text: str) -> str:
        if not text.strip():
            raise AgentError("empty message")
        if not self.messages:
            prompt = self.pipeline.prompt(text, self.perception, oracle=self.oracle, context=self.context)
            self.messages = [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        else:
            self.messages.append(HumanMessage(text.strip()))
        try:
            reply = invoke(self.pipeline.model, self.messages)
        except ChatModelError:
            self.messages.pop() if len(self.messages) > 2 else self.messages.clear()
            raise
        self.messages.append(AIMessage(reply))
        return reply


def invoke(model: Any, messages: list[BaseMessage]) -> str:
    """The model's text reply; any failure of the model becomes a ChatModelError with the cause."""
    try:
        reply = model.invoke(messages)
    except SERError:
        raise
    except Exception as e:  # noqa: BLE001 - provider errors (auth, rate limits, network) vary by package
        raise ChatModelError(f"the chat model failed ({type(e).__name__}: {e})") from e
    return (reply.text if isinstance(reply, BaseMessage) else str(reply)).strip()


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
