"""ser_tool.describe is the one home of report -> text; `Affect.uncertain` the one uncertainty rule."""

import re

import pytest

from ser_tool import EMOTIONS, Affect, AffectReport, Dimensions, EmotionProbabilities, EmotionTranscript, report_json_schema
from ser_tool.describe import (
    affect_brief,
    affect_lines,
    affect_tag,
    confidence_word,
    ranked_emotions,
    reading_lines,
    report_lines,
    report_summary,
    transcript_text,
)
from ser_tool.report import UNCERTAIN_BELOW, Segment, SpokenSegment
from tests.helpers import REPO as ROOT


def affect(top: str, p_top: float, confidence: float, dims=(0.2, 0.8, 0.5)) -> Affect:
    rest = (1 - p_top) / (len(EMOTIONS) - 1)
    probs = EmotionProbabilities(**{e: p_top if e == top else rest for e in EMOTIONS})
    return Affect(emotion=top, confidence=confidence, probabilities=probs,
                  dimensions=Dimensions.from_sequence(dims) if dims else None)


def report(overall: Affect, timeline=None, source="call.wav") -> AffectReport:
    return AffectReport(source=source, duration=5.0, speech_duration=5.0, sample_rate=16000, backend="hf", model_id="m",
                        emotions_supported=list(EMOTIONS), overall=overall, timeline=timeline, window=2.5, hop=2.5,
                        description="A description.", warnings=["a caveat"])


def test_uncertain_is_a_property_at_the_threshold_and_not_serialised():
    assert affect("sad", 0.3, UNCERTAIN_BELOW - 0.01).uncertain
    assert not affect("sad", 0.3, UNCERTAIN_BELOW).uncertain
    a = affect("sad", 0.3, 0.1)
    assert "uncertain" not in a.model_dump()
    assert "uncertain" not in report_json_schema()["$defs"]["Affect"]["properties"]
    assert f"Below about {UNCERTAIN_BELOW}," in Affect.model_fields["confidence"].description


def test_hop_schema_text_states_the_step_used():
    hop = AffectReport.model_fields["hop"].description
    assert "equal to window: no overlap" not in hop and "overlap" in hop


@pytest.mark.parametrize("confidence, uncertain", [(0.1, True), (0.7, False)])
def test_every_surface_agrees_on_uncertainty(confidence, uncertain):
    a = affect("angry", 0.6, confidence)
    assert affect_tag(a).startswith("uncertain, maybe angry") is uncertain
    assert affect_brief(a).startswith(f"angry {confidence:.2f} uncertain") is uncertain
    assert ("angry (uncertain)" in affect_lines(a)) is uncertain
    assert (", uncertain)" in reading_lines(report(a))[0]) is uncertain
    assert (confidence_word(a) == "low") is uncertain


def test_pieces():
    a = affect("happy", 0.7, 0.65)
    assert [e for e, _ in ranked_emotions(a)][:2] == ["happy", "neutral"]  # ties keep the order of EMOTIONS
    assert affect_tag(a, dimensions=True) == "happy, conf 0.65, V 0.20 A 0.80 D 0.50"
    assert affect_brief(affect("happy", 0.7, 0.65, dims=None)) == "happy 0.65"
    assert affect_lines(a).splitlines()[1] == "- valence 0.20, arousal 0.80, dominance 0.50"
    assert report_summary(report(a)) == ("happy (confidence 0.65, arousal 0.80, valence 0.20; happy 0.70, neutral 0.05, "
                                         "sad 0.05; 5.0 s)")


def test_report_lines_timeline_only_when_asked_and_names_escaped():
    a = affect("sad", 0.5, 0.4)
    r = report(a, timeline=[Segment(start=0, end=2.5, speech=True, affect=a), Segment(start=2.5, end=5, speech=False)],
               source="evil\nname.wav")
    plain, full = report_lines(r), report_lines(r, timeline=True)
    assert plain[0].startswith("evil\\nname.wav") and "  timeline:" not in plain
    assert "  timeline:" in full and full[-2].endswith("(no speech)") and full[-1] == "  note: a caveat"


def test_transcript_text_heading():
    a = affect("sad", 0.5, 0.4)
    t = EmotionTranscript(source="x", duration=5, text="hi", asr_model="given", report=report(a),
                          segments=[SpokenSegment(start=0, end=1, text="hi", affect=a, speech_coverage=1.0)])
    assert transcript_text(t).splitlines() == ["A description.", "[0:00-0:01] (sad, confidence 0.40, V 0.20 A 0.80 D 0.50) hi"]
    assert transcript_text(t, heading="Words:").splitlines()[1] == "Words:"


def test_surfaces_render_through_describe():
    from agents.cli import affect_tag as chat_tag
    from mcp_server.tools import FileResult, _summary

    r = report(affect("fearful", 0.6, 0.5))

    class Perception:
        report, words = r, None

    assert chat_tag(Perception()) == affect_brief(r.overall)
    assert _summary([FileResult(source="a\nb.wav", report=r)]) == f"a\\nb.wav: {report_summary(r)}"


def test_the_threshold_is_compared_only_in_the_report_model():
    """Every surface asks `Affect.uncertain`; nobody compares a confidence with the threshold itself."""
    compare = re.compile(r"confidence\s*(<|>=)\s*(UNCERTAIN_BELOW|0\.3\b)")
    offenders = [str(p.relative_to(ROOT)) for folder in ("ser_tool", "agents", "mcp_server", "evals")
                 for p in (ROOT / folder).rglob("*.py") if compare.search(p.read_text(encoding="utf-8"))]
    assert offenders == ["ser_tool/report.py"]  # Affect.uncertain itself
