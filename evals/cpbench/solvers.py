"""Solvers: the reference agent (agents.AffectPipeline) answering a sample in one affect mode.

The chat-model call goes through the call cache; perception (ASR, SER) is recomputed (local, no cost).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import HumanMessage, SystemMessage

from agents import AffectPipeline, OracleAffect
from agents.pipeline import invoke

from evals.cpbench.cache import CallCache
from evals.cpbench.dataset import LETTERS, Sample

__all__ = ["AgentSolver", "Solution", "Solver", "mc_question", "model_identity"]

MC_INSTRUCTION = "Answer with the letter of the correct option only."


@dataclass(frozen=True)
class Solution:
    prompt: str  # system + user, as sent
    answer: str


class Solver(Protocol):
    mode: str

    def __call__(self, sample: Sample) -> Solution: ...


def mc_question(sample: Sample) -> str:
    """The multiple-choice form of a sample's question: options lettered A, B, ... and a letter-only instruction."""
    if not sample.choices:
        raise ValueError(f"sample {sample.id} has no choices for the multiple-choice form")
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(sample.choices))
    return f"{sample.question}\nOptions:\n{options}\n{MC_INSTRUCTION}"


def model_identity(model: Any) -> str:
    """A stable id for a chat model (the cache key part): the spec string, or the object's class and name."""
    if isinstance(model, str):
        return model
    for attr in ("model_name", "model", "model_path", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"{type(model).__name__}:{value}"
    return type(model).__name__


class AgentSolver:
    """The reference agent in one affect mode ("none" | "predicted" | "oracle").

    model: a chat model spec ("local", "provider:model"), built with `temperature`, or a chat model object,
    used as is (build it with agents.chat_model(..., temperature=...)); transcript: "given" uses the sample's
    transcript, "asr" the pipeline's speech recogniser; mc: ask the multiple-choice form.
    """

    def __init__(self, model: Any, *, mode: str, temperature: float | None = 0.0, analyzer=None, asr=None,
                 transcript: str = "given", mc: bool = False, cache: CallCache | None = None,
                 model_id: str | None = None) -> None:
        self.pipeline = AffectPipeline(model, analyzer=analyzer, asr=asr, mode=mode,
                                       temperature=temperature if isinstance(model, str) else None)
        self.mode, self.temperature, self.mc, self.transcript = mode, temperature, mc, transcript
        self.cache = cache or CallCache(None)
        self.model_id = model_id or model_identity(model)
        self._heard: dict[tuple[str, str | None], Any] = {}  # (audio path, words) -> perception: one SER pass per clip
        self._lock = threading.Lock()

    def __call__(self, sample: Sample) -> Solution:
        words = sample.transcript if self.transcript == "given" else None
        needs_audio = self.mode == "predicted" or words is None
        key = (sample.audio, words) if sample.audio is not None and needs_audio else None
        with self._lock:
            perception = self._heard.get(key) if key else None
        if perception is None:
            perception = self.pipeline.perceive(sample.audio_input() if needs_audio else None, words)
            if key:
                with self._lock:
                    self._heard[key] = perception
        oracle = OracleAffect(emotion=sample.oracle_emotion) if self.mode == "oracle" and sample.oracle_emotion else None
        question = mc_question(sample) if self.mc else sample.question
        prompt = self.pipeline.prompt(question, perception, oracle=oracle)
        messages = [SystemMessage(prompt.system), HumanMessage(prompt.user)]
        answer = self.cache.get_or_call(self.model_id, self.temperature, prompt.system, prompt.user,
                                        lambda: invoke(self.pipeline.model, messages))
        return Solution(prompt=prompt.as_text(), answer=answer)
