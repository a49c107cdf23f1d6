"""The agent's own knob (which chat model answers), added to the core `ser_tool.Settings`: read once
by `ser-agent` (flags + SER_* environment), like every entry point."""

from __future__ import annotations

from pydantic import Field

from ser_tool import Settings

__all__ = ["AgentSettings"]


class AgentSettings(Settings):
    """The emotion-model settings plus the chat model, all with the SER_ prefix (SER_AGENT_MODEL, SER_ASR_MODEL, ...)."""

    agent_model: str | None = Field(
        None, description="Chat model: provider:model (e.g. anthropic:claude-sonnet-4-5), 'local' or local:PATH.")
