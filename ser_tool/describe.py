"""Report -> a few plain sentences an LLM can read in a prompt."""

from __future__ import annotations

from collections.abc import Sequence

from ser_tool.audio import format_seconds
from ser_tool.labels import EMOTIONS
from ser_tool.report import Affect, Segment

UNCERTAIN_BELOW = 0.3  # confidence under this: say the emotion is uncertain
_NOUN = {
    "neutral": "a neutral tone", "happy": "happiness", "sad": "sadness", "angry": "anger",
    "fearful": "fear", "disgusted": "disgust", "surprised": "surprise",
}


def confidence_word(confidence: float) -> str:
    if confidence < UNCERTAIN_BELOW:
        return "low"
    if confidence < 0.6:
        return "moderate"
    return "high"


def describe_dimensions(affect: Affect) -> str | None:
    d = affect.dimensions
    if d is None:
        return None
    val = "negative" if d.valence < 0.4 else "positive" if d.valence > 0.6 else "neutral"
    aro = "calm, low-energy" if d.arousal < 0.4 else "energetic, aroused" if d.arousal > 0.6 else "moderately energetic"
    dom = "submissive" if d.dominance < 0.4 else "assertive" if d.dominance > 0.6 else "neither weak nor assertive"
    return (
        f"The voice sounds {aro} (arousal {d.arousal:.2f}), {val} in valence ({d.valence:.2f}) "
        f"and {dom} (dominance {d.dominance:.2f})."
    )


def _runs(timeline: Sequence[Segment]) -> list[tuple[float, float, str]]:
    """Consecutive speech segments with the same reading, merged (non-speech gaps are skipped).

    A segment whose confidence is low reads as "uncertain" rather than as its top emotion.
    """
    runs: list[list] = []
    for seg in timeline:
        if not seg.speech or seg.affect is None:
            continue
        label = seg.affect.emotion if seg.affect.confidence >= UNCERTAIN_BELOW else "uncertain"
        if runs and runs[-1][2] == label:
            runs[-1][1] = seg.end
        else:
            runs.append([seg.start, seg.end, label])
    return [tuple(r) for r in runs]


def describe_timeline(timeline: Sequence[Segment] | None, max_runs: int = 4) -> str | None:
    if not timeline:
        return None
    runs = _runs(timeline)
    if len(runs) <= 1:
        return None if not runs or runs[0][2] == "uncertain" else f"It stays {runs[0][2]} throughout the speech."
    parts = [f"{emo} {format_seconds(s)}-{format_seconds(e)}" for s, e, emo in runs[:max_runs]]
    more = f", and {len(runs) - max_runs} more changes" if len(runs) > max_runs else ""
    return f"Over time it changes: {'; '.join(parts)}{more}."


def describe(
    overall: Affect,
    *,
    duration: float,
    speech_duration: float,
    timeline: Sequence[Segment] | None,
) -> str:
    """A short description of the expressed (not felt) affect for an LLM prompt."""
    probs = dict(zip(EMOTIONS, overall.probabilities.as_tuple()))
    ranked = sorted(probs.items(), key=lambda kv: kv[1], reverse=True)
    top, p_top = ranked[0]
    second, p_second = ranked[1]
    word = confidence_word(overall.confidence)
    if word == "low":
        lead = (
            f"The speaker's voice gives no clear emotional signal: the most likely reading is {_NOUN[top]} "
            f"({p_top:.0%}), closely followed by {_NOUN[second]} ({p_second:.0%}); treat this as uncertain."
        )
    else:
        lead = f"The speaker's voice mainly expresses {_NOUN[top]} ({p_top:.0%})"
        lead += f", with some {_NOUN[second]} ({p_second:.0%})." if p_second >= 0.15 else "."
    sentences = [lead]
    dims = describe_dimensions(overall)
    if dims:
        sentences.append(dims)
    change = describe_timeline(timeline)
    if change:
        sentences.append(change)
    speech_share = speech_duration / duration if duration else 0.0
    if speech_share < 0.8:
        sentences.append(f"Speech fills {format_seconds(speech_duration)} of {format_seconds(duration)}; the rest is silence or non-speech.")
    sentences.append(
        f"Confidence: {word} ({overall.confidence:.2f}). This describes emotion expressed in the tone of voice, "
        "not what the speaker actually feels, and ignores the meaning of the words."
    )
    return " ".join(sentences)
