"""Metrics: mean score (0..100) overall and per question type, per affect mode, with bootstrap 95% CIs,
and each mode's paired difference to 'none' (same samples, resampled together)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

__all__ = ["Cell", "SampleResult", "aggregate", "bootstrap_ci"]

BOOTSTRAP_SEED = 0
BOOTSTRAP_N = 2000


class SampleResult(BaseModel):
    """One sample answered in one affect mode and scored: a line of the JSON log."""

    sample_id: str
    question_type: str
    mode: str
    question: str
    reference: str
    prompt: str
    answer: str
    score: float = Field(description="0..100: judge rating x 20, or 100 / 0 for a multiple-choice answer.")
    parsed: bool = Field(description="False when the rating / letter could not be read (scored 0).")
    raw: int | str | None = Field(default=None, description="The judge's rating 0-5 or the chosen letter.")
    correct_choice: str | None = None
    judge_output: str | None = None
    error: str | None = Field(default=None, description="Why the agent could not answer (e.g. no speech found); scored 0.")


class Cell(BaseModel):
    """The score of one affect mode on one question type (or 'overall')."""

    n: int
    mean: float
    ci95: tuple[float, float]
    parse_rate: float = Field(description="Share of samples whose rating / letter could be read.")
    diff_vs_none: float | None = None
    diff_ci95: tuple[float, float] | None = None


def bootstrap_ci(values: Sequence[float], *, n: int = BOOTSTRAP_N, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean (fixed seed: reruns agree)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n, len(x)))].mean(axis=1)
    return (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))


def aggregate(results: Sequence[SampleResult]) -> dict[str, dict[str, Cell]]:
    """{mode: {"overall" | question_type: Cell}}; differences to 'none' are paired by sample id."""
    modes = list(dict.fromkeys(r.mode for r in results))
    types = sorted({r.question_type for r in results})
    by = {(r.mode, r.sample_id): r for r in results}
    out: dict[str, dict[str, Cell]] = {}
    for mode in modes:
        out[mode] = {}
        for group in ("overall", *types):
            rows = [r for r in results if r.mode == mode and (group == "overall" or r.question_type == group)]
            if not rows:
                continue
            scores = [r.score for r in rows]
            cell = Cell(n=len(rows), mean=float(np.mean(scores)), ci95=bootstrap_ci(scores),
                        parse_rate=float(np.mean([r.parsed for r in rows])))
            if mode != "none" and "none" in modes:
                pairs = [(r.score, by[("none", r.sample_id)].score) for r in rows if ("none", r.sample_id) in by]
                if pairs:
                    d = [a - b for a, b in pairs]
                    cell.diff_vs_none, cell.diff_ci95 = float(np.mean(d)), bootstrap_ci(d)
            out[mode][group] = cell
    return out
