"""The reference agent: ASR + ser-tool's affect report + any chat model, with the affect rendered into
the prompt. Uses ser_tool's public API only; needs the `agent` extra (langchain).

    from agents import AffectPipeline
    pipeline = AffectPipeline("anthropic:claude-sonnet-4-5", mode="predicted", temperature=0)
    print(pipeline.run("How does the caller feel about the delay?", audio="call.wav").answer)

The parts that need langchain are imported when first asked for, so `ser-agent --help` and the
install hint for a missing extra work without it.
"""

import importlib

from agents.errors import AgentError, ChatModelError
from agents.prompt import (
    AFFECT_MODES,
    DEFAULT_TEMPLATE,
    AffectMode,
    OracleAffect,
    OracleSegment,
    PromptTemplate,
    RenderedPrompt,
    Stretch,
    affect_stretches,
    render_affect_block,
    render_prompt,
    words_known,
)

__all__ = [
    "AFFECT_MODES", "DEFAULT_TEMPLATE", "TOOL_AGENT_SYSTEM", "AffectMode", "AffectPipeline", "AgentError", "Answer",
    "ChatModelError", "Conversation", "LocalChatModel", "OracleAffect", "OracleSegment", "Perception",
    "PromptTemplate", "RenderedPrompt", "Stretch", "ToolAgentAnswer", "affect_stretches", "ask_tool_agent",
    "build_tool_agent", "chat_model", "render_affect_block", "render_prompt", "smollm2_gguf", "words_known",
]

_NEEDS_LANGCHAIN = {
    "agents.models": ("LocalChatModel", "chat_model", "smollm2_gguf"),
    "agents.pipeline": ("AffectPipeline", "Answer", "Conversation", "Perception"),
    "agents.tool_agent": ("TOOL_AGENT_SYSTEM", "ToolAgentAnswer", "ask_tool_agent", "build_tool_agent"),
}
_HOME = {name: module for module, names in _NEEDS_LANGCHAIN.items() for name in names}


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    try:
        value = getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] in ("langchain", "langchain_core"):
            raise ImportError(f"agents.{name} needs the agent extra (langchain), which is not installed: "
                              'pip install -e ".[agent]" in the ser-tool source folder') from e
        raise
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
