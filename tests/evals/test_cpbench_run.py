"""Running the agent over a QA set: the call cache (a rerun makes no model call), resume after an
interruption, the report files, the judge path end to end, one perception per clip across modes, the
solver being the agent itself, one load of a local model shared by answerer and judge; set v2's stitched
recordings in every mode with and without words, the SER-vs-LLM error split, the judge against the letter,
a letter chooser, degenerate answers failing the run - all with scripted chat models (or a tiny random
local one)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

import agents.models
from agents import AffectPipeline, ChatModelError, Conversation
from agents.testing import ScriptedChatModel, make_tiny_chat_lm
from evals.cli import main
from evals.cpbench.cache import CachedChatModel, CallCache
from evals.cpbench.dataset import Sample, load_samples
from evals.cpbench.report import summary, write_report
from evals.cpbench.runner import evaluate
from evals.cpbench.solvers import AgentSolver, mc_question
from ser_tool import Analyzer
from ser_tool.testing import SR, CountingASR, FakeBackend, voice
from tests.helpers import write_qa


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


# -- set v2: stitched recordings, no words, the error split, judge vs letter, degenerate answers ------------------

def stitched_sample(tmp_path, *, labels=("angry", "sad"), sid="rec") -> Sample:
    """A loud part (FakeBackend hears angry) and a quiet part (sad) joined by a pause, as the generator makes them."""
    loud, pause, quiet = voice(2.0, amp=0.4), np.zeros(2 * SR, dtype=np.float32), voice(2.0, amp=0.03)
    segs = [{"start": 0.0, "end": 2.0, "emotion": labels[0]}, {"start": 4.0, "end": 6.0, "emotion": labels[1]}]
    return Sample(id=sid, waveform=np.concatenate([loud, pause, quiet]), question_type="temporal",
                  question="The recording has 2 parts separated by pauses. In which part does the speaker's voice sound angry?",
                  reference="In the first part.", choices=["the first part (0.0-2.0 s)", "the second part (4.0-6.0 s)",
                                                           "in none of the parts", "in every part"], correct_choice="A",
                  transcript=[{"start": 0.0, "end": 2.0, "text": "Kids are talking by the door"},
                              {"start": 4.0, "end": 6.0, "text": "Dogs are sitting by the door"}],
                  oracle_emotion=f"{labels[0]}, then {labels[1]}", oracle_segments=segs)


def angry_first(text: str) -> str:
    """Right ('A') only when the prompt shows the first part as angry."""
    return "A" if re.search(r"\[0\.0-2\.\ds\] \(?angry", text) else "C"


def test_stitched_recordings_carry_their_timeline_in_every_mode(tmp_path):
    samples = [stitched_sample(tmp_path), stitched_sample(tmp_path, labels=("happy", "sad"), sid="mislabelled")]
    report = evaluate(samples, ScriptedChatModel(rule=angry_first), mc=True, analyzer=Analyzer(FakeBackend()))
    by = {(r.mode, r.sample_id): r for r in report.samples}
    assert "[0.0-2.0s] (angry) Kids are talking" in by[("oracle", "rec")].prompt  # per-stretch labels
    assert "[4.0-6.0s] (sad) Dogs are sitting" in by[("oracle", "rec")].prompt
    assert re.search(r"\[0\.0-2\.0s\] \(angry, conf .*Kids", by[("predicted", "rec")].prompt)
    assert "angry" not in by[("none", "rec")].prompt.split("[user]")[1].split("Question:")[0]
    # the SER reading per stretch vs the labels: right for 'rec'; 'mislabelled' says happy where it heard angry
    rec, bad = by[("predicted", "rec")], by[("predicted", "mislabelled")]
    assert (rec.ser_emotion, rec.oracle_label, rec.ser_reading, rec.miss_cause) == ("angry, then sad", "angry, then sad", "right", None)
    assert (bad.ser_reading, bad.score, bad.miss_cause) == ("wrong", 100.0, None)
    # without the words: the timeline comes as its own block in predicted and oracle
    words_unknown = evaluate(samples[:1], ScriptedChatModel(rule=angry_first), mc=True, analyzer=Analyzer(FakeBackend()),
                             transcript="none")
    by = {r.mode: r for r in words_unknown.samples}
    assert all("(no transcript: the words are unknown)" in r.prompt and r.error is None for r in by.values())
    assert "Affect over time (human annotation):\n[0.0-2.0s] angry\n[4.0-6.0s] sad" in by["oracle"].prompt
    assert re.search(r"Affect over time \(speech-emotion model\):\n\[0\.\d-2\.\ds\] angry, conf [\d.]+\n\[3\.\d-6\.\ds\] sad",
                     by["predicted"].prompt)
    assert [by[m].score for m in ("none", "predicted", "oracle")] == [0.0, 100.0, 100.0]


def test_predicted_misses_are_split_into_ser_and_llm(tmp_path):
    right_reading = stitched_sample(tmp_path)
    wrong_reading = stitched_sample(tmp_path, labels=("sad", "angry"), sid="swapped")  # the labels say the opposite
    wrong_reading = wrong_reading.model_copy(update={"correct_choice": "B"})
    never = ScriptedChatModel(rule=lambda text: "D")
    report = evaluate([right_reading, wrong_reading], never, modes=["none", "predicted", "oracle"], mc=True,
                      analyzer=Analyzer(FakeBackend()))
    causes = {r.sample_id: r.miss_cause for r in report.samples if r.mode == "predicted"}
    assert causes == {"rec": "llm", "swapped": "ser"}
    assert all(r.miss_cause is None for r in report.samples if r.mode != "predicted")
    split = report.error_split["temporal"]
    assert (split.misses, split.ser_wrong, split.llm_misuse, split.ser_right_rate) == (2, 1, 1, 0.5)
    text = summary(report)
    assert "predicted-mode misses: SER reading wrong" in text
    assert re.search(r"temporal\s+2 misses: 1 SER wrong \(50%\) \| 1 LLM misuse \(50%\)", text)
    assert "gap closed by predicted" in text and "undefined: oracle beats none by +0.0 points" in text
    log = json.loads(write_report(report, tmp_path / "out")["log"].read_text())
    assert {s["miss_cause"] for s in log["samples"] if s["mode"] == "predicted"} == {"llm", "ser"}


def test_judge_and_letter_on_the_same_samples(tmp_path):
    samples = load_samples(write_qa(tmp_path / "data", n=2))
    model = ScriptedChatModel(rule=lambda text: "A" if "Options:" in text else "She sounds happy.")
    judge = ScriptedChatModel(rule=lambda text: "Rating: 4" if "Question 0" in text else "Rating: 1")
    report = evaluate(samples, model, mc=True, judge=judge, modes=["none", "oracle"], cache_dir=tmp_path / "cache")
    assert report.scorer == "choice" and report.metrics["none"]["overall"].mean == 100.0
    assert len(report.judged) == 12 and report.judged_metrics["none"]["overall"].mean == pytest.approx(50.0)
    a = report.agreement
    assert (a.n, a.agreement, a.both_right, a.mc_only) == (12, 0.5, 6, 6)
    assert "judge (rating >= 3) vs letter agree on 50% of 12" in summary(report)
    assert model.n_calls == 24 and judge.n_calls == 6  # the same answer to the same question is judged once


def test_a_letter_chooser_plugs_into_the_solver(tmp_path):
    picks = []

    def choose(model, messages, letters, *, options=None):
        picks.append((letters, tuple(options)))
        return SimpleNamespace(letter="A", free_text="B, no wait", method="grammar")

    samples = load_samples(write_qa(tmp_path / "data", n=1))
    model = ScriptedChatModel(rule=answer_a)
    report = evaluate(samples, model, modes=["none"], mc=True, choose=choose, cache_dir=tmp_path / "cache")
    assert model.n_calls == 0 and len(picks) == 3 and picks[0] == ("ABCD", ("right", "wrong one", "wrong two", "wrong three"))
    r = report.samples[0]
    assert (r.raw, r.score, r.choice_method, r.answer) == ("A", 100.0, "grammar", "B, no wait")  # the pick, not a parse
    again = evaluate(samples, model, modes=["none"], mc=True, choose=choose, cache_dir=tmp_path / "cache")
    assert len(picks) == 3 and again.samples[0].raw == "A" and again.calls == {"made": 0, "from_cache": 3}


def test_degenerate_answers_fail_the_run_unless_allowed(tmp_path, monkeypatch, capsys):
    import evals.cpbench.runner as runner

    real = runner.chat_model
    replies = {"always-b": lambda text: "B", "mumbles": lambda text: "hmm", "reads": lambda text: "A" if "A. right" in text else
               "B" if "B. right" in text else "C" if "C. right" in text else "D"}
    monkeypatch.setattr(runner, "chat_model", lambda spec, temperature=None: ScriptedChatModel(rule=replies[spec])
                        if spec in replies else real(spec, temperature=temperature))
    data = write_qa(tmp_path / "data", n=4, keys="ABCD")
    run = lambda model, *more: main(["cpbench", "run", str(data), "--mc", "--model", model, "--modes", "none",  # noqa: E731
                                     "--out", str(tmp_path / model), "--no-cache", *more])
    assert run("reads") == 0
    assert "WARNING" not in capsys.readouterr().out
    assert run("always-b") == 4
    out, err = capsys.readouterr()
    assert "WARNING: the answers look degenerate" in out and "100% of the answers are 'B'" in out
    assert "--allow-degenerate" in err and (tmp_path / "always-b" / "report.json").is_file()
    assert "WARNING" in (tmp_path / "always-b" / "summary.txt").read_text()
    assert run("mumbles") == 4 and "only 0% of the answers could be read" in capsys.readouterr().out
    assert run("always-b", "--allow-degenerate") == 0
    assert run("reads", "--no-words") == 0
    log = json.loads((tmp_path / "reads" / "report.json").read_text())
    assert log["transcript"] == "none" and log["chance"] == 25.0
    assert all("the words are unknown" in s["prompt"] for s in log["samples"])


def test_cli_multiple_choice_picks_the_letter_with_choose_letter(tmp_path, monkeypatch):
    """`--mc` hands agents.choice.choose_letter to the run (grammar / log-probs for the local model,
    parse-then-ask for others); open-ended runs get no chooser."""
    from agents.choice import choose_letter
    from agents.testing import ScriptedChatModel
    from tests.helpers import write_qa
    from evals import cli
    from evals.cpbench import runner

    given = []
    real = runner.evaluate

    def evaluate(samples, model, **kwargs):
        given.append(kwargs.get("choose"))
        return real(samples, ScriptedChatModel(rule=lambda text: "A"), **{**kwargs, "judge": None if kwargs.get("mc") else ScriptedChatModel(rule=lambda text: "Rating: 3")})

    monkeypatch.setattr(runner, "evaluate", evaluate)
    qa = write_qa(tmp_path / "data", n=1)
    base = ["cpbench", "run", str(qa), "--modes", "none", "--allow-degenerate"]
    assert cli.main(base + ["--mc", "--out", str(tmp_path / "mc")]) == 0
    assert cli.main(base + ["--judge", "local", "--out", str(tmp_path / "open")]) == 0
    assert given == [choose_letter, None]
