"""The AudioBench judge (prompt, rating parsing, x 20), the multiple-choice scorer and the metrics."""

from __future__ import annotations

import pytest

from agents.testing import ScriptedChatModel

from evals.cpbench.dataset import Sample
from evals.cpbench.metrics import SampleResult, aggregate, bootstrap_ci
from evals.cpbench.scorers import ChoiceScorer, JudgeScorer, parse_choice, parse_rating


def sample(**kw) -> Sample:
    base = dict(id="s1", audio="x.wav", question="How does she feel about the delay?", reference="She is annoyed.",
                question_type="contextual_paralinguistic", choices=["happy", "annoyed", "sad", "calm"], correct_choice="B")
    return Sample(**{**base, **kw})


@pytest.mark.parametrize("text, rating", [
    ("Explanation: close.\nRating: 4", 4),
    ("Rating: 5\nExplanation: on second thought it misses the point.\nRating: 2", 2),  # the last one counts
    ("Explanation: ok\nRating: **3**", 3),
    ("Explanation: ok\nrating: [5]", 5),
    ("Explanation: ok\nRating: 3/5", 3),
    ("Explanation: ok\nRating: 0", 0),
])
def test_rating_is_parsed_from_the_end(text, rating):
    assert parse_rating(text) == rating


@pytest.mark.parametrize("text", ["Explanation: good", "Rating: 7", "Rating: 4.5", "Rating: five", "", "Rating:"])
def test_malformed_ratings_are_unparsable(text):
    assert parse_rating(text) is None


def test_judge_prompt_and_score_is_rating_times_20():
    judge = ScriptedChatModel(replies=["Explanation: the reference answer is annoyed, the model says annoyed.\nRating: 4"])
    score = JudgeScorer(judge)(sample(), "q", "She sounds irritated.")
    sent = judge.calls[0][-1].text
    for part in ("[Reference Answer]\nShe is annoyed.", "[Model Answer]\nShe sounds irritated.",
                 "[Question]\nHow does she feel about the delay?", "Score5:", "cannot decide", "Rating: (int)"):
        assert part in sent
    assert (score.value, score.parsed, score.raw) == (80.0, True, 4)


def test_unparsable_judge_reply_scores_zero_and_is_counted():
    judge = ScriptedChatModel(replies=["I think it is fine.", "Rating: 5"])
    scorer = JudgeScorer(judge)
    bad, good = scorer(sample(id="a"), "q", "x"), scorer(sample(id="b"), "q", "y")
    assert (bad.value, bad.parsed) == (0.0, False)
    assert (good.value, good.parsed) == (100.0, True)
    rows = [result(sid, "t", "none", s.value, s.parsed) for sid, s in (("a", bad), ("b", good))]
    cell = aggregate(rows)["none"]["overall"]
    assert cell.mean == 50.0 and cell.parse_rate == 0.5


@pytest.mark.parametrize("answer, letter", [
    ("B", "B"), ("B.", "B"), ("B. annoyed", "B"), ("(C)", "C"), ("Answer: d", "D"), ("The answer is B.", "B"),
    ("She is annoyed.", "B"), ("**A**", "A"), ("", None), ("I cannot tell.", None), ("E", None),
])
def test_choice_parsing(answer, letter):
    assert parse_choice(answer, ["happy", "annoyed", "sad", "calm"]) == letter


def test_choice_scorer():
    s = sample()
    assert ChoiceScorer()(s, "q", "B").value == 100.0
    wrong = ChoiceScorer()(s, "q", "A. happy")
    assert (wrong.value, wrong.parsed, wrong.raw) == (0.0, True, "A")
    assert ChoiceScorer()(s, "q", "no idea").parsed is False


def result(sid, qtype, mode, score, parsed=True) -> SampleResult:
    return SampleResult(sample_id=sid, question_type=qtype, mode=mode, question="q", reference="r", prompt="p",
                        answer="a", score=score, parsed=parsed)


def test_per_type_aggregation_and_paired_difference():
    rows = [result("1", "content", "none", 100), result("2", "content", "none", 0),
            result("3", "direct_paralinguistic", "none", 0),
            result("1", "content", "oracle", 100), result("2", "content", "oracle", 100),
            result("3", "direct_paralinguistic", "oracle", 100)]
    m = aggregate(rows)
    assert m["none"]["content"].mean == 50.0 and m["none"]["content"].n == 2
    assert m["none"]["direct_paralinguistic"].mean == 0.0
    assert m["none"]["overall"].mean == pytest.approx(100 / 3)
    assert m["none"]["overall"].diff_vs_none is None
    assert m["oracle"]["overall"].mean == 100.0
    assert m["oracle"]["content"].diff_vs_none == 50.0
    assert m["oracle"]["overall"].diff_vs_none == pytest.approx(200 / 3)
    lo, hi = m["oracle"]["overall"].diff_ci95
    assert lo <= m["oracle"]["overall"].diff_vs_none <= hi


def test_bootstrap_is_reproducible():
    x = [0, 20, 40, 100, 80, 60]
    assert bootstrap_ci(x) == bootstrap_ci(x)
    lo, hi = bootstrap_ci(x)
    assert lo < sum(x) / len(x) < hi


def test_rule_model_helper_counts():
    m = ScriptedChatModel(rule=lambda text: "A")
    assert m.invoke("hi").text == "A" and m.n_calls == 1
