"""Every report -> text rendering, in one place: each surface calls a small function here.

- `describe`: the report's own description (a few plain sentences an LLM can read in a prompt);
- `report_lines`: the `ser analyze` text; `transcript_lines` / `transcript_text`: a transcript, one line
  per segment (CLI, MCP, LangChain);
- `report_summary`: one line per report (the MCP batch summary); `reading_lines`: the MCP prompt's reading;
- `affect_lines`, `affect_tag`, `affect_stretches` + `stretch_lines`, `span_text`: the agent prompt's
  affect block pieces; `affect_brief`: the tag `ser-agent chat` shows next to each reply;
- `emotion_episodes`, `report_text`: the compact summary an LLM tool result carries (merged episodes,
  the main changes and peaks, per-part lines for long audio); its size does not grow with the recording;
- `safe_name`: the one way any surface puts a name it did not choose (a file name, a path, a message
  quoting one) into text.

Whether an emotion is uncertain is `Affect.uncertain` (ser_tool.report), never a comparison here.
"""

from __future__ import annotations

import heapq
import math
import re
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from ser_tool.audio import format_seconds
from ser_tool.labels import EMOTIONS
from ser_tool.report import UNCERTAIN_BELOW, Affect, AffectReport, Dimensions, EmotionTranscript, Segment, SpeakerSummary

__all__ = [
    "HIGH_CONFIDENCE_FROM", "MESSAGE_MAX_CHARS", "NAME_MAX_CHARS", "NOT_A_VOICE", "SUMMARY_MAX_CHARS", "SUMMARY_MAX_SEGMENTS", "UNCERTAIN_BELOW",
    "Episode", "Stretch", "affect_brief", "affect_lines",
    "affect_stretches", "affect_tag", "confidence_word", "describe", "describe_dimensions", "describe_timeline",
    "emotion_episodes", "file_failure", "probabilities_text", "ranked_emotions", "reading_lines", "report_lines", "report_summary",
    "report_text", "safe_name",
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


def file_failure(name: str, message: str, max_chars: int | None = MESSAGE_MAX_CHARS) -> str:
    """A file's error as one safe line that names the file once: the message itself when it already names
    the file as its subject ("a.wav is an empty file ...", "a.wav: no such file", "no speech detected in
    a.wav (...)": how every AudioError names its source), else "name: message"."""
    n = re.escape(name)
    named = not name or re.search(rf"^['\"]?{n}['\"]?(?:[\s:]|$)|\bin ['\"]?{n}['\"]?(?:[\s(:;,]|$)", message)
    return safe_name(message if named else f"{name}: {message}", max_chars)


def _escape(c: str) -> str:
    if c in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[c]
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


# -- pieces every surface shares ------------------------------------------------------------------

HIGH_CONFIDENCE_FROM = 0.6  # confidence from here on reads "high"; from UNCERTAIN_BELOW to here, "moderate"


def confidence_word(affect: Affect) -> str:
    """'low' (uncertain), 'moderate' or 'high'."""
    if affect.uncertain:
        return "low"
    if affect.confidence < HIGH_CONFIDENCE_FROM:
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


def describe_runs(timeline: Sequence[Segment], max_runs: int = 4) -> str | None:
    """'neutral 0:00-0:12; angry 0:40-1:05' - the emotion runs of the timeline (merged into at most
    `max_runs` episodes when there are more, see `emotion_episodes`); None when nothing changes."""
    runs = _runs(timeline)
    if len(runs) <= 1:
        return None
    if len(runs) <= max_runs:
        return "; ".join(f"{emo} {format_seconds(s)}-{format_seconds(e)}" for s, e, emo in runs)
    episodes = emotion_episodes(timeline, max_episodes=max_runs, min_seconds=_blip_seconds(timeline))
    return "; ".join(f"{ep.emotion} {format_seconds(ep.start)}-{format_seconds(ep.end)} ({ep.share:.0%} of it)" for ep in episodes)


def describe_timeline(timeline: Sequence[Segment] | None, max_runs: int = 4, max_episodes: int = 6) -> str | None:
    """The sentence on how the reading changes. Up to `max_runs` readings are told as they are; more are
    merged into at most `max_episodes` episodes (brief changes absorbed, see `emotion_episodes`), so the
    sentence stays the same size for a one-hour call as for a one-minute one."""
    if not timeline:
        return None
    runs = _runs(timeline)
    if len(runs) <= 1:
        return None if not runs or runs[0][2] == "uncertain" else f"It stays {runs[0][2]} throughout the speech."
    if len(runs) <= max_runs:
        parts = [f"{emo} {format_seconds(s)}-{format_seconds(e)}" for s, e, emo in runs]
        return f"Over time it changes: {'; '.join(parts)}."
    episodes = emotion_episodes(timeline, max_episodes=max_episodes, min_seconds=_blip_seconds(timeline))
    parts = [f"{ep.emotion} {format_seconds(ep.start)}-{format_seconds(ep.end)} ({ep.share:.0%} of it)" for ep in episodes]
    text = (f"Over time the reading changes {len(runs) - 1} times; merged into {len(episodes)} main "
            f"episode{'s' if len(episodes) != 1 else ''} (brief changes absorbed): {'; '.join(parts)}.")
    top = _peaks(timeline, 2)
    if top:
        text += " Strongest moments: " + "; ".join(_peak_text(seg) for seg in top) + "."
    return text


def describe_speaker(summary: SpeakerSummary) -> str:
    """One sentence on one speaker: when they speak, how much, what their voice expresses and how it moves."""
    a = summary.overall
    word = confidence_word(a)
    reading = f"no clear emotion (most likely {_NOUN[a.emotion]})" if word == "low" else (
        f"mainly {_NOUN[a.emotion]} ({a.probabilities.as_tuple()[EMOTIONS.index(a.emotion)]:.0%}, {word} confidence)")
    turns = "1 turn" if summary.turns == 1 else f"{summary.turns} turns"
    text = (f"{summary.name.capitalize()} (first heard at {format_seconds(summary.first_speech)}, speaks "
            f"{format_seconds(summary.speaking_time)} in {turns}) expresses {reading}")
    return text + (f"; over time: {summary.change}." if summary.change else ".")


def describe(
    overall: Affect,
    *,
    duration: float,
    speech_duration: float,
    timeline: Sequence[Segment] | None,
    speakers: Sequence[SpeakerSummary] | None = None,
) -> str:
    """A short description of the expressed (not felt) affect for an LLM prompt. With `speakers`, one
    sentence per speaker ("speaker 1", "speaker 2", ... in order of first speech) replaces the timeline's."""
    (top, p_top), (second, p_second) = ranked_emotions(overall)[:2]
    word = confidence_word(overall)
    many = bool(speakers) and len(speakers) > 1
    who = f"Taken together, the {len(speakers)} speakers' voices" if many else "The speaker's voice"
    if word == "low":
        lead = (
            f"{who} {'give' if many else 'gives'} no clear emotional signal: the most likely reading is {_NOUN[top]} "
            f"({p_top:.0%}), closely followed by {_NOUN[second]} ({p_second:.0%}); treat this as uncertain."
        )
    else:
        lead = f"{who} mainly {'express' if many else 'expresses'} {_NOUN[top]} ({p_top:.0%})"
        lead += f", with some {_NOUN[second]} ({p_second:.0%})." if p_second >= 0.15 else "."
    sentences = [lead]
    dims = describe_dimensions(overall)
    if dims:
        sentences.append(dims)
    if speakers:
        sentences.extend(describe_speaker(s) for s in speakers)
    else:
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
    for spk in report.speakers or ():
        a = spk.overall
        lines.append(f"  {spk.name}: {format_seconds(spk.speaking_time)} in {spk.turns} turn(s), {spk.share:.0%} of speech;  "
                     f"{a.emotion} (confidence {a.confidence:.2f})" + (f";  {spk.change}" if spk.change else ""))
    if timeline and report.timeline:
        lines.append("  timeline:")
        for seg in report.timeline:
            span = f"{format_seconds(seg.start):>8}-{format_seconds(seg.end):<8}"
            if not seg.speech or seg.affect is None:
                lines.append(f"    {span} (no speech)")
                continue
            a = seg.affect
            dims = f"  {vad_letters(a.dimensions)}" if a.dimensions else ""
            who = "" if seg.speaker is None else f"speaker {seg.speaker}  "
            lines.append(f"    {span} {who}{a.emotion:<10} p {max(a.probabilities.as_tuple()):.2f}  conf {a.confidence:.2f}{dims}")
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
        who = "" if s.speaker is None else f"speaker {s.speaker} "
        lines.append(f"{span} {who}{tone} {s.text}")
    return lines


def transcript_text(transcript: EmotionTranscript, *, heading: str | None = None) -> str:
    """The description, then `heading` (if any), then the transcript lines: what a tool's reader gets first."""
    head = [transcript.report.description, *([heading] if heading else [])]
    return "\n".join(head) + "\n" + "\n".join(transcript_lines(transcript))


def report_summary(report: AffectReport) -> str:
    """One line for comparing recordings: top emotion, confidence, arousal and valence, the three most
    probable emotions, the duration; with speakers, then each speaker's share and emotion. The caller puts
    the (escaped) name in front."""
    o = report.overall
    dims = f", arousal {o.dimensions.arousal:.2f}, valence {o.dimensions.valence:.2f}" if o.dimensions else ""
    line = (f"{o.emotion} (confidence {o.confidence:.2f}{dims}; {probabilities_text(ranked_emotions(o)[:3])}; "
            f"{report.duration:.1f} s)")
    if report.speakers:
        line += "".join(f"; {s.name} ({s.share:.0%} of speech): {affect_tag(s.overall)}" for s in report.speakers)
    return line


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


# -- the compact summary for LLM tool results (MCP text, LangChain content) ----------------------------

SUMMARY_MAX_SEGMENTS = 12  # timeline lines the summary lists by default: segments, or merged episodes
SUMMARY_MAX_CHARS = 4000  # the default summary stays under this (an LLM tool result, not a document)
BLIP_SHARE = 0.01  # an episode under 1 % of the speech time is a blip, absorbed by its neighbours


@dataclass(frozen=True)
class Episode:
    """A stretch of the timeline with one reading: consecutive speech segments with the same reading
    joined (pauses do not split it), shorter episodes absorbed into it."""

    start: float
    end: float
    emotion: str  # the reading with the most speech time in it: an emotion, or "uncertain"
    share: float  # share of the episode's speech time whose own reading is `emotion` (0..1)
    seconds: float  # speech seconds in it (overlapping windows count their overlap twice)
    segments: int  # speech segments merged into it
    confidence: float  # mean confidence of its segments, weighted by duration
    arousal: float | None  # mean arousal / valence, weighted by duration; None without dimensions
    valence: float | None


@dataclass
class _Acc:
    start: float
    end: float
    label: str
    by_label: dict[str, float] = field(default_factory=dict)
    segments: int = 0
    conf: float = 0.0
    arousal: float = 0.0
    valence: float = 0.0
    has_dims: bool = True

    @property
    def seconds(self) -> float:
        return sum(self.by_label.values())

    def add(self, seg: Segment, label: str) -> None:
        w = max(seg.end - seg.start, 1e-9)
        self.start, self.end = min(self.start, seg.start), max(self.end, seg.end)
        self.by_label[label] = self.by_label.get(label, 0.0) + w
        self.segments += 1
        self.conf += w * seg.affect.confidence
        d = seg.affect.dimensions
        self.has_dims = self.has_dims and d is not None
        if d is not None:
            self.arousal += w * d.arousal
            self.valence += w * d.valence

    def absorb(self, other: _Acc) -> None:
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        for k, v in other.by_label.items():
            self.by_label[k] = self.by_label.get(k, 0.0) + v
        self.segments += other.segments
        self.conf += other.conf
        self.arousal += other.arousal
        self.valence += other.valence
        self.has_dims = self.has_dims and other.has_dims
        # the reading with the most time wins; a tie keeps the current one
        self.label = max(self.by_label, key=lambda k: (self.by_label[k], k == self.label))

    def freeze(self) -> Episode:
        total = self.seconds
        return Episode(self.start, self.end, self.label, self.by_label.get(self.label, 0.0) / total, total,
                       self.segments, self.conf / total, self.arousal / total if self.has_dims else None,
                       self.valence / total if self.has_dims else None)


def _label(seg: Segment) -> str:
    return "uncertain" if seg.affect.uncertain else seg.affect.emotion


def _speech(timeline: Sequence[Segment] | None) -> list[Segment]:
    return [s for s in timeline or () if s.speech and s.affect is not None]


def _blip_seconds(timeline: Sequence[Segment]) -> float:
    return BLIP_SHARE * sum(s.end - s.start for s in _speech(timeline))


def emotion_episodes(
    timeline: Sequence[Segment] | None, *, max_episodes: int | None = None, min_seconds: float = 0.0,
) -> list[Episode]:
    """The timeline as episodes: consecutive speech segments with the same reading joined (a low-confidence
    segment reads "uncertain"; non-speech gaps are skipped), then, shortest first, every episode under
    `min_seconds` of speech absorbed by its neighbours (into both when they share a reading, else into
    the longer one), and more while there are over `max_episodes`. An episode's reading is the one with
    the most speech time in it, its `share` how much."""
    eps: list[_Acc] = []
    for seg in _speech(timeline):
        label = _label(seg)
        if not eps or eps[-1].label != label:
            eps.append(_Acc(seg.start, seg.end, label))
        eps[-1].add(seg, label)
    n = len(eps)
    if n <= 1:
        return [e.freeze() for e in eps]
    prev, nxt = list(range(-1, n - 1)), [*range(1, n), -1]
    alive, version, count = [True] * n, [0] * n, n
    heap = [(e.seconds, i, 0) for i, e in enumerate(eps)]
    heapq.heapify(heap)

    def unlink(i: int) -> None:
        nonlocal count
        alive[i], count = False, count - 1
        p, q = prev[i], nxt[i]
        if p != -1:
            nxt[p] = q
        if q != -1:
            prev[q] = p

    def merge(src: int, dst: int) -> None:
        eps[dst].absorb(eps[src])
        unlink(src)

    while heap and count > 1:
        seconds, i, v = heapq.heappop(heap)
        if not alive[i] or v != version[i]:
            continue
        if seconds >= min_seconds and (max_episodes is None or count <= max_episodes):
            break  # the shortest episode left is long enough, and there are few enough
        p, q = prev[i], nxt[i]
        if p != -1 and q != -1 and eps[p].label == eps[q].label:
            merge(i, p)
            merge(q, p)
            dst = p
        elif q == -1 or (p != -1 and eps[p].seconds >= eps[q].seconds):
            merge(i, p)
            dst = p
        else:
            merge(i, q)
            dst = q
        # the absorbing episode's reading may have changed: join neighbours that now read the same
        for side in (prev, nxt):
            while side[dst] != -1 and eps[side[dst]].label == eps[dst].label:
                merge(side[dst], dst)
        version[dst] += 1
        heapq.heappush(heap, (eps[dst].seconds, dst, version[dst]))
    out, i = [], next(k for k in range(n) if alive[k] and prev[k] == -1)
    while i != -1:
        out.append(eps[i].freeze())
        i = nxt[i]
    return out


def _peaks(timeline: Sequence[Segment], k: int) -> list[Segment]:
    """The `k` speech segments with the clearest non-neutral reading (one per emotion), in time order."""
    best: dict[str, Segment] = {}
    for seg in _speech(timeline):
        a = seg.affect
        if a.uncertain or a.emotion == "neutral":
            continue
        if a.emotion not in best or a.confidence > best[a.emotion].affect.confidence:
            best[a.emotion] = seg
    top = sorted(best.values(), key=lambda s: -s.affect.confidence)[:k]
    return sorted(top, key=lambda s: s.start)


def _peak_text(seg: Segment) -> str:
    return f"{seg.affect.emotion} at {format_seconds(seg.start)}-{format_seconds(seg.end)} (confidence {seg.affect.confidence:.2f})"


def _changes(episodes: Sequence[Episode], k: int) -> list[tuple[Episode, Episode]]:
    """The `k` most salient changes between neighbouring episodes (the shorter side longest), in time order."""
    pairs = list(zip(episodes, episodes[1:]))
    top = sorted(pairs, key=lambda ab: -min(ab[0].seconds, ab[1].seconds))[:k]
    return sorted(top, key=lambda ab: ab[1].start)


def _dims_text(arousal: float | None, valence: float | None) -> str:
    return "" if arousal is None else f"; arousal {arousal:.2f}, valence {valence:.2f}"


def _part_lines(speech: Sequence[Segment], duration: float) -> tuple[str, list[str]]:
    """Per-minute lines for up to 10 minutes, else one per tenth: each part's readings by speech time."""
    length = 60.0 if duration <= 600 else duration / 10
    n = max(1, math.ceil(duration / length - 1e-9))
    lines = []
    for i in range(n):
        lo, hi = i * length, min(duration, (i + 1) * length)
        by_label: dict[str, float] = {}
        w_sum = ar = va = 0.0
        dims = True
        for seg in speech:
            w = min(seg.end, hi) - max(seg.start, lo)
            if w <= 0:
                continue
            label = _label(seg)
            by_label[label] = by_label.get(label, 0.0) + w
            w_sum += w
            d = seg.affect.dimensions
            dims = dims and d is not None
            if d is not None:
                ar, va = ar + w * d.arousal, va + w * d.valence
        span = f"  {format_seconds(lo)}-{format_seconds(hi)}"
        if not w_sum:
            lines.append(f"{span} (no speech)")
            continue
        ranked = sorted(by_label.items(), key=lambda kv: -kv[1])[:3]
        mix = ", ".join(f"{label} {v / w_sum:.0%}" for label, v in ranked)
        lines.append(f"{span} {mix}" + (_dims_text(ar / w_sum, va / w_sum) if dims else ""))
    what = "minute" if length == 60.0 else f"tenth ({format_seconds(length)})"
    return what, lines


def report_text(report: AffectReport, *, max_segments: int | None = None, merged_note: str | None = None) -> str:
    """The report as an LLM tool result gives it: the description, then the timeline compact - each
    speech segment when there are at most `max_segments`, else at most `max_segments` merged episodes
    (blips under 1 % of the speech absorbed), the main changes and strongest moments, and per-part
    lines for recordings over two minutes - then the notes. The full timeline stays in the report.

    `max_segments` None: `SUMMARY_MAX_SEGMENTS`, and the text is kept under `SUMMARY_MAX_CHARS` (per-part
    lines dropped, then fewer episodes) whatever the length of the recording; a number is the caller's
    explicit choice and is not trimmed. `merged_note`: a last line for when the timeline was merged
    (where the caller can get all of it)."""
    if max_segments is not None:
        return "\n".join(_summary_lines(report, max_segments, parts=True, merged_note=merged_note))
    n = SUMMARY_MAX_SEGMENTS
    text = "\n".join(_summary_lines(report, n, parts=True, merged_note=merged_note))
    while len(text) >= SUMMARY_MAX_CHARS and n >= 1:
        text = "\n".join(_summary_lines(report, n, parts=False, merged_note=merged_note))
        n -= 2
    return text


def _summary_lines(report: AffectReport, max_segments: int, *, parts: bool, merged_note: str | None) -> list[str]:
    lines = [report.description]
    speech = _speech(report.timeline)
    if len(speech) > 1 and len(speech) <= max_segments:
        lines.append(f"Timeline ({len(speech)} speech segments):")
        for seg in speech:
            a = seg.affect
            dims = f", {vad_letters(a.dimensions)}" if a.dimensions else ""
            lines.append(f"  {format_seconds(seg.start)}-{format_seconds(seg.end)} {affect_tag(a)}{dims}")
    elif len(speech) > max_segments:
        episodes = emotion_episodes(report.timeline, max_episodes=max(1, max_segments), min_seconds=_blip_seconds(speech))
        lines.append(f"Episodes ({len(episodes)}, merged from {len(speech)} speech segments; brief changes absorbed; "
                     "% = share of its speech with that reading):")
        for ep in episodes:
            lines.append(f"  {format_seconds(ep.start)}-{format_seconds(ep.end)} {ep.emotion} {ep.share:.0%}, "
                         f"conf {ep.confidence:.2f}" + _dims_text(ep.arousal, ep.valence))
        changes = _changes(episodes, 3)
        if changes:
            lines.append("Main changes: " + "; ".join(f"at {format_seconds(b.start)} {a.emotion} -> {b.emotion}" for a, b in changes))
        peaks = _peaks(speech, 3)
        if peaks:
            lines.append("Strongest moments: " + "; ".join(_peak_text(seg) for seg in peaks))
        if parts and report.duration > 120:
            what, part_lines = _part_lines(speech, report.duration)
            lines.append(f"By {what}:")
            lines += part_lines
    lines += [f"Note: {w}" for w in report.warnings]
    if len(speech) > max_segments and merged_note:
        lines.append(merged_note)
    return lines
