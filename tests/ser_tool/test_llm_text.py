"""The LLM surfaces' text stays small at any recording length: merged emotion episodes (blips absorbed),
the main changes and peaks, per-part lines for long audio; the full timeline stays in the report.
Reports are built directly from Segment objects (no audio, no model)."""

import random
import re

import pytest

from ser_tool import EMOTIONS, Affect, AffectReport, Dimensions, EmotionProbabilities
from ser_tool.describe import describe, describe_timeline, emotion_episodes, report_lines, report_text
from ser_tool.report import Segment

TEXT_CAP = 4000


def affect(top: str, confidence: float = 0.6, arousal: float = 0.5) -> Affect:
    p_top = 0.4 + 0.5 * confidence
    rest = (1 - p_top) / (len(EMOTIONS) - 1)
    probs = EmotionProbabilities(**{e: p_top if e == top else rest for e in EMOTIONS})
    return Affect(emotion=top, confidence=confidence, probabilities=probs, dimensions=Dimensions.from_sequence((0.5, arousal, 0.5)))


def timeline(spec: list[tuple[str, float]], start: float = 0.0) -> list[Segment]:
    """Back-to-back speech segments: (emotion or 'uncertain' or 'gap', seconds)."""
    out, t = [], start
    for what, secs in spec:
        if what == "gap":
            out.append(Segment(start=t, end=t + secs, speech=False))
        else:
            a = affect("neutral", 0.1) if what == "uncertain" else affect(what)
            out.append(Segment(start=t, end=t + secs, speech=True, affect=a))
        t += secs
    return out


def report(segments: list[Segment], warnings=()) -> AffectReport:
    duration = segments[-1].end if segments else 1.0
    speech = sum(s.end - s.start for s in segments if s.speech)
    overall = affect("neutral", 0.4)
    return AffectReport(source="call.wav", duration=duration, speech_duration=speech, sample_rate=16000, backend="embedded",
                        model_id="m", emotions_supported=list(EMOTIONS), overall=overall, timeline=segments, window=10.0,
                        hop=5.0, warnings=list(warnings),
                        description=describe(overall, duration=duration, speech_duration=speech, timeline=segments))


def conversation(minutes: float, seed: int = 0, step: float = 5.0) -> list[Segment]:
    """A conversation whose reading flips often: moods lasting 20 s - 5 min, each window a 30 % chance of
    another reading, pauses between turns."""
    rng = random.Random(seed)
    spec, t, mood, left = [], 0.0, "neutral", 0.0
    while t < minutes * 60:
        if left <= 0:
            mood, left = rng.choice(EMOTIONS), rng.uniform(20, 300)
        what = mood if rng.random() > 0.3 else rng.choice([*EMOTIONS, "uncertain"])
        spec.append((what, step))
        if rng.random() < 0.2:
            spec.append(("gap", 2.0))
        t += step
        left -= step
    return timeline(spec)


def _episodes(text: str) -> int:
    return int(re.search(r"^Episodes \((\d+), merged from \d+ speech segments; brief changes absorbed", text, re.M).group(1))


@pytest.mark.parametrize("minutes", [0.06, 3.5, 60, 240])
def test_text_stays_under_the_cap_at_any_length(minutes):
    r = report(conversation(minutes), warnings=["a caveat about the audio"])
    text = report_text(r)
    assert len(text) < TEXT_CAP, (minutes, len(text))
    assert len(r.description) < 1200
    assert "more changes" not in r.description
    assert text.startswith(r.description) and text.endswith("Note: a caveat about the audio")


def test_long_report_description_reads_as_episodes_and_peaks():
    r = report(conversation(60))
    d = r.description
    assert "main episodes (brief changes absorbed)" in d and "Strongest moments:" in d
    assert 4 <= d.count("% of it)") <= 6  # at most 6 episodes are told
    text = report_text(r)
    assert 8 <= _episodes(text) <= 12 and "Main changes:" in text
    assert "By tenth (6:26):" in text and len([ln for ln in text.splitlines() if ln.startswith("  ")]) == _episodes(text) + 10
    # the CLI's --timeline output stays complete
    assert len(report_lines(r, timeline=True)) > len(r.timeline)


def test_the_default_text_is_trimmed_to_the_cap_but_an_explicit_max_segments_is_not():
    many = [f"caveat {i}: " + "x" * 200 for i in range(12)]  # long notes leave less room for the timeline
    r = report(conversation(60), warnings=many)
    text = report_text(r, merged_note="(all of it elsewhere)")
    assert len(text) < TEXT_CAP and "By tenth" not in text and _episodes(text) < 12
    assert text.endswith("(all of it elsewhere)") and all(f"Note: {w}" in text for w in many)
    big = report_text(r, max_segments=60)
    assert len(big) > TEXT_CAP and 12 < _episodes(big) <= 60 and "By tenth" in big  # blips under 1 % still go


def test_three_and_a_half_minutes_gets_per_minute_parts():
    text = report_text(report(conversation(3.5)))
    assert "By minute:" in text and "  3:00-3:44" in text  # the last minute ends with the recording


def test_short_timelines_keep_their_exact_description_and_list_segments():
    tl = timeline([("angry", 3), ("gap", 1), ("sad", 2), ("angry", 3)])
    assert describe_timeline(tl) == "Over time it changes: angry 0:00-0:03; sad 0:04-0:06; angry 0:06-0:09."
    text = report_text(report(tl))
    assert "Timeline (3 speech segments):" in text and "  0:04-0:06 sad, conf 0.60, V 0.50 A 0.50 D 0.50" in text
    assert "Episodes" not in text and "By minute" not in text


def test_episodes_join_same_readings_across_pauses():
    eps = emotion_episodes(timeline([("angry", 5), ("gap", 2), ("angry", 5), ("sad", 5), ("sad", 5)]))
    assert [(e.emotion, e.start, e.end, e.segments, e.share) for e in eps] == [("angry", 0, 12, 2, 1.0), ("sad", 12, 22, 2, 1.0)]
    assert eps[0].seconds == 10 and eps[0].confidence == pytest.approx(0.6) and eps[0].arousal == pytest.approx(0.5)


def test_a_blip_between_two_equal_readings_is_absorbed_into_one_episode():
    tl = timeline([("angry", 30), ("happy", 5), ("angry", 30), ("sad", 40)])
    kept = emotion_episodes(tl)
    assert [e.emotion for e in kept] == ["angry", "happy", "angry", "sad"]  # nothing is absorbed by default
    eps = emotion_episodes(tl, min_seconds=6)
    assert [(e.emotion, e.start, e.end) for e in eps] == [("angry", 0, 65), ("sad", 65, 105)]
    assert eps[0].share == pytest.approx(60 / 65) and eps[0].segments == 3


def test_a_blip_at_a_boundary_goes_to_the_longer_neighbour_and_uncertain_is_a_reading():
    tl = timeline([("angry", 20), ("uncertain", 4), ("sad", 40), ("happy", 3)])
    eps = emotion_episodes(tl, min_seconds=5)
    assert [(e.emotion, e.start, e.end) for e in eps] == [("angry", 0, 20), ("sad", 20, 67)]


def test_max_episodes_merges_the_shortest_until_they_fit():
    tl = timeline([("angry", 10), ("sad", 8), ("angry", 12), ("neutral", 50), ("happy", 9), ("neutral", 30)])
    eps = emotion_episodes(tl, max_episodes=2)
    assert [(e.emotion, e.start, e.end) for e in eps] == [("angry", 0, 30), ("neutral", 30, 119)]
    assert [e.emotion for e in emotion_episodes(tl, max_episodes=1)] == ["neutral"]
    assert 5 <= len(emotion_episodes(conversation(60), max_episodes=7)) <= 7  # a merge can join three


def test_episodes_of_nothing():
    assert emotion_episodes(None) == [] and emotion_episodes(timeline([("gap", 3)])) == []
    assert [e.emotion for e in emotion_episodes(timeline([("sad", 3)]), max_episodes=1)] == ["sad"]


def test_max_segments_chooses_segments_or_episodes():
    r = report(conversation(3.5))
    n = sum(s.speech for s in r.timeline)
    assert f"Timeline ({n} speech segments):" in report_text(r, max_segments=n)
    few = report_text(r, max_segments=3)
    assert 1 <= _episodes(few) <= 3 and len(re.findall(r"^  \S+ \w+ \d+%, conf", few, re.M)) == _episodes(few)
