"""How the server words an error for the model that called a tool.

A core error names no surface's words; its hints name settings (`ser_tool.errors.Hint`). Here a hint
whose setting is an argument of the tool that was called becomes "call again with vad='energy'": the
caller can change it per call. Any other setting is the server's, so the caller learns which SER_*
variable its user would set ("the server's SER_MAX_DURATION setting"). Every message may
quote a caller's path or a file name, so it is escaped (`ser_tool.safe_name`).
"""

from __future__ import annotations

import functools
from collections.abc import Collection

from ser_tool import SERError, safe_name
from ser_tool.describe import MESSAGE_MAX_CHARS
from ser_tool.errors import Hint

__all__ = ["CALL_ARGUMENTS", "safe_text", "server_words", "tool_message"]

# The settings a caller may change per call, by tool (`backend` is left out: which models a call may
# pick is the server's configuration, and a model that fails to load is the server's to fix).
CALL_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "analyze_speech_emotion": ("window", "hop", "vad"),
    "analyze_speech_emotion_batch": ("window", "hop", "vad"),
    "transcribe_speech_emotion": ("vad",),
}

# Settings the server's own flags name differently from the variable.
_CONFIGURED = {"allowed_dirs": "SER_ALLOWED_DIRS (--allowed-dir)"}


def server_words(hint: Hint, arguments: Collection[str] = ()) -> str | None:
    """A hint as the calling model can act on it: a call argument of this tool, or the server's SER_* setting."""
    if hint.setting == "folder":
        return "or analyse the files in it with analyze_speech_emotion_batch, folder set to this path"
    if hint.setting in arguments:
        if hint.value is None:
            return f"call again with another {hint.setting}"
        return f"call again with {hint.setting}={hint.value!r}"
    variable = _CONFIGURED.get(hint.setting) or f"SER_{hint.setting.upper()}"
    if hint.value is None:
        return f"the server's {variable} setting"
    return f"{variable}={1 if hint.value is True else hint.value} in the server's configuration"


def tool_message(e: SERError, tool: str | None = None) -> str:
    """The text of `e` for the model that called `tool`: hints in the server's words, names escaped."""
    return safe_text(e.worded(functools.partial(server_words, arguments=CALL_ARGUMENTS.get(tool or "", ()))))


def safe_text(text: str) -> str:
    """Every message an LLM reads may quote a caller's path or a file name: no line breaks, escapes or
    bidi controls from them reach the text (see ser_tool.safe_name)."""
    return safe_name(text, MESSAGE_MAX_CHARS)
