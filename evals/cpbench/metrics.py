"""Metrics: mean score (0..100) overall and per question type, per affect mode, with bootstrap 95% CIs;
each mode's paired difference to 'none' (same samples, resampled together); the share of the none ->
oracle gap that the predicted affect closes; why predicted-mode answers missed (the SER reading or the
LLM's use of it); the judge's agreement with the multiple-choice verdict; and warnings for degenerate
answers (unreadable, or one letter for everything)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from ser_tool.labels import canonical_emotion

__all__ = [
    "PARALINGUISTIC", "PASS_SCORE", "Agreement", "Cell", "ErrorSplit", "GapClosed", "SampleResult", "SerReading",
    "aggregate", "agreement", "bootstrap_ci", "chance_level", "degenerate_warnings", "error_split", "gap_closed",
    "gap_closed_table", "miss_cause", "ser_reading",
]

BOOTSTRAP_SEED = 0
BOOTSTRAP_N = 2000
PASS_SCORE = 60.0  # an answer counts as right from here: the correct letter (100), or a judge rating of 3+ (of 5)
MIN_GAP = 5.0  # points: below this oracle - none gap the share closed is undefined (noise over a tiny gap)
PARALINGUISTIC = "paralinguistic"  # the pooled group of every question type but 'content'
MIN_PARSE_RATE = 0.9
MAX_LETTER_SHARE = 0.6
MIN_ANSWERS_FOR_SHARE = 10  # fewer answers than this: one letter dominating is too likely by chance to warn


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
    choice_method: str | None = Field(default=None, description="How a letter chooser picked the letter (grammar, parse, ...).")
    ser_emotion: str | None = Field(default=None, description="Mode predicted: what the SER model heard (per stretch for stitched recordings).")
    oracle_label: str | None = Field(default=None, description="Mode predicted: the dataset's label it is compared with.")
    ser_reading: Literal["right", "wrong"] | None = Field(
        default=None, description="Mode predicted: the SER reading vs the oracle label (every stretch right = right); null when not comparable.")
    miss_cause: Literal["ser", "llm", "unknown"] | None = Field(
        default=None, description="Mode predicted, answer missed (score < 60): 'ser' (the reading was wrong), 'llm' (a right reading misused), 'unknown'.")


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


# -- the share of the none -> oracle gap that predicted closes ---------------------------------------------

class GapClosed(BaseModel):
    """(predicted - none) / (oracle - none) over the samples answered in all three modes."""

    n: int
    none: float | None = None
    predicted: float | None = None
    oracle: float | None = None
    value: float | None = Field(default=None, description="The share closed (1 = all of the gap); null when undefined.")
    ci95: tuple[float, float] | None = Field(default=None, description="Paired bootstrap 95% CI; null when undefined.")
    note: str | None = Field(default=None, description="Why the share or its CI is undefined.")


def gap_closed(results: Sequence[SampleResult], *, group: str = "overall", n_boot: int = BOOTSTRAP_N,
               seed: int = BOOTSTRAP_SEED) -> GapClosed:
    """The share of the none -> oracle gap that predicted closes, on `group` ('overall', PARALINGUISTIC or
    a question type). Samples are resampled together with their three answers (paired bootstrap). Undefined
    when oracle beats none by less than MIN_GAP points; its CI is undefined when the gap itself is not
    reliably positive (more than 2.5% of the resamples have oracle <= none: the ratio is unbounded there)."""
    by = {(r.mode, r.sample_id): r.score for r in results if _in_group(r.question_type, group)}
    ids = sorted({sid for (mode, sid) in by if all((m, sid) in by for m in ("none", "predicted", "oracle"))})
    if not ids:
        return GapClosed(n=0, note="no sample was answered in all three modes (none, predicted, oracle)")
    x = np.array([[by[(m, sid)] for m in ("none", "predicted", "oracle")] for sid in ids], dtype=float)
    none, pred, oracle = x.mean(axis=0)
    out = GapClosed(n=len(ids), none=float(none), predicted=float(pred), oracle=float(oracle))
    gap = oracle - none
    if gap < MIN_GAP:
        out.note = f"undefined: oracle beats none by {gap:+.1f} points (needs >= {MIN_GAP:g})"
        return out
    out.value = float((pred - none) / gap)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(ids), size=(n_boot, len(ids)))].mean(axis=1)
    gaps = means[:, 2] - means[:, 0]
    if np.mean(gaps <= 0) > 0.025:
        out.note = f"CI undefined: in {np.mean(gaps <= 0):.0%} of the resamples oracle does not beat none"
        return out
    ok = gaps > 0  # the few resamples (<= 2.5%) without a gap have no ratio
    ratios = (means[ok, 1] - means[ok, 0]) / gaps[ok]
    out.ci95 = (float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5)))
    return out


def gap_closed_table(results: Sequence[SampleResult]) -> dict[str, GapClosed]:
    """gap_closed for the paralinguistic types pooled, overall and each question type (when all three modes ran)."""
    types = sorted({r.question_type for r in results})
    groups = ([PARALINGUISTIC] if any(t != "content" for t in types) else []) + ["overall", *types]
    return {g: gap_closed(results, group=g) for g in groups}


def _in_group(question_type: str, group: str) -> bool:
    return group == "overall" or question_type == group or (group == PARALINGUISTIC and question_type != "content")


# -- why predicted-mode answers missed ------------------------------------------------------------------------

class SerReading(BaseModel):
    """The SER reading of one recording against the dataset's label."""

    heard: str | None = None  # the predicted emotion (stretches joined by ', then ')
    label: str | None = None  # the oracle label it is compared with
    right: bool | None = None  # None: not comparable (no label the 7 emotions know, no report)


def ser_reading(report, oracle_emotion: str | None, oracle_segments: Sequence | None = None) -> SerReading:
    """Was the SER reading right? Stitched recordings (oracle_segments): per stretch, the emotion of the
    speech the model found overlapping it most (none found: wrong); right only when every stretch is.
    Single recordings: the overall emotion vs the label (mapped onto the 7 emotions; an unmappable label
    is not comparable)."""
    if report is None:
        return SerReading(label=oracle_emotion)
    if oracle_segments:
        heard, right = [], True
        labels = [canonical_emotion(seg.emotion) for seg in oracle_segments]
        for seg, label in zip(oracle_segments, labels):
            emotion = _heard_over(report, seg.start, seg.end)
            heard.append(emotion or "(no speech found)")
            right = right and emotion is not None and emotion == label
        return SerReading(heard=", then ".join(heard), label=", then ".join(s.emotion for s in oracle_segments),
                          right=None if None in labels else right)
    label = canonical_emotion(oracle_emotion) if oracle_emotion else None
    heard = report.overall.emotion
    return SerReading(heard=heard, label=oracle_emotion, right=None if label is None else heard == label)


def _heard_over(report, start: float, end: float) -> str | None:
    best, best_overlap = None, 0.0
    for seg in report.timeline or []:
        overlap = min(end, seg.end) - max(start, seg.start)
        if seg.speech and seg.affect is not None and overlap > best_overlap:
            best, best_overlap = seg.affect.emotion, overlap
    if best is None and not report.timeline and report.speech_duration > 0:
        return report.overall.emotion
    return best


class ErrorSplit(BaseModel):
    """Predicted-mode misses by cause."""

    answered: int
    misses: int
    ser_wrong: int = Field(description="Misses where the SER reading was wrong (vs the oracle label).")
    llm_misuse: int = Field(description="Misses where the SER reading was right: the LLM did not use it well.")
    unknown: int = Field(description="Misses whose reading could not be compared (no label the 7 emotions know, no report).")
    ser_right_rate: float | None = Field(default=None, description="Share of all predicted answers whose SER reading was right.")


def error_split(results: Sequence[SampleResult]) -> dict[str, ErrorSplit]:
    """{PARALINGUISTIC (if any) | "overall" | question type: ErrorSplit} over the predicted-mode answers."""
    rows = [r for r in results if r.mode == "predicted"]
    if not rows:
        return {}
    types = sorted({r.question_type for r in rows})
    groups = ([PARALINGUISTIC] if any(t != "content" for t in types) else []) + ["overall", *types]
    out = {}
    for g in groups:
        sel = [r for r in rows if _in_group(r.question_type, g)]
        miss = [r for r in sel if r.score < PASS_SCORE]
        causes = Counter(r.miss_cause or "unknown" for r in miss)
        known = [r for r in sel if r.ser_reading is not None]
        out[g] = ErrorSplit(answered=len(sel), misses=len(miss), ser_wrong=causes["ser"], llm_misuse=causes["llm"],
                            unknown=causes["unknown"],
                            ser_right_rate=float(np.mean([r.ser_reading == "right" for r in known])) if known else None)
    return out


def miss_cause(score: float, reading: SerReading) -> str | None:
    if score >= PASS_SCORE:
        return None
    return "unknown" if reading.right is None else "llm" if reading.right else "ser"


# -- the judge against the multiple-choice verdict ------------------------------------------------------------

class Agreement(BaseModel):
    """How often the LLM judge (open-ended answer, rating >= 3 = right) and the multiple-choice verdict (the
    correct letter = right) agree on the same sample and mode."""

    n: int
    agreement: float | None = None
    kappa: float | None = Field(default=None, description="Cohen's kappa (agreement beyond chance); null when undefined.")
    both_right: int = 0
    both_wrong: int = 0
    mc_only: int = Field(default=0, description="Right by the letter, wrong by the judge.")
    judge_only: int = Field(default=0, description="Right by the judge, wrong by the letter.")
    per_mode: dict[str, float] = Field(default_factory=dict)


def agreement(mc: Sequence[SampleResult], judged: Sequence[SampleResult]) -> Agreement:
    """Pairs (sample, mode) scored both ways, both readable."""
    verdicts = {(r.mode, r.sample_id): r.score >= PASS_SCORE for r in judged if r.parsed}
    pairs = [(r.mode, r.score >= PASS_SCORE, verdicts[(r.mode, r.sample_id)]) for r in mc
             if r.parsed and (r.mode, r.sample_id) in verdicts]
    if not pairs:
        return Agreement(n=0)
    a = np.array([p[1] for p in pairs])
    b = np.array([p[2] for p in pairs])
    observed = float(np.mean(a == b))
    expected = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    kappa = None if expected >= 1.0 else (observed - expected) / (1.0 - expected)
    modes = list(dict.fromkeys(p[0] for p in pairs))
    return Agreement(n=len(pairs), agreement=observed, kappa=kappa, both_right=int(np.sum(a & b)),
                     both_wrong=int(np.sum(~a & ~b)), mc_only=int(np.sum(a & ~b)), judge_only=int(np.sum(~a & b)),
                     per_mode={m: float(np.mean([x == y for mm, x, y in pairs if mm == m])) for m in modes})


# -- degenerate answers ------------------------------------------------------------------------------------------

def degenerate_warnings(results: Sequence[SampleResult], *, min_parse_rate: float = MIN_PARSE_RATE,
                        max_letter_share: float = MAX_LETTER_SHARE, what: str = "answers") -> list[str]:
    """Why the scores may say nothing about the model: per mode, too few answers (letters / ratings) could
    be read, or one letter is most of the answers when the key does not explain it (multiple choice,
    MIN_ANSWERS_FOR_SHARE answers or more)."""
    out = []
    for mode in dict.fromkeys(r.mode for r in results):
        rows = [r for r in results if r.mode == mode and r.error is None]
        if not rows:
            continue
        rate = float(np.mean([r.parsed for r in rows]))
        if rate < min_parse_rate:
            out.append(f"mode {mode}: only {rate:.0%} of the {what} could be read (threshold {min_parse_rate:.0%}); "
                       "the model does not follow the answer format")
        letters = [r.raw for r in rows if r.correct_choice is not None and isinstance(r.raw, str)]
        if len(letters) >= MIN_ANSWERS_FOR_SHARE:
            letter, count = Counter(letters).most_common(1)[0]
            share = count / len(letters)
            key_share = np.mean([r.correct_choice == letter for r in rows if r.correct_choice is not None])
            if share > max_letter_share and share > key_share + 0.1:
                out.append(f"mode {mode}: {share:.0%} of the answers are {letter!r} (threshold {max_letter_share:.0%}; "
                           f"the key has {key_share:.0%}): the model answers one letter regardless of the question")
    return out


def chance_level(results: Sequence[SampleResult], choices_per_sample: dict[str, int]) -> float | None:
    """The expected accuracy % of random letters over the samples scored by choice; None when none were."""
    sizes = [choices_per_sample[r.sample_id] for r in results if r.correct_choice is not None and r.sample_id in choices_per_sample]
    return float(np.mean([100.0 / n for n in sizes])) if sizes else None
