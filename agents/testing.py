"""A scripted LangChain chat model for tests and examples: no network, no key, no weights.

    ScriptedChatModel(replies=["Tense.", "Sure."])               # answers in turn
    ScriptedChatModel(rule=lambda text: "A" if "happy" in text else "B")   # answers by rule
    ScriptedChatModel(rule=..., fail_after=5)                    # the connection drops after 5 calls
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

__all__ = ["ScriptedChatModel"]


class ScriptedChatModel(BaseChatModel):
    """Replies with `replies` in turn (AIMessages, possibly with tool_calls, or plain strings), or, when
    they run out (or none were given), with `rule(text of the last message)`.

    `calls` keeps every list of messages it received (a failed call is kept too, except one refused by
    `fail_after`); `call_kwargs` the keyword arguments of each call (e.g. a bound temperature);
    `bound_tools` the tools given to bind_tools. The lists are shared with copies, so calls made through
    `chat_model(model, temperature=...)` (which copies the model) are counted on the original.
    fail_with: every call raises RuntimeError(fail_with). fail_after: calls after the first N raise
    RuntimeError("connection lost"), as a provider that went away mid-run.
    """

    replies: list[Any] = Field(default_factory=list)
    rule: Callable[[str], str] | None = None
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    call_kwargs: list[dict] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)
    temperature: float | None = None
    fail_with: str | None = None
    fail_after: int | None = None

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        if self.fail_after is not None and self.n_calls >= self.fail_after:
            raise RuntimeError("connection lost")
        self.calls.append(list(messages))
        self.call_kwargs.append(dict(kwargs))
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        if self.replies:
            reply = self.replies.pop(0)
        elif self.rule is not None:
            reply = self.rule(messages[-1].text)
        else:
            raise AssertionError("the scripted model ran out of replies (give more replies, or a rule)")
        message = reply if isinstance(reply, AIMessage) else AIMessage(content=str(reply))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any):
        self.bound_tools = list(tools)
        return self
