"""Helpers for the CP-Bench tests: a rule-based chat model that counts calls and can fail after N, and a
tiny QA set on synthesised audio."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import soundfile as sf
from conftest import SR, voice
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class RuleChatModel(BaseChatModel):
    """Replies `rule(last message text)`; counts calls; raises once `fail_after` calls were made.
    `log` is shared with copies (chat_model applies a temperature by copying the model)."""

    rule: Callable[[str], str]
    fail_after: int | None = None
    log: list = Field(default_factory=list)
    temperature: float | None = None

    @property
    def n_calls(self) -> int:
        return len(self.log)

    @property
    def _llm_type(self) -> str:
        return "rule"

    def _generate(self, messages: list[BaseMessage], stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        if self.fail_after is not None and self.n_calls >= self.fail_after:
            raise RuntimeError("connection lost")
        self.log.append(messages[-1].text)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.rule(messages[-1].text)))])


def write_qa(folder: Path, n: int = 4) -> Path:
    """A JSONL QA set: n clips x 3 question types, relative audio paths, choices A-D with 'A' correct."""
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "clip.wav", voice(1.0), SR)
    types = ("content", "direct_paralinguistic", "contextual_paralinguistic")
    rows = [{"id": f"s{i}-{t}", "audio": "clip.wav", "question": f"Question {i} about {t}?", "reference": f"ref {i}",
             "question_type": t, "transcript": "Kids are talking by the door", "oracle_emotion": "happy",
             "choices": ["right", "wrong one", "wrong two", "wrong three"], "correct_choice": "A"}
            for i in range(n) for t in types]
    path = folder / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
