"""Is a chat reply an answer at all? Small local models sometimes reply with nothing, say their previous
reply again word for word, or echo the user's message back (the offline Qwen coder model does the last);
shown as they are, such replies read as a silent, confusing conversation. `degenerate_reply` names the
fault, `NUDGES` holds the line added to the user's message for the one retry, and `warning_text` the
one-line warning shown when the retry is no better.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["NUDGES", "Fault", "degenerate_reply", "warning_text"]

Fault = Literal["empty", "repeat", "echo"]

# Added (for the retry only; the conversation keeps the user's own words) to the user's last message.
NUDGES: dict[Fault, str] = {
    "empty": "(Reply to the message above in one or two sentences.)",
    "repeat": "(Answer the message above; do not repeat your previous reply.)",
    "echo": "(Answer the message above in your own words; do not repeat or quote it.)",
}
_WHAT: dict[Fault, str] = {
    "empty": "gave an empty reply",
    "repeat": "repeated its previous reply word for word",
    "echo": "echoed your message back instead of answering",
}
ECHO_MIN_WORDS = 3  # a reply equal to a shorter message ("Hi!" to "hi") may be a fair answer
COPY_MIN_CHARS = 24  # a reply that is a stretch of the user's message at least this long is an echo
_ROLE = re.compile(r"^(?:user|human|you|me|assistant|agent|ai)\s*[:>]\s*", re.IGNORECASE)


def _plain(text: str) -> str:
    """Lower case, one space between words, no role label ("User:") or quotes and punctuation around it."""
    text = " ".join(text.split()).casefold()
    text = _ROLE.sub("", text)
    return text.strip(" \"'`“”‘’.,!?;:-")


def degenerate_reply(reply: str, message: str, *, turn: str | None = None, previous: str | None = None) -> Fault | None:
    """Why `reply` is no answer, or None when it is one.

    message: the user's message as the model received it (the first turn's carries the prompt around the
    user's words); turn: the user's own words (default: `message`); previous: the model's reply before it.
    'empty': nothing but white space or punctuation; 'repeat': the previous reply again; 'echo': the user's
    turn (of ECHO_MIN_WORDS words or more) said back, or a stretch of the message (COPY_MIN_CHARS or more)
    copied as the whole reply.
    """
    said = _plain(reply)
    if not said:
        return "empty"
    if previous is not None and said == _plain(previous):
        return "repeat"
    own = _plain(turn if turn is not None else message)
    if said == own and len(own.split()) >= ECHO_MIN_WORDS:
        return "echo"
    if len(said) >= COPY_MIN_CHARS and said in " ".join(message.split()).casefold():
        return "echo"
    return None


def warning_text(fault: Fault) -> str:
    """One line for the user when the chat model's reply is degenerate also when asked a second time."""
    return (f"the chat model {_WHAT[fault]}, also when asked again: this reply means nothing. Small local models do "
            "this; a larger chat model answers properly")
