"""Run samples x affect modes through solver and scorer: bounded concurrency (a thread pool), a progress
bar, and the on-disk call cache so an interrupted run resumes where it stopped."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agents import ChatModelError, chat_model
from ser_tool import SERError

from evals.cpbench.cache import CallCache
from evals.cpbench.dataset import Sample
from evals.cpbench.metrics import (
    SampleResult,
    aggregate,
    agreement,
    chance_level,
    degenerate_warnings,
    error_split,
    gap_closed_table,
    miss_cause,
    ser_reading,
)
from evals.cpbench.report import Report
from evals.cpbench.scorers import ChoiceScorer, JudgeScorer, Scorer
from evals.cpbench.solvers import AgentSolver, LetterChooser, Solver, mc_question, model_identity
from evals.output import OutputError, ensure_writable

__all__ = ["evaluate", "run_samples"]


def run_samples(samples: Sequence[Sample], solver: Solver, scorer: Scorer, *, concurrency: int = 1,
                progress: Callable[[], None] | None = None) -> list[SampleResult]:
    """Every sample in every mode of the solver, then the scorer; results in (mode, sample) order. The first
    failure stops the run (what was done is in the cache: rerun to resume)."""
    mc = isinstance(scorer, ChoiceScorer)

    def one(job: tuple[str, Sample]) -> SampleResult:
        mode, sample = job
        question = mc_question(sample) if mc else sample.question
        try:
            solution = solver(sample, mode)
        except (ChatModelError, OutputError):  # the model or the disk failed: stop (a rerun resumes)
            raise
        except SERError as e:  # this clip cannot be heard (no speech, bad file): scored 0, kept in the log
            if progress:
                progress()
            return SampleResult(sample_id=sample.id, question_type=sample.question_type, mode=mode,
                                question=question, reference=sample.reference, prompt="", answer="", score=0.0,
                                parsed=False, correct_choice=sample.correct_choice if mc else None,
                                error=f"{type(e).__name__}: {e}", miss_cause="unknown" if mode == "predicted" else None)
        score = scorer(sample, question, solution.answer, choice=solution.choice)
        if progress:
            progress()
        result = SampleResult(sample_id=sample.id, question_type=sample.question_type, mode=mode,
                              question=question, reference=sample.reference, prompt=solution.prompt,
                              answer=solution.answer, score=score.value, parsed=score.parsed, raw=score.raw,
                              correct_choice=sample.correct_choice if mc else None, judge_output=score.judge_output,
                              choice_method=solution.choice_method)
        if mode == "predicted":  # was the SER reading right? then a miss is the LLM's
            report = solution.perception.report if solution.perception is not None else None
            reading = ser_reading(report, sample.oracle_emotion, sample.oracle_segments)
            result.ser_emotion, result.oracle_label = reading.heard, reading.label
            result.ser_reading = None if reading.right is None else "right" if reading.right else "wrong"
            result.miss_cause = miss_cause(score.value, reading)
        return result

    jobs = [(mode, sample) for mode in solver.modes for sample in samples]
    if concurrency <= 1:
        return [one(j) for j in jobs]
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        return list(pool.map(one, jobs))
    finally:
        # On a failure or Ctrl-C, drop the jobs not started (else they would all run first); the calls in
        # flight finish and are cached.
        pool.shutdown(wait=True, cancel_futures=True)


class _Form:
    """The solver asked in one form (multiple choice or open-ended), whatever its own setting."""

    def __init__(self, solver: AgentSolver, mc: bool) -> None:
        self.solver, self.mc, self.modes = solver, mc, solver.modes

    def __call__(self, sample: Sample, mode: str):
        return self.solver.solve(sample, mode, mc=self.mc)


def evaluate(samples: Sequence[Sample], model: Any, *, modes: Sequence[str] = ("none", "predicted", "oracle"),
             mc: bool = False, judge: Any = None, temperature: float | None = 0.0, judge_temperature: float | None = 0.0,
             analyzer=None, asr=None, transcript: str = "given", cache_dir: str | Path | None = None,
             concurrency: int = 1, limit: int | None = None, data: str = "", progress_factory=None,
             vad: str = "energy", choose: LetterChooser | None = None) -> Report:
    """Answer every sample in every affect mode and score it: exact choice (`mc=True`) or the LLM judge.
    Both (`mc=True` and a judge): the multiple-choice form scored by choice is the table, and the
    open-ended form is judged as well, to report how often the judge agrees with the letter.
    transcript: "given" (the dataset's words), "asr" (the speech recogniser's) or "none" (words unknown).
    choose: a LetterChooser for the multiple-choice answers (see evals.cpbench.solvers)."""
    if not mc and judge is None:
        raise ValueError("open-ended scoring needs a judge model (or score the multiple-choice form: mc=True)")
    samples = list(samples)[:limit] if limit else list(samples)
    if mc:
        missing = [s.id for s in samples if not s.choices]
        if missing:
            raise ValueError(f"{len(missing)} sample(s) have no choices for --mc (e.g. {missing[0]}); score them with --judge")
    if cache_dir is not None:  # before any (paid) call, not after
        ensure_writable(cache_dir, "the model-call cache", "--cache")
    cache = CallCache(cache_dir)
    if analyzer is None and "predicted" in modes:
        from ser_tool import AnalysisOptions, Analyzer
        from ser_tool.segment import SegmentationOptions

        # short single-utterance clips: analyse everything above the noise floor (WebRTC's VAD drops some)
        analyzer = Analyzer(options=AnalysisOptions(segmentation=SegmentationOptions(vad=vad)))
    built = chat_model(model, temperature=temperature)
    # "local" names whichever offline model is installed (Qwen, or SmolLM2 as a fallback): key the cache
    # on the model actually loaded, so a reused cache never answers for another model.
    model_id = model_identity(model)
    if isinstance(model, str) and model.startswith("local"):
        model_id = f"{model}={model_identity(built)}"
    solver = AgentSolver(built, model_id=model_id, modes=modes, temperature=temperature, analyzer=analyzer,
                         asr=asr, transcript=transcript, mc=mc, cache=cache, choose=choose)
    judge_scorer = JudgeScorer(judge, temperature=judge_temperature, cache=cache) if judge is not None else None
    scorer = ChoiceScorer() if mc else judge_scorer
    both = mc and judge_scorer is not None
    bar = progress_factory(len(samples) * len(solver.modes) * (2 if both else 1)) if progress_factory else None
    update = bar.update if bar else None
    results = run_samples(samples, solver, scorer, concurrency=concurrency, progress=update)
    judged = run_samples(samples, _Form(solver, mc=False), judge_scorer, concurrency=concurrency, progress=update) if both else None
    if bar is not None:
        bar.close()
    sizes = {s.id: len(s.choices) for s in samples if s.choices}
    return Report(data=data, model=model_identity(model), scorer=scorer.name,
                  judge=model_identity(judge) if judge is not None else None, temperature=temperature,
                  transcript=transcript, modes=list(modes), n_samples=len(samples),
                  calls={"made": cache.calls, "from_cache": cache.hits},
                  failed=sum(r.error is not None for r in results), metrics=aggregate(results),
                  gap_closed=gap_closed_table(results) if {"none", "predicted", "oracle"} <= set(modes) else {},
                  error_split=error_split(results), chance=chance_level(results, sizes) if mc else None,
                  warnings=(degenerate_warnings(results, what="answers" if mc else "judge ratings")
                            + (degenerate_warnings(judged, what="judge ratings of the open-ended answers") if judged else [])),
                  samples=results, judged=judged, judged_metrics=aggregate(judged) if judged else None,
                  agreement=agreement(results, judged) if judged else None)
