"""Report -> a few plain sentences an LLM can read in a prompt; and `safe_name`, the one way any surface
puts a name it did not choose (a file name, a path, a message quoting one) into text."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from ser_tool.audio import format_seconds
from ser_tool.labels import EMOTIONS
from ser_tool.report import Affect, Segment

UNCERTAIN_BELOW = 0.3  # confidence under this: say the emotion is uncertain
NOT_A_VOICE = ("The audio looks like steady tones or music (a held pitch, hum or chord), not speech; "
               "the emotion reading is not meaningful.")
_NOUN = {
    "neutral": "a neutral tone", "happy": "happiness", "sad": "sadness", "angry": "anger",
    "fearful": "fear", "disgusted": "disgust", "surprised": "surprise",
}


NAME_MAX_CHARS = 240  # a file name longer than this is cut in the middle (its extension stays visible)
MESSAGE_MAX_CHARS = 2000  # an error message quoting a name: room for the message, not for a flood

# Characters that could change how text around them reads: line breaks (\n, \r, U+0085, U+2028/2029),
# terminal escapes (\x1b), other controls, bidi overrides and isolates (U+202A-202E, U+2066-2069),
# zero-width and other format characters, and lone surrogates (undecodable bytes of a POSIX file name,
# which would also crash a UTF-8 print). ZWNJ/ZWJ stay: scripts and emoji need them and they move nothing.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_KEEP = frozenset({"\u200c", "\u200d"})
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def safe_name(text: object, max_chars: int | None = NAME_MAX_CHARS) -> str:
    """`text` made safe to embed in a line an LLM or a terminal reads: every control, line-break, format
    (bidi, zero-width) or surrogate character is written as a visible escape (`\\n`, `\\x1b`, `\\u202e`),
    so a file name can never start a new line or hide or reorder text around it; and a name longer than
    `max_chars` is cut in the middle ('start…end'). The escaping is for reading, not reversible (a
    backslash is left as it is). Use it wherever a name or a message quoting one becomes text; JSON
    output needs no help (json escapes) and keeps the raw name.
    """
    text = str(text)
    if max_chars is not None and len(text) > max_chars:
        keep = max(2, max_chars - 1)
        text = text[: keep - keep // 3] + "…" + text[len(text) - keep // 3:]
    if text.isprintable() and text.isascii():  # the common case: nothing to escape
        return text
    return "".join(_escape(c) if c not in _KEEP and unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)


def _escape(c: str) -> str:
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


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
