"""Solvers: the reference agent (agents.AffectPipeline) with a cached chat model, answering each sample in
every affect mode. Each clip is perceived once (ASR and SER shared by its modes and questions); each
answer goes through the call cache, so a rerun repeats no call.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

from agents import AFFECT_MODES, AffectPipeline, OracleAffect, Perception, chat_model

from evals.cpbench.cache import CachedChatModel, CallCache
from evals.cpbench.dataset import LETTERS, Sample

__all__ = ["AgentSolver", "LetterChooser", "LetterPick", "Solution", "Solver", "mc_question", "model_identity",
           "oracle_affect"]

MC_INSTRUCTION = "Answer with the letter of the correct option only."


@dataclass(frozen=True)
class Solution:
    prompt: str  # system + user, as sent
    answer: str  # the model's own words (with a letter chooser: its free text, or the letter)
    perception: Perception | None = None  # what the agent heard (the words; the affect report in 'predicted')
    choice: str | None = None  # the letter a chooser picked (multiple choice); None: the scorer parses `answer`
    choice_method: str | None = None  # how the chooser got it ("grammar", "parse", ...)


class LetterPick(Protocol):
    """What a letter chooser returns (agents' LetterChoice has this shape)."""

    letter: str | None
    free_text: str | None


# choose(model, messages, letters, options=choices) -> LetterPick: picks one option letter for the question in
# `messages` (e.g. agents.choice.choose_letter: a letter-only grammar / log-probs for the local model, a parse
# of the free answer for other chat models). The one place multiple-choice answers can be constrained.
LetterChooser = Callable[..., LetterPick]


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
    "none" withholds the words (they are unknown: every mode answers without them); mc: ask the
    multiple-choice form; choose: a LetterChooser that picks the letter of a multiple-choice answer
    (default: none - the model answers freely and the scorer parses the letter); cache: where answers are
    kept (default: nowhere, only counted).
    """

    def __init__(self, model: Any, *, modes: Sequence[str] = AFFECT_MODES, temperature: float | None = 0.0,
                 analyzer=None, asr=None, transcript: str = "given", mc: bool = False, cache: CallCache | None = None,
                 model_id: str | None = None, choose: LetterChooser | None = None) -> None:
        self.modes, self.temperature, self.mc, self.transcript = tuple(modes), temperature, mc, transcript
        if not self.modes:
            raise ValueError(f"no affect mode to answer in; give modes from {', '.join(AFFECT_MODES)}")
        if transcript not in ("given", "asr", "none"):
            raise ValueError(f"transcript must be 'given', 'asr' or 'none', got {transcript!r}")
        self.cache = cache or CallCache(None)
        self.model_id = model_id or model_identity(model)
        self.choose = choose
        self.model = built = chat_model(model, temperature=temperature if isinstance(model, str) else None)
        cached = CachedChatModel(model=built, model_id=self.model_id, model_temperature=temperature, store=self.cache)
        self.pipeline = AffectPipeline(cached, analyzer=analyzer, asr=None if transcript == "none" else asr, mode=self.modes[0])
        self._heard: dict[tuple[str, str | None], Future] = {}  # clip -> its perception (or the error hearing it)
        self._lock = threading.Lock()

    def __call__(self, sample: Sample, mode: str) -> Solution:
        return self.solve(sample, mode, mc=self.mc)

    def solve(self, sample: Sample, mode: str, *, mc: bool) -> Solution:
        """One sample in one mode, in the multiple-choice form (`mc`) or open-ended."""
        perception = self.perceive(sample)
        oracle = oracle_affect(sample) if mode == "oracle" else None
        question = mc_question(sample) if mc else sample.question
        if mc and self.choose is not None:
            prompt = self.pipeline.prompt(question, perception, mode=mode, oracle=oracle, context=sample.context)
            pick = self._choose([SystemMessage(prompt.system), HumanMessage(prompt.user)], sample)
            return Solution(prompt=prompt.as_text(), answer=pick["free_text"] or pick["letter"] or "",
                            perception=perception, choice=pick["letter"], choice_method=pick["method"])
        answer = self.pipeline.answer(question, perception, mode=mode, oracle=oracle, context=sample.context)
        return Solution(prompt=answer.prompt.as_text(), answer=answer.answer, perception=perception)

    def _choose(self, messages: list[BaseMessage], sample: Sample) -> dict:
        """The chooser's pick, through the call cache (keyed by the prompt and the letters)."""
        letters = LETTERS[: len(sample.choices or [])]

        def call() -> str:
            pick = self.choose(self.model, messages, letters, options=sample.choices)
            return json.dumps({"letter": pick.letter, "free_text": getattr(pick, "free_text", None),
                               "method": getattr(pick, "method", None)})

        user = f"{messages[1].text}\n[choose one of {letters}]"
        return json.loads(self.cache.get_or_call(self.model_id, self.temperature, messages[0].text, user, call))

    def perceive(self, sample: Sample) -> Perception:
        """The sample's recording heard for every mode, once per clip: questions about the same clip (and
        threads asking at the same time) share one ASR and one SER pass, or the error hearing it."""
        words = sample.words if self.transcript == "given" else None
        key = (sample.audio or _digest(sample.waveform), _words_key(words))
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

    def _perceive(self, sample: Sample, words) -> Perception:
        audio, rate = sample.audio_input()
        needs_audio = "predicted" in self.modes or (words is None and self.pipeline.asr is not None)
        return self.pipeline.perceive(audio if needs_audio else None, words, sample_rate=rate, modes=self.modes)


def oracle_affect(sample: Sample) -> OracleAffect | None:
    """The dataset's labels for the 'oracle' mode: the recording's emotion and, for stitched recordings,
    the emotion of each stretch; None when the sample has no label."""
    if not sample.oracle_emotion:
        return None
    return OracleAffect(emotion=sample.oracle_emotion, segments=list(sample.oracle_segments or []))


def _words_key(words) -> str | None:
    if words is None or isinstance(words, str):
        return words
    return json.dumps([[w.start, w.end, w.text] for w in words])


def _digest(waveform) -> str:
    return "waveform:" + hashlib.sha1(waveform.tobytes()).hexdigest()
