"""The agent's errors. Audio and model errors of the SER core stay `ser_tool.SERError`s."""

from __future__ import annotations

from ser_tool import SERError


class AgentError(SERError):
    """The agent cannot run as asked (missing audio or transcript, unknown mode, no chat model)."""


class ChatModelError(SERError):
    """The chat model could not be built or failed while answering."""
