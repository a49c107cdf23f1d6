"""The reference agent: ASR + ser-tool's affect report + any chat model, with the affect rendered into
the prompt. Uses ser_tool's public API only; needs the `agent` extra (langchain).

    from agents import AffectPipeline
    pipeline = AffectPipeline("anthropic:claude-sonnet-4-5", mode="predicted", temperature=0)
    print(pipeline.run("How does the caller feel about the delay?", audio="call.wav").answer)
"""

from agents.errors import AgentError, ChatModelError
from agents.models import LocalChatModel, chat_model, smollm2_gguf
from agents.pipeline import AffectPipeline, Answer, Conversation, Perception
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
from agents.tool_agent import TOOL_AGENT_SYSTEM, ToolAgentAnswer, ask_tool_agent, build_tool_agent

__all__ = [
    "AFFECT_MODES", "DEFAULT_TEMPLATE", "TOOL_AGENT_SYSTEM", "AffectMode", "AffectPipeline", "AgentError", "Answer",
    "ChatModelError", "Conversation", "LocalChatModel", "OracleAffect", "OracleSegment", "Perception",
    "PromptTemplate", "RenderedPrompt", "Stretch", "ToolAgentAnswer", "affect_stretches", "ask_tool_agent",
    "build_tool_agent", "chat_model", "render_affect_block", "render_prompt", "smollm2_gguf", "words_known",
]
