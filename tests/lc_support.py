"""A scripted LangChain chat model for tests: replies from a list, records what it was sent, and
supports bind_tools (the fake chat models in langchain-core do not)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class ScriptedChatModel(BaseChatModel):
    """Answers with `replies` in turn (AIMessages, possibly with tool_calls, or plain strings).

    `calls` keeps every list of messages it received; `bound_tools` the tools given to bind_tools;
    `call_kwargs` the keyword arguments of each call (e.g. a bound temperature).
    """

    replies: list[Any] = Field(default_factory=list)
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    call_kwargs: list[dict] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)
    temperature: float | None = None
    fail_with: str | None = None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        self.calls.append(list(messages))
        self.call_kwargs.append(dict(kwargs))
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        if not self.replies:
            raise AssertionError("the scripted model ran out of replies")
        reply = self.replies.pop(0)
        message = reply if isinstance(reply, AIMessage) else AIMessage(content=str(reply))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any):
        self.bound_tools = list(tools)
        return self
