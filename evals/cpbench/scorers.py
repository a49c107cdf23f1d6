"""Scorers: the AudioBench open-ended LLM judge (0-5 rubric, reported x 20) and exact choice for the
multiple-choice form. Every score is on 0..100 so the two read alike."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from langchain_core.messages import HumanMessage

from agents import chat_model
from agents.pipeline import invoke

from evals.cpbench.cache import CachedChatModel, CallCache
from evals.cpbench.dataset import LETTERS, Sample
from evals.cpbench.solvers import model_identity

__all__ = ["ChoiceScorer", "JUDGE_PROMPT", "JudgeScorer", "Score", "Scorer", "parse_choice", "parse_rating"]

# The AudioBench open-ended judge prompt (reused by CPQA as "Prompt 1"), in its structure and rubric.
JUDGE_PROMPT = """\
[Reference Answer]
{reference}

[Model Answer]
{answer}

[Question]
{question}

[Task]
Rate the model's answer based on its alignment with the reference answer, focusing on accuracy and relevance to the reference provided. Please be critical on the details. If the model response is something like 'cannot decide', please rate as 0.
Criteria: Assess if the model's response mirrors the reference in terms of content, accuracy, and relevance.
Score0: The answer is refusing to give concrete results, providing something like 'cannot decide'.
Score0: The answer is wrong, providing incorrect or irrelevant information compared to the reference.
Score1: The answer shows minimal alignment, often misunderstanding or providing irrelevant details unrelated to the reference.
Score2: The answer recognizes the topic but diverges significantly from the reference in accuracy or relevance.
Score3: The answer aligns with the reference generally but lacks detail or precise accuracy in some aspects.
Score4: The answer is mostly accurate and relevant, closely following the reference but could be clearer or more detailed.
Score5: The answer is highly accurate, detailed, and matches the reference answer perfectly, capturing its essence and detail.

Your response should be formatted as follows:
Explanation: (Provide a concise explanation of your rating, comparing the reference answer with the model's response. "The reference answer is [XXX], while the model's answer is [YYY]. I think ...")
Rating: (int)"""

_RATING = re.compile(r"^\s*[\*\[\(\"']*\s*([0-5])(?![\d.,]\d)(?:\s*/\s*5)?", re.S)


@dataclass(frozen=True)
class Score:
    value: float  # 0..100 (judge rating x 20, or 100 / 0 for a choice)
    parsed: bool  # False: the judge's rating or the chosen letter could not be read (value 0)
    raw: int | str | None = None  # the rating (0-5) or the chosen letter
    judge_output: str | None = None


class Scorer(Protocol):
    """Scores one answer. `choice`: the letter a chooser already picked (multiple choice), else None."""

    name: str

    def __call__(self, sample: Sample, question: str, answer: str, *, choice: str | None = None) -> Score: ...


def parse_rating(text: str) -> int | None:
    """The integer 0-5 after the LAST 'Rating:' of a judge reply; None when there is none or it is malformed."""
    parts = re.split(r"rating\s*:", text or "", flags=re.I)
    if len(parts) < 2:
        return None
    m = _RATING.match(parts[-1].replace("*", " "))
    return int(m.group(1)) if m else None


class JudgeScorer:
    """The AudioBench open-ended judge: any chat model rates the answer against the reference, 0-5."""

    name = "llm-judge"

    def __init__(self, judge: Any, *, temperature: float | None = 0.0, cache: CallCache | None = None,
                 judge_id: str | None = None, template: str = JUDGE_PROMPT) -> None:
        self.judge_id = judge_id or model_identity(judge)
        self.temperature, self.template = temperature, template
        self.cache = cache or CallCache(None)
        self.model = CachedChatModel(model=chat_model(judge, temperature=temperature), model_id=self.judge_id,
                                     model_temperature=temperature, store=self.cache)

    def prompt(self, sample: Sample, answer: str) -> str:
        return self.template.format(reference=sample.reference, answer=answer, question=sample.question)

    def __call__(self, sample: Sample, question: str, answer: str, *, choice: str | None = None) -> Score:
        text = self.prompt(sample, answer)
        output = invoke(self.model, [HumanMessage(text)])
        rating = parse_rating(output)
        return Score(value=20.0 * (rating or 0), parsed=rating is not None, raw=rating, judge_output=output)


def parse_choice(answer: str, choices: list[str]) -> str | None:
    """The letter an answer picks: 'B', 'B.', '(B)', 'Answer: B', 'the answer is B', or an option's exact text."""
    letters = LETTERS[: len(choices)]
    text = (answer or "").strip()
    cls = f"[{letters}]"
    for pattern in (rf"^[\*\(\[\"']*({cls})(?:[\)\]\.:,\s\*\"']|$)", rf"\banswer\s*(?:is|:)?\s*[\*\(\[]*({cls})\b",
                    rf"\boption\s*[\(\[]*({cls})\b"):
        m = re.search(pattern, text, flags=re.I if "answer" in pattern or "option" in pattern else 0)
        if m:
            return m.group(1).upper()
    hits = {letters[i] for i, c in enumerate(choices) if c.strip() and c.strip().lower() in text.lower()}
    if len(hits) == 1:
        return hits.pop()
    m = re.findall(rf"\b({cls})\b", text)
    return m[0] if len(set(m)) == 1 else None


class ChoiceScorer:
    """Exact choice for the multiple-choice form: 100 when the picked letter is the correct one, else 0.
    The letter is the one a chooser picked (`choice`: constrained decoding, log-probs), else parsed from
    the free answer."""

    name = "choice"

    def __call__(self, sample: Sample, question: str, answer: str, *, choice: str | None = None) -> Score:
        if not sample.choices:
            raise ValueError(f"sample {sample.id} has no choices; score it with the judge")
        letters = LETTERS[: len(sample.choices)]
        letter = choice.strip().upper() if choice and choice.strip().upper() in letters else parse_choice(answer, sample.choices)
        return Score(value=100.0 if letter == sample.correct_choice else 0.0, parsed=letter is not None, raw=letter)
