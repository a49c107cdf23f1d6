"""Solvers: the reference agent (agents.AffectPipeline) with a cached chat model, answering each sample in
every affect mode. Each clip is perceived once (ASR and SER shared by its modes and questions); each
answer goes through the call cache, so a rerun repeats no call.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from agents import AFFECT_MODES, AffectPipeline, OracleAffect, Perception, chat_model

from evals.cpbench.cache import CachedChatModel, CallCache
from evals.cpbench.dataset import LETTERS, Sample

__all__ = ["AgentSolver", "Solution", "Solver", "mc_question", "model_identity"]

MC_INSTRUCTION = "Answer with the letter of the correct option only."


@dataclass(frozen=True)
class Solution:
    prompt: str  # system + user, as sent
    answer: str
    perception: Perception | None = None  # what the agent heard (the words; the affect report in 'predicted')


class Solver(Protocol):
    modes: tuple[str, ...]

    def __call__(self, sample: Sample, mode: str) -> Solution: ...


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
    """The reference agent with a cached chat model, in the affect modes `modes` ("none" | "predicted" | "oracle").

    model: a chat model spec ("local", "provider:model"), built with `temperature`, or a chat model object,
    used as is (build it with agents.chat_model(..., temperature=...)); transcript: "given" uses the sample's
    transcript (the speech recogniser only when a sample has none), "asr" the pipeline's speech recogniser;
    mc: ask the multiple-choice form; cache: where answers are kept (default: nowhere, only counted).
    """

    def __init__(self, model: Any, *, modes: Sequence[str] = AFFECT_MODES, temperature: float | None = 0.0,
                 analyzer=None, asr=None, transcript: str = "given", mc: bool = False, cache: CallCache | None = None,
                 model_id: str | None = None) -> None:
        self.modes, self.temperature, self.mc, self.transcript = tuple(modes), temperature, mc, transcript
        if not self.modes:
            raise ValueError(f"no affect mode to answer in; give modes from {', '.join(AFFECT_MODES)}")
        self.cache = cache or CallCache(None)
        self.model_id = model_id or model_identity(model)
        built = chat_model(model, temperature=temperature if isinstance(model, str) else None)
        cached = CachedChatModel(model=built, model_id=self.model_id, model_temperature=temperature, store=self.cache)
        self.pipeline = AffectPipeline(cached, analyzer=analyzer, asr=asr, mode=self.modes[0])
        self._heard: dict[tuple[str, str | None], Future] = {}  # clip -> its perception (or the error hearing it)
        self._lock = threading.Lock()

    def __call__(self, sample: Sample, mode: str) -> Solution:
        perception = self.perceive(sample)
        oracle = OracleAffect(emotion=sample.oracle_emotion) if mode == "oracle" and sample.oracle_emotion else None
        question = mc_question(sample) if self.mc else sample.question
        answer = self.pipeline.answer(question, perception, mode=mode, oracle=oracle)
        return Solution(prompt=answer.prompt.as_text(), answer=answer.answer, perception=perception)

    def perceive(self, sample: Sample) -> Perception:
        """The sample's recording heard for every mode, once per clip: questions about the same clip (and
        threads asking at the same time) share one ASR and one SER pass, or the error hearing it."""
        words = sample.transcript if self.transcript == "given" else None
        key = (sample.audio or _digest(sample.waveform), words)
        with self._lock:
            heard, first = self._heard.get(key), key not in self._heard
            if first:
                heard = self._heard[key] = Future()
        if first:
            try:
                heard.set_result(self._perceive(sample, words))
            except BaseException as e:  # kept for the clip's other questions, raised to each
                heard.set_exception(e)
        return heard.result()

    def _perceive(self, sample: Sample, words: str | None) -> Perception:
        audio, rate = sample.audio_input()
        needs_audio = "predicted" in self.modes or words is None
        return self.pipeline.perceive(audio if needs_audio else None, words, sample_rate=rate, modes=self.modes)


def _digest(waveform) -> str:
    return "waveform:" + hashlib.sha1(waveform.tobytes()).hexdigest()
