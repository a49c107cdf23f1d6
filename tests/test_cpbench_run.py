"""Running the agent over a QA set: the call cache (a rerun makes no model call), resume after an
interruption, the report files, the judge path end to end, one perception per clip across modes, the
solver being the agent itself, one load of a local model shared by answerer and judge - all with scripted
chat models (or a tiny random local one)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from agent_support import CountingASR, make_tiny_chat_lm
from conftest import FakeBackend, voice
from cpbench_support import write_qa

import agents.models
from agents import AffectPipeline, ChatModelError, Conversation
from agents.testing import ScriptedChatModel
from evals.cli import main
from evals.cpbench.cache import CachedChatModel, CallCache
from evals.cpbench.dataset import load_samples
from evals.cpbench.report import summary, write_report
from evals.cpbench.runner import evaluate
from evals.cpbench.solvers import AgentSolver, mc_question
from ser_tool import Analyzer


def answer_a(text: str) -> str:
    return "A"


def test_multiple_choice_run_and_report(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=2))
    model = ScriptedChatModel(rule=lambda text: "A" if "happy" in text else "B")  # right only when told the emotion
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
    first = ScriptedChatModel(rule=answer_a)
    evaluate(samples, first, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    again = ScriptedChatModel(rule=answer_a)
    report = evaluate(samples, again, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    assert again.n_calls == 0 and report.calls == {"made": 0, "from_cache": 12}
    assert report.metrics["none"]["overall"].mean == 100.0
    # a different temperature is a different call
    other = ScriptedChatModel(rule=answer_a)
    evaluate(samples, other, modes=["none"], mc=True, temperature=0.7, cache_dir=tmp_path / "cache")
    assert other.n_calls == 6


def test_resume_after_an_interruption(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=2))
    flaky = ScriptedChatModel(rule=answer_a, fail_after=5)
    with pytest.raises(ChatModelError, match="connection lost"):
        evaluate(samples, flaky, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    assert flaky.n_calls == 5
    fresh = ScriptedChatModel(rule=answer_a)
    report = evaluate(samples, fresh, modes=["none", "oracle"], mc=True, cache_dir=tmp_path / "cache")
    assert fresh.n_calls == 12 - 5 and report.calls == {"made": 7, "from_cache": 5}
    assert len(report.samples) == 12


def test_judge_run_with_concurrency_and_cache(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=3))
    model = ScriptedChatModel(rule=lambda text: "She sounds happy.")
    judge = ScriptedChatModel(rule=lambda text: "Explanation: partly.\nRating: 3" if "Question 0" in text else "Rating: oops")
    report = evaluate(samples, model, judge=judge, modes=["none"], cache_dir=tmp_path / "cache", concurrency=4, limit=6)
    assert report.scorer == "llm-judge" and report.n_samples == 6
    by_id = {r.sample_id: r for r in report.samples}
    assert by_id["s0-content"].score == 60.0 and by_id["s0-content"].judge_output.endswith("Rating: 3")
    assert by_id["s1-content"].score == 0.0 and not by_id["s1-content"].parsed
    assert report.metrics["none"]["overall"].mean == 30.0 and report.metrics["none"]["overall"].parse_rate == 0.5
    judge2, model2 = ScriptedChatModel(rule=lambda t: "x"), ScriptedChatModel(rule=lambda t: "x")
    evaluate(samples, model2, judge=judge2, modes=["none"], cache_dir=tmp_path / "cache", concurrency=4, limit=6)
    assert judge2.n_calls == 0 and model2.n_calls == 0


def test_open_ended_needs_a_judge(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=1))
    with pytest.raises(ValueError, match="judge"):
        evaluate(samples, ScriptedChatModel(rule=answer_a), modes=["none"])


def test_asr_and_ser_run_once_per_clip_across_modes(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=4, n_files=2))  # 12 questions about 2 recordings
    asr, backend = CountingASR(), FakeBackend()
    model = ScriptedChatModel(rule=answer_a)
    report = evaluate(samples, model, modes=["none", "predicted", "oracle"], mc=True, asr=asr, transcript="asr",
                      analyzer=Analyzer(backend), cache_dir=tmp_path / "cache", concurrency=4)
    assert len(asr.heard) == 2 and len(backend.batches) == 2  # one ASR and one SER pass per recording
    assert model.n_calls == 36 and report.failed == 0
    predicted = [r for r in report.samples if r.mode == "predicted"]
    assert all("Transcript with the affect of each segment:" in r.prompt and asr.text in r.prompt for r in predicted)


def test_the_solver_is_the_agent_with_a_cached_model(tmp_path):
    """Each mode's prompt is exactly what AffectPipeline.run sends; hub audio reaches perceive as an array."""
    (sample,) = load_samples(write_qa(tmp_path / "data", n=1))[:1]
    hub = sample.model_copy(update={"audio": None, "waveform": voice(1.0)})
    solver = AgentSolver(ScriptedChatModel(rule=answer_a), modes=["none", "predicted", "oracle"], mc=True,
                         analyzer=Analyzer(FakeBackend()))
    heard = []
    perceive = solver.pipeline.perceive
    solver.pipeline.perceive = lambda audio, *a, **kw: heard.append((type(audio), kw["sample_rate"])) or perceive(audio, *a, **kw)
    for s in (sample, hub):
        for mode in solver.modes:
            solution = solver(s, mode)
            agent = AffectPipeline(ScriptedChatModel(rule=answer_a), analyzer=Analyzer(FakeBackend()), mode=mode)
            audio, rate = s.audio_input()
            alone = agent.run(mc_question(s), audio=audio, sample_rate=rate, transcript=s.transcript,
                              oracle={"emotion": s.oracle_emotion})
            assert solution.prompt == alone.prompt.as_text() and solution.answer == alone.answer == "A"
    assert heard == [(str, None), (np.ndarray, 16000)]  # once per clip, the waveform as is


def test_local_model_and_local_judge_load_once(tmp_path, monkeypatch):
    lm = make_tiny_chat_lm(tmp_path / "lm")
    loads = []
    real = agents.models.load_causal_lm
    monkeypatch.setattr(agents.models, "load_causal_lm", lambda path, device="cpu": loads.append(path) or real(path, device))
    data = write_qa(tmp_path / "data", n=1)
    code = main(["cpbench", "run", str(data), "--model", f"local:{lm}", "--judge", f"local:{lm}", "--judge-temperature", "0.5",
                 "--modes", "none", "--limit", "1", "--out", str(tmp_path / "out"), "--allow-degenerate"])  # random weights
    assert code == 0 and loads == [str(lm.resolve())]


def test_a_cached_conversation_is_keyed_by_every_turn(tmp_path):
    def chat(model):
        cached = CachedChatModel(model=model, model_id="scripted", store=CallCache(tmp_path / "cache"))
        talk = Conversation(AffectPipeline(cached, mode="none"), transcript="The parcel is late.")
        return [talk.say("How do they feel?"), talk.say("And now?")]

    first = ScriptedChatModel(replies=["Annoyed.", "Still annoyed."])
    assert chat(first) == ["Annoyed.", "Still annoyed."] and first.n_calls == 2
    again = ScriptedChatModel()
    assert chat(again) == ["Annoyed.", "Still annoyed."] and again.n_calls == 0
