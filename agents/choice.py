"""Multiple choice with any chat model: one option letter per question, parsed 100 % of the time where
the model can be constrained.

    pick = choose_letter(model, messages, "ABCD", options=["angry", "calm", "sad", "happy"])
    pick.letter      # "C" (None only when a model that cannot be constrained answered off the options)
    pick.logprobs    # {"A": -3.1, "C": -0.2, ...}: the letters' log-probabilities, when the model gives them
    pick.free_text   # the model's own words, kept for the log

A model with a `choose_letter(messages, letters, free_tokens=)` method (the llama.cpp model) constrains
its decoding to the letters; any other LangChain chat model answers in free text, which is parsed, and
is asked once more for the letter alone when the parse fails.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agents.errors import ChatModelError

__all__ = ["LetterChoice", "choose_letter", "letter_grammar", "letter_logprobs", "normalise_letters", "parse_letter"]

RETRY_PROMPT = "Reply with the letter of the correct option only: {letters}."


@dataclass(frozen=True)
class LetterChoice:
    """The chosen option letter and how it was obtained.

    method: "grammar" (decoding allowed only the letters), "parse" (read from the free answer), "retry"
    (read from the answer to a letter-only follow-up), "unparsed" (no letter: letter is None).
    logprobs: natural-log probability of each letter as the answer's first token, for the letters the
    model reported (empty when it reports none).
    """

    letter: str | None
    logprobs: dict[str, float] = field(default_factory=dict)
    free_text: str | None = None
    method: str = "grammar"

    @property
    def parsed(self) -> bool:
        return self.letter is not None


def normalise_letters(letters: str | Sequence[str]) -> list[str]:
    """The option letters as a list of distinct single capitals ("ABCD" or ["A", "B"]); ValueError else."""
    out = [str(x).strip().upper() for x in letters]
    if not out or any(len(x) != 1 or not ("A" <= x <= "Z") for x in out) or len(set(out)) != len(out):
        raise ValueError(f"option letters must be distinct single letters A-Z, got {letters!r}")
    return out


def letter_grammar(letters: str | Sequence[str]) -> str:
    """A GBNF grammar whose only sentences are the single letters: `root ::= [ABCD]`."""
    return f"root ::= [{''.join(normalise_letters(letters))}]"


def letter_logprobs(top_logprobs: Sequence[dict[str, Any]], letters: str | Sequence[str]) -> dict[str, float]:
    """The letters' log-probabilities from one position's OpenAI-style `top_logprobs` entries
    ({"token": "A", "logprob": -0.2}); "A" and " A" count as the same letter (probabilities added)."""
    allowed = set(normalise_letters(letters))
    found: dict[str, list[float]] = {}
    for entry in top_logprobs:
        token = str(entry.get("token", "")).strip()
        value = entry.get("logprob")
        if token in allowed and isinstance(value, int | float) and math.isfinite(value):
            found.setdefault(token, []).append(float(value))
    return {k: _logsumexp(v) for k, v in sorted(found.items())}


def parse_letter(text: str | None, letters: str | Sequence[str], options: Sequence[str] | None = None) -> str | None:
    """The letter a free answer picks: "B", "B.", "(B)", "**B**", "Answer: B", "the answer is B",
    "option B", or exactly one option's text; None when it names none or several."""
    allowed = normalise_letters(letters)
    text = (text or "").strip()
    cls = f"[{''.join(allowed)}]"
    standalone = set(re.findall(rf"\b({cls})\b", text))
    lead = re.match(rf"[\*\(\[\"']*({cls})(?:([\)\]\.:,\*\"'])|\s|$)", text)
    if lead and (lead.group(2) or standalone == {lead.group(1)}):  # "B." or "B" alone, not "A or B"
        return lead.group(1)
    # the words in any case, the letter a capital: "the answer is a guess" names no option
    for pattern in (rf"\b(?i:answer)\s*(?:(?i:is)|:)?\s*[\*\(\[\"']*({cls})\b", rf"\b(?i:option)\s*[\(\[]*({cls})\b"):
        m = re.search(pattern, text)
        if m:
            return m.group(1)
    if options:
        lowered = text.lower()
        hits = {allowed[i] for i, c in enumerate(options[: len(allowed)]) if c.strip() and c.strip().lower() in lowered}
        if len(hits) == 1:
            return hits.pop()
    return standalone.pop() if len(standalone) == 1 else None


def choose_letter(model: Any, messages: Sequence[BaseMessage], letters: str | Sequence[str], *,
                  options: Sequence[str] | None = None, free_tokens: int = 0) -> LetterChoice:
    """One option letter from `model` for the question in `messages` (which should list the options).

    Models with a `choose_letter` method (LlamaCppChatModel) decode under a letter-only grammar, so the
    letter is never missing; `free_tokens` > 0 also keeps their unconstrained answer. Other chat models
    answer freely; the answer is parsed (`options` lets an answer that quotes one option count) and,
    failing that, the model is asked once more for the letter alone.
    """
    allowed = normalise_letters(letters)
    target = getattr(model, "bound", model)  # model.bind(...) wraps the chat model
    if callable(getattr(target, "choose_letter", None)):
        return target.choose_letter(list(messages), allowed, free_tokens=free_tokens)
    reply = _ask(model, list(messages))
    text = reply.text.strip()
    logprobs = _reply_logprobs(reply, allowed)
    letter = parse_letter(text, allowed, options)
    if letter is not None:
        return LetterChoice(letter=letter, logprobs=logprobs, free_text=text, method="parse")
    follow_up = HumanMessage(RETRY_PROMPT.format(letters=", ".join(allowed)))
    retry = _ask(model, [*messages, AIMessage(text), follow_up]).text.strip()
    letter = parse_letter(retry, allowed, options)
    return LetterChoice(letter=letter, logprobs=logprobs, free_text=f"{text}\n[letter asked again] {retry}",
                        method="retry" if letter else "unparsed")


def _ask(model: Any, messages: list[BaseMessage]) -> AIMessage:
    try:
        reply = model.invoke(messages)
    except ChatModelError:
        raise
    except Exception as e:  # noqa: BLE001 - provider errors vary by package
        raise ChatModelError(f"the chat model failed ({type(e).__name__}: {e})") from e
    return reply if isinstance(reply, AIMessage) else AIMessage(str(getattr(reply, "content", reply)))


def _reply_logprobs(reply: AIMessage, letters: list[str]) -> dict[str, float]:
    """Letter log-probabilities from an OpenAI-style reply that carries logprobs (e.g. a ChatOpenAI bound
    with logprobs=True, top_logprobs=k): the first token's alternatives."""
    content = ((reply.response_metadata or {}).get("logprobs") or {}).get("content") or []
    if not content or not isinstance(content[0], dict):
        return {}
    first = content[0]
    return letter_logprobs(first.get("top_logprobs") or [first], letters)


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))
