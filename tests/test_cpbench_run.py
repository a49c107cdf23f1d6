"""Running the agent over a QA set: the call cache (a rerun makes no model call), resume after an
interruption, the report files, and the judge path end to end - all with rule-based chat models."""

from __future__ import annotations

import json

import pytest
from cpbench_support import RuleChatModel, write_qa

from agents import ChatModelError
from evals.cpbench.dataset import load_samples
from evals.cpbench.report import summary, write_report
from evals.cpbench.runner import evaluate


def answer_a(text: str) -> str:
    return "A"


def test_multiple_choice_run_and_report(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=2))
    model = RuleChatModel(rule=lambda text: "A" if "happy" in text else "B")  # right only when told the emotion
    report = evaluate(samples, model, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    assert model.n_calls == 12 and report.calls == {"made": 12, "from_cache": 0}
    assert report.metrics["none"]["overall"].mean == 0.0
    assert report.metrics["oracle"]["overall"].mean == 100.0
    assert report.metrics["oracle"]["overall"].diff_vs_none == 100.0
    assert set(report.metrics["none"]) == {"overall", "content", "direct_paralinguistic", "contextual_paralinguistic"}
    first = report.samples[0]
    assert "Options:\nA. right\nB. wrong one" in first.prompt and "letter" in first.prompt
    paths = write_report(report, tmp_path / "out")
    log = json.loads(paths["log"].read_text())
    assert len(log["samples"]) == 12 and {"prompt", "answer", "score", "judge_output"} <= set(log["samples"][0])
    assert paths["chart"].stat().st_size > 0
    assert "contextual_paralinguistic" in summary(report)


def test_a_rerun_makes_zero_model_calls(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=2))
    first = RuleChatModel(rule=answer_a)
    evaluate(samples, first, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    again = RuleChatModel(rule=answer_a)
    report = evaluate(samples, again, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    assert again.n_calls == 0 and report.calls == {"made": 0, "from_cache": 12}
    assert report.metrics["none"]["overall"].mean == 100.0
    # a different temperature is a different call
    other = RuleChatModel(rule=answer_a)
    evaluate(samples, other, modes=["none"], mc=True, temperature=0.7, cache_dir=tmp_path / "cache")
    assert other.n_calls == 6


def test_resume_after_an_interruption(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=2))
    flaky = RuleChatModel(rule=answer_a, fail_after=5)
    with pytest.raises(ChatModelError, match="connection lost"):
        evaluate(samples, flaky, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    assert flaky.n_calls == 5
    fresh = RuleChatModel(rule=answer_a)
    report = evaluate(samples, fresh, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    assert fresh.n_calls == 12 - 5 and report.calls == {"made": 7, "from_cache": 5}
    assert len(report.samples) == 12


def test_judge_run_with_concurrency_and_cache(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=3))
    model = RuleChatModel(rule=lambda text: "She sounds happy.")
    judge = RuleChatModel(rule=lambda text: "Explanation: partly.\nRating: 3" if "Question 0" in text else "Rating: oops")
    report = evaluate(samples, model, judge=judge, modes=["none"], cache_dir=tmp_path / "cache", concurrency=4, limit=6)
    assert report.scorer == "llm-judge" and report.n_samples == 6
    by_id = {r.sample_id: r for r in report.samples}
    assert by_id["s0-content"].score == 60.0 and by_id["s0-content"].judge_output.endswith("Rating: 3")
    assert by_id["s1-content"].score == 0.0 and not by_id["s1-content"].parsed
    assert report.metrics["none"]["overall"].mean == 30.0 and report.metrics["none"]["overall"].parse_rate == 0.5
    judge2, model2 = RuleChatModel(rule=lambda t: "x"), RuleChatModel(rule=lambda t: "x")
    evaluate(samples, model2, judge=judge2, modes=["none"], cache_dir=tmp_path / "cache", concurrency=4, limit=6)
    assert judge2.n_calls == 0 and model2.n_calls == 0


def test_open_ended_needs_a_judge(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=1))
    with pytest.raises(ValueError, match="judge"):
        evaluate(samples, RuleChatModel(rule=answer_a), modes=["none"])
