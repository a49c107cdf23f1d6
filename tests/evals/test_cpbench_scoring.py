"""The AudioBench judge (prompt, rating parsing, x 20), the multiple-choice scorer and the metrics: the
share of the none -> oracle gap closed and its CI, the SER-vs-LLM error split, judge/letter agreement and
the degenerate-answer warnings, on known inputs."""

from __future__ import annotations

import pytest

from agents.testing import ScriptedChatModel

from evals.cpbench.dataset import Sample
from evals.cpbench.metrics import (
    SampleResult,
    aggregate,
    agreement,
    bootstrap_ci,
    degenerate_warnings,
    error_split,
    gap_closed,
    gap_closed_table,
    ser_reading,
)
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


# -- the share of the none -> oracle gap that predicted closes ----------------------------------------------

def three_modes(none, predicted, oracle, qtype="direct_paralinguistic"):
    rows = []
    for mode, scores in (("none", none), ("predicted", predicted), ("oracle", oracle)):
        rows += [result(str(i), qtype, mode, s) for i, s in enumerate(scores)]
    return rows


def test_gap_closed_on_known_inputs():
    rows = three_modes([0] * 10, [100] * 6 + [0] * 4, [100] * 10)
    g = gap_closed(rows)
    assert (g.n, g.none, g.predicted, g.oracle, g.value) == (10, 0.0, 60.0, 100.0, 0.6)
    lo, hi = g.ci95
    assert 0.2 <= lo < 0.6 < hi <= 1.0 and g.note is None
    assert gap_closed(rows).ci95 == g.ci95  # fixed seed: reruns agree
    # half the gap: none right on 2, oracle on 8, predicted on 5 (paired: the same samples)
    half = three_modes([100, 100] + [0] * 8, [100] * 5 + [0] * 5, [100] * 8 + [0] * 2)
    assert gap_closed(half).value == pytest.approx(0.5)
    # pooled over the paralinguistic types, content left out; samples missing a mode are left out too
    mixed = rows + three_modes([0] * 3, [0] * 3, [0] * 3, qtype="content") + [result("x", "temporal", "none", 0)]
    table = gap_closed_table(mixed)
    assert table["paralinguistic"].value == 0.6 and table["paralinguistic"].n == 10
    assert table["content"].value is None and "undefined" in table["content"].note


def test_gap_closed_is_undefined_without_a_gap():
    flat = gap_closed(three_modes([100, 0, 100, 0], [100, 100, 0, 0], [100, 0, 100, 0]))
    assert flat.value is None and flat.ci95 is None and "oracle beats none by +0.0 points" in flat.note
    worse = gap_closed(three_modes([100] * 4, [0] * 4, [0] * 4))
    assert worse.value is None and "-100.0" in worse.note
    # a positive gap that is not reliably positive: the share is given, its CI is not (unbounded)
    shaky = gap_closed(three_modes([0, 100, 0, 100, 0, 0], [0, 0, 100, 0, 0, 0], [100, 0, 100, 0, 100, 0]))
    assert shaky.value is not None and shaky.ci95 is None and "CI undefined" in shaky.note
    assert gap_closed([result("1", "t", "none", 0)]).n == 0


# -- why predicted answers missed ---------------------------------------------------------------------------

def test_ser_reading_single_and_per_stretch():
    from tests.helpers import REPORT  # overall sad; timeline sad 0-5 s, pause, neutral 6-9 s

    from agents import OracleSegment

    assert ser_reading(REPORT, "sad").right is True
    assert ser_reading(REPORT, "Sadness").right is True  # the label is mapped onto the 7 emotions
    wrong = ser_reading(REPORT, "angry")
    assert (wrong.heard, wrong.label, wrong.right) == ("sad", "angry", False)
    assert ser_reading(REPORT, "frustrated").right is None  # no counterpart: not comparable
    assert ser_reading(None, "sad").right is None
    segs = [OracleSegment(start=0, end=5, emotion="sad"), OracleSegment(start=5.5, end=9, emotion="calm")]
    per = ser_reading(REPORT, "sad, then calm", segs)
    assert (per.heard, per.right) == ("sad, then neutral", True)  # calm = neutral
    segs[1] = OracleSegment(start=5.5, end=9, emotion="angry")
    assert ser_reading(REPORT, "x", segs).right is False
    segs[1] = OracleSegment(start=5.5, end=9, emotion="frustrated")
    assert ser_reading(REPORT, "x", segs).right is None  # a stretch label the 7 emotions do not know
    gap_only = [OracleSegment(start=0, end=5, emotion="sad"), OracleSegment(start=5.1, end=5.9, emotion="angry")]
    assert ser_reading(REPORT, "x", gap_only).heard == "sad, then (no speech found)"


def test_error_split_counts_misses_by_cause():
    rows = [result(str(i), "direct_paralinguistic", "predicted", score) for i, score in enumerate([100, 0, 0, 0, 0])]
    rows.append(result("c", "content", "predicted", 0))
    for r, reading, cause in zip(rows, ["right", "wrong", "wrong", "right", None, "right"], [None, "ser", "ser", "llm", "unknown", "llm"]):
        r.ser_reading, r.miss_cause = reading, cause
    split = error_split(rows + [result("0", "direct_paralinguistic", "none", 0)])  # other modes are ignored
    d = split["direct_paralinguistic"]
    assert (d.answered, d.misses, d.ser_wrong, d.llm_misuse, d.unknown) == (5, 4, 2, 1, 1)
    assert d.ser_right_rate == pytest.approx(2 / 4)
    assert split["paralinguistic"].misses == 4 and split["overall"].misses == 5 and split["overall"].llm_misuse == 2


# -- the judge against the letter, degenerate answers ---------------------------------------------------------

def test_agreement_of_judge_and_letter():
    mc = [result(str(i), "t", "none", s) for i, s in enumerate([100, 100, 0, 0, 100])]
    judged = [result(str(i), "t", "none", s) for i, s in enumerate([80, 20, 0, 60, 100])]
    judged.append(result("9", "t", "none", 100))  # no MC counterpart: left out
    a = agreement(mc, judged)
    assert (a.n, a.both_right, a.both_wrong, a.mc_only, a.judge_only) == (5, 2, 1, 1, 1)
    assert a.agreement == pytest.approx(0.6) and a.per_mode == {"none": pytest.approx(0.6)}
    # kappa: observed 0.6, expected 0.6*0.6 + 0.4*0.4 = 0.52
    assert a.kappa == pytest.approx((0.6 - 0.52) / 0.48)
    assert agreement(mc, []).n == 0


def letters(mode, answers, key):
    return [SampleResult(sample_id=str(i), question_type="t", mode=mode, question="q", reference="r", prompt="p",
                         answer=a or "?", score=100.0 if a == k else 0.0, parsed=a is not None, raw=a, correct_choice=k)
            for i, (a, k) in enumerate(zip(answers, key))]


def test_degenerate_answers_are_flagged():
    key = list("ABCD" * 3)
    assert degenerate_warnings(letters("none", list("ABCDABCDABCD"), key)) == []
    (w,) = degenerate_warnings(letters("none", list("BBBBBBBBBBAC"), key))
    assert "mode none: 83% of the answers are 'B'" in w
    (w,) = degenerate_warnings(letters("oracle", [None, None] + list("ABCDABCDAB"), key))
    assert "only 83% of the answers could be read" in w
    assert degenerate_warnings(letters("none", list("BBBBBBB"), key[:7])) == []  # too few answers to tell
    skewed = list("AAAAAAAABCDA")
    assert degenerate_warnings(letters("none", skewed, skewed)) == []  # the key itself is mostly A
