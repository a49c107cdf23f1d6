"""The tool-calling agent: the LLM decides whether to listen (call the SER tool) before it answers.
Built with LangChain's `create_agent` around ser_tool's SpeechEmotionTool."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage

from agents.errors import ChatModelError
from agents.models import chat_model
from ser_tool import ASR, AffectReport, Analyzer, EmotionTranscript, SERError, SpeechEmotionTool, safe_name
from ser_tool.report import UNCERTAIN_BELOW

__all__ = ["TOOL_AGENT_SYSTEM", "ToolAgentAnswer", "ask_tool_agent", "build_tool_agent"]

TOOL_AGENT_SYSTEM = (
    "You help with questions about spoken recordings. You cannot hear audio yourself: when the answer depends on "
    "how something was said (tone, emotion, stress), call analyze_speech_emotion with the recording's path; ask for "
    "transcribe=true when you also need the words. Its scores describe emotion expressed in the voice, not what the "
    f"speaker feels; below confidence {UNCERTAIN_BELOW} treat the emotion as a guess. Answer concisely."
)


@dataclass(frozen=True)
class ToolAgentAnswer:
    answer: str
    results: list[AffectReport | EmotionTranscript] = field(default_factory=list)  # what the tool returned, per call
    messages: list[BaseMessage] = field(default_factory=list)


def build_tool_agent(model: Any, *, tool: SpeechEmotionTool | None = None, analyzer: Analyzer | None = None,
                     asr: ASR | None = None, system_prompt: str = TOOL_AGENT_SYSTEM, temperature: float | None = None):
    """A LangChain agent (create_agent) whose one tool is speech emotion recognition."""
    from langchain.agents import create_agent

    tool = tool or SpeechEmotionTool(analyzer=analyzer, asr=asr)
    return create_agent(chat_model(model, temperature=temperature), [tool], system_prompt=system_prompt)


def ask_tool_agent(agent, question: str, *, audio_path: str | None = None) -> ToolAgentAnswer:
    """Ask one question (naming the recording's path, if any) and collect the answer and the tool's results."""
    text = question.strip() if audio_path is None else f"{question.strip()}\n\n(Recording: {_path_for_prompt(audio_path)})"
    try:
        state = agent.invoke({"messages": [{"role": "user", "content": text}]})
    except SERError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ChatModelError(f"the agent failed ({type(e).__name__}: {e})") from e
    messages = state["messages"]
    results = [m.artifact for m in messages if isinstance(m, ToolMessage) and m.artifact is not None]
    return ToolAgentAnswer(answer=messages[-1].text.strip(), results=results, messages=list(messages))


def _path_for_prompt(path: str) -> str:
    """The path as the model must pass it back to the tool: as it is when plain; as a JSON string literal when
    it holds a line break, escape or bidi control, so it cannot add lines to the prompt, and the model (whose
    tool-call arguments are JSON) still copies it exactly."""
    return path if safe_name(path, None) == path else json.dumps(path)
