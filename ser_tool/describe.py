"""Every report -> text rendering, in one place: each surface calls a small function here.

- `describe`: the report's own description (a few plain sentences an LLM can read in a prompt);
- `report_lines`: the `ser analyze` text; `transcript_lines` / `transcript_text`: a transcript, one line
  per segment (CLI, MCP, LangChain);
- `report_summary`: one line per report (the MCP batch summary); `reading_lines`: the MCP prompt's reading;
- `affect_lines`, `affect_tag`, `affect_stretches` + `stretch_lines`, `span_text`: the agent prompt's
  affect block pieces; `affect_brief`: the tag `ser-agent chat` shows next to each reply;
- `safe_name`: the one way any surface puts a name it did not choose (a file name, a path, a message
  quoting one) into text.

Whether an emotion is uncertain is `Affect.uncertain` (ser_tool.report), never a comparison here.
"""

from __future__ import annotations

import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from ser_tool.audio import format_seconds
from ser_tool.labels import EMOTIONS
from ser_tool.report import UNCERTAIN_BELOW, Affect, AffectReport, Dimensions, EmotionTranscript, Segment

__all__ = [
    "MESSAGE_MAX_CHARS", "NAME_MAX_CHARS", "NOT_A_VOICE", "UNCERTAIN_BELOW", "Stretch", "affect_brief", "affect_lines",
    "affect_stretches", "affect_tag", "confidence_word", "describe", "describe_dimensions", "describe_timeline",
    "probabilities_text", "ranked_emotions", "reading_lines", "report_lines", "report_summary", "safe_name",
    "span_text", "stretch_lines", "transcript_lines", "transcript_text", "vad_letters", "vad_words",
]
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


# -- pieces every surface shares ------------------------------------------------------------------

def confidence_word(affect: Affect) -> str:
    """'low' (uncertain), 'moderate' or 'high'."""
    if affect.uncertain:
        return "low"
    confidence = affect.confidence
    if confidence < 0.6:
        return "moderate"
    return "high"


def ranked_emotions(affect: Affect) -> list[tuple[str, float]]:
    """(emotion, probability) pairs, most probable first (ties keep the order of EMOTIONS)."""
    return sorted(zip(EMOTIONS, affect.probabilities.as_tuple()), key=lambda kv: -kv[1])


def probabilities_text(pairs: Sequence[tuple[str, float]]) -> str:
    """'happy 0.52, sad 0.20'."""
    return ", ".join(f"{e} {p:.2f}" for e, p in pairs)


def vad_letters(d: Dimensions) -> str:
    """'V 0.40 A 0.70 D 0.55'."""
    return f"V {d.valence:.2f} A {d.arousal:.2f} D {d.dominance:.2f}"


def vad_words(d: Dimensions, sep: str = ", ") -> str:
    """'valence 0.40, arousal 0.70, dominance 0.55'."""
    return sep.join(f"{name} {value:.2f}" for name, value in (("valence", d.valence), ("arousal", d.arousal), ("dominance", d.dominance)))


def span_text(start: float, end: float) -> str:
    """A time span as the agent prompt writes it: '[1.0-3.5s]'."""
    return f"[{start:.1f}-{end:.1f}s]"


# -- the report's description ---------------------------------------------------------------------

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
        label = "uncertain" if seg.affect.uncertain else seg.affect.emotion
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
    (top, p_top), (second, p_second) = ranked_emotions(overall)[:2]
    word = confidence_word(overall)
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


# -- CLI, MCP and LangChain text --------------------------------------------------------------------

def report_lines(report: AffectReport, *, timeline: bool = False) -> list[str]:
    """The `ser analyze` text of one report, terminal-sized: overall emotion, a bar per emotion,
    dimensions, the description, the timeline (when `timeline` and the report has one), the notes."""
    o = report.overall
    lines = [
        f"{safe_name(report.source)}  ({format_seconds(report.duration)}, speech {format_seconds(report.speech_duration)})  "
        f"[{report.backend}: {report.model_id}]",
        f"  expressed emotion: {o.emotion}   confidence {o.confidence:.2f} ({confidence_word(o)})",
    ]
    for emo, p in zip(EMOTIONS, o.probabilities.as_tuple()):
        mark = "" if emo in report.emotions_supported else "  (not detectable by this model)"
        lines.append(f"    {emo:<10} {_bar(p)} {p:5.2f}{mark}")
    if o.dimensions:
        lines.append(f"  {vad_words(o.dimensions, sep='   ')}   (0..1)")
    lines += textwrap.wrap(report.description, width=100, initial_indent="  ", subsequent_indent="  ")
    if timeline and report.timeline:
        lines.append("  timeline:")
        for seg in report.timeline:
            span = f"{format_seconds(seg.start):>8}-{format_seconds(seg.end):<8}"
            if not seg.speech or seg.affect is None:
                lines.append(f"    {span} (no speech)")
                continue
            a = seg.affect
            dims = f"  {vad_letters(a.dimensions)}" if a.dimensions else ""
            lines.append(f"    {span} {a.emotion:<10} p {max(a.probabilities.as_tuple()):.2f}  conf {a.confidence:.2f}{dims}")
    lines += [f"  note: {w}" for w in report.warnings]
    return lines


def _bar(p: float, width: int = 20) -> str:
    full = int(p * width)
    return ("█" * full + ("▌" if p * width - full >= 0.5 else "")).ljust(width)


def transcript_lines(transcript: EmotionTranscript) -> list[str]:
    """One readable line per segment: time span, expressed emotion with confidence, the words."""
    lines = []
    for s in transcript.segments:
        span = f"[{format_seconds(s.start)}-{format_seconds(s.end)}]"
        if s.affect is None:
            tone = "(no speech analysed)"
        else:
            a = s.affect
            dims = f", {vad_letters(a.dimensions)}" if a.dimensions else ""
            tone = f"({a.emotion}, confidence {a.confidence:.2f}{dims})"
        lines.append(f"{span} {tone} {s.text}")
    return lines


def transcript_text(transcript: EmotionTranscript, *, heading: str | None = None) -> str:
    """The description, then `heading` (if any), then the transcript lines: what a tool's reader gets first."""
    head = [transcript.report.description, *([heading] if heading else [])]
    return "\n".join(head) + "\n" + "\n".join(transcript_lines(transcript))


def report_summary(report: AffectReport) -> str:
    """One line for comparing recordings: top emotion, confidence, arousal and valence, the three most
    probable emotions, the duration. The caller puts the (escaped) name in front."""
    o = report.overall
    dims = f", arousal {o.dimensions.arousal:.2f}, valence {o.dimensions.valence:.2f}" if o.dimensions else ""
    return (f"{o.emotion} (confidence {o.confidence:.2f}{dims}; {probabilities_text(ranked_emotions(o)[:3])}; "
            f"{report.duration:.1f} s)")


def reading_lines(report: AffectReport) -> list[str]:
    """The report as the empathetic-reply prompt reads it: emotion, dimensions, summary, caveats."""
    o = report.overall
    lines = [f"- expressed emotion: {o.emotion} (confidence {o.confidence:.2f}" + (", uncertain" if o.uncertain else "") + ")"]
    if o.dimensions:
        lines.append(f"- {vad_words(o.dimensions)} (each 0..1)")
    lines.append(f"- summary: {report.description}")
    lines += [f"- caveat: {w}" for w in report.warnings]
    return lines


# -- the agent prompt's affect block pieces ---------------------------------------------------------

def affect_lines(a: Affect) -> str:
    """The overall affect as the prompt's affect block gives it: emotion (marked when uncertain),
    confidence, the next two emotions; dimensions on a second line."""
    head = f"{a.emotion} (uncertain)" if a.uncertain else a.emotion
    text = f"- expressed emotion: {head}, confidence {a.confidence:.2f}; next most likely: {probabilities_text(ranked_emotions(a)[1:3])}"
    if a.dimensions:
        text += f"\n- {vad_words(a.dimensions)}"
    return text


def affect_tag(a: Affect, *, dimensions: bool = False) -> str:
    """'angry, conf 0.62' or 'uncertain, maybe sad, conf 0.12' (+ ', V .. A .. D ..' with `dimensions`)."""
    tag = f"uncertain, maybe {a.emotion}, conf {a.confidence:.2f}" if a.uncertain else f"{a.emotion}, conf {a.confidence:.2f}"
    return tag + (f", {vad_letters(a.dimensions)}" if dimensions and a.dimensions else "")


def affect_brief(a: Affect) -> str:
    """'sad 0.42' (+ ' uncertain') (+ ' | V .. A .. D ..'): the tag `ser-agent chat` shows next to a reply."""
    tag = f"{a.emotion} {a.confidence:.2f}" + (" uncertain" if a.uncertain else "")
    return tag + (f" | {vad_letters(a.dimensions)}" if a.dimensions else "")


@dataclass(frozen=True)
class Stretch:
    """A stretch of speech with one expressed emotion: neighbouring analysis windows merged."""

    start: float
    end: float
    affect: Affect  # of the stretch's longest window; confidence averaged over its windows by duration


def affect_stretches(report: AffectReport) -> list[Stretch]:
    """The report's timeline, compact: speech segments only, directly adjacent windows with the same
    emotion merged (a pause always ends a stretch). Without a timeline, one stretch: the whole recording."""
    if not report.timeline:
        return [Stretch(0.0, report.duration, report.overall)] if report.speech_duration > 0 else []
    groups: list[list] = []
    for seg in report.timeline:
        if not seg.speech or seg.affect is None:
            groups.append([])
            continue
        last = groups[-1] if groups else []
        if last and last[-1].affect.emotion == seg.affect.emotion and abs(last[-1].end - seg.start) < 1e-6:
            last.append(seg)
        else:
            groups.append([seg])
    out = []
    for g in (g for g in groups if g):
        weights = [max(s.end - s.start, 1e-9) for s in g]
        conf = sum(w * s.affect.confidence for w, s in zip(weights, g)) / sum(weights)
        longest = g[max(range(len(g)), key=weights.__getitem__)].affect
        out.append(Stretch(g[0].start, g[-1].end, longest.model_copy(update={"confidence": conf})))
    return out


def stretch_lines(stretches: Sequence[Stretch]) -> list[str]:
    """'[0.0-4.0s] angry, conf 0.62', one line per stretch."""
    return [f"{span_text(s.start, s.end)} {affect_tag(s.affect)}" for s in stretches]
