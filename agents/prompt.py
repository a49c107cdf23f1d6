"""The heart of the agent: rendering what was said and how into a prompt a text LLM can use.

A prompt is a system instruction (what the affect block means) plus a user message (the affect block,
the transcript annotated segment by segment, optional context, the question). Three affect modes
for ablations:
- "none": the transcript only (a plain ASR + LLM cascade);
- "predicted": the transcript with the SER model's affect (what ser-tool adds);
- "oracle": the transcript with emotion labels given by a dataset (an upper bound for the cascade).

When the words are unknown (no transcript, no speech recogniser) every mode still answers: the prompt
says so and carries what there is (the affect in 'predicted' and 'oracle', nothing but the question in
'none'). When the words do not show how the affect moved over time (no words, or fewer timed segments
than stretches of affect), the affect block adds a compact timeline.

Everything is a plain `str.format` template in `PromptTemplate`: read it, copy it, override any part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ser_tool import EMOTIONS, Affect, AffectReport, EmotionTranscript, Transcript, TranscriptSegment

__all__ = [
    "AFFECT_MODES", "DEFAULT_TEMPLATE", "AffectMode", "OracleAffect", "OracleSegment", "PromptTemplate",
    "RenderedPrompt", "Stretch", "affect_stretches", "render_affect_block", "render_prompt", "words_known",
]

AffectMode = Literal["none", "predicted", "oracle"]
AFFECT_MODES: tuple[str, ...] = ("none", "predicted", "oracle")
UNCERTAIN_BELOW = 0.3


class OracleSegment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float = Field(ge=0.0, description="Start in seconds.")
    end: float = Field(ge=0.0, description="End in seconds.")
    emotion: str = Field(description="The annotated emotion of this stretch.")


class OracleAffect(BaseModel):
    """Emotion labels given by a dataset (human annotation) for the 'oracle' mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    emotion: str = Field(description="The annotated emotion of the whole recording (any label set).")
    valence: float | None = Field(default=None, ge=0.0, le=1.0, description="Annotated valence, 0..1, if any.")
    arousal: float | None = Field(default=None, ge=0.0, le=1.0, description="Annotated arousal, 0..1, if any.")
    dominance: float | None = Field(default=None, ge=0.0, le=1.0, description="Annotated dominance, 0..1, if any.")
    segments: list[OracleSegment] = Field(default_factory=list, description="Annotated emotion per stretch, if any.")


_PREDICTED_SCALES = """\
- emotion: what the voice expresses (neutral, happy, sad, angry, fearful, disgusted, surprised). It is \
expressed in the tone of voice - not necessarily felt - and it ignores the meaning of the words.
- confidence 0..1: how clearly that emotion stands out; below 0.3 it is only a guess ("uncertain").
- valence 0 negative .. 1 positive; arousal 0 calm .. 1 energetic; dominance 0 submissive .. 1 assertive."""

AFFECT_HELP_PREDICTED = f"""\
Besides the words you get an affect block: HOW the words were said, as heard by a speech-emotion model.
{_PREDICTED_SCALES}
The model can be wrong. Use the affect where the question depends on how something was said, weigh it \
against the words, and when voice and words disagree (e.g. "I'm fine" said sadly), say so."""

AFFECT_HELP_ORACLE = """\
Besides the words you get an affect block: HOW the words were said, as annotated by people who listened \
to the recording (emotion labels; valence, arousal and dominance 0..1 when given). Treat the labels as \
reliable and use them where the question depends on how something was said."""

AFFECT_HELP_NONE = "You only get the words; you do not know how they were said."

# When the words are unknown (no transcript and no speech recogniser), the prompt says so and each mode
# answers from what it has.
AFFECT_HELP_PREDICTED_NO_WORDS = f"""\
You get an affect block: HOW the speaker sounded, as heard by a speech-emotion model.
{_PREDICTED_SCALES}
The model can be wrong. Use the affect where the question depends on how something was said, and give \
your best answer from it."""

AFFECT_HELP_ORACLE_NO_WORDS = """\
You get an affect block: HOW the speaker sounded, as annotated by people who listened to the recording \
(emotion labels; valence, arousal and dominance 0..1 when given). Treat the labels as reliable and use \
them where the question depends on how something was said."""

AFFECT_HELP_NONE_NO_WORDS = ("You do not know how it was said either: answer from the question and its context "
                             "alone, with your best guess.")


@dataclass(frozen=True)
class PromptTemplate:
    """The prompt's text. Fields are `str.format` templates; override any of them (dataclasses.replace)."""

    system: str = (
        "You answer questions about a spoken recording. {source}\n"
        "{affect_help}\n"
        "Answer the question directly and concisely."
    )
    source: str = "You cannot hear it: you get its transcript."
    source_no_words: str = "You cannot hear it, and its words were not transcribed: what was said is unknown."
    user: str = "{context}{affect_block}\n\nQuestion: {question}"
    context: str = "Context: {context}\n\n"
    affect_help: dict[str, str] = field(default_factory=lambda: {
        "none": AFFECT_HELP_NONE, "predicted": AFFECT_HELP_PREDICTED, "oracle": AFFECT_HELP_ORACLE,
    })
    affect_help_no_words: dict[str, str] = field(default_factory=lambda: {
        "none": AFFECT_HELP_NONE_NO_WORDS, "predicted": AFFECT_HELP_PREDICTED_NO_WORDS, "oracle": AFFECT_HELP_ORACLE_NO_WORDS,
    })
    no_transcript: str = "(no transcript: the words are unknown)"


DEFAULT_TEMPLATE = PromptTemplate()


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str

    def as_text(self) -> str:
        return f"[system]\n{self.system}\n\n[user]\n{self.user}"


def render_prompt(
    question: str,
    *,
    mode: AffectMode = "predicted",
    transcript: EmotionTranscript | Transcript | str | None = None,
    report: AffectReport | None = None,
    oracle: OracleAffect | None = None,
    context: str | None = None,
    template: PromptTemplate = DEFAULT_TEMPLATE,
) -> RenderedPrompt:
    """The system instruction and the user message for one question about one recording."""
    if mode not in AFFECT_MODES:
        raise ValueError(f"affect mode must be one of {', '.join(AFFECT_MODES)}, got {mode!r}")
    block = render_affect_block(mode=mode, transcript=transcript, report=report, oracle=oracle, template=template)
    known = words_known(transcript)
    helps = template.affect_help if known else template.affect_help_no_words
    system = template.system.format(source=template.source if known else template.source_no_words, affect_help=helps[mode])
    ctx = template.context.format(context=context.strip()) if context and context.strip() else ""
    user = template.user.format(context=ctx, affect_block=block, question=question.strip())
    return RenderedPrompt(system=system, user=user)


def render_affect_block(
    *,
    mode: AffectMode,
    transcript: EmotionTranscript | Transcript | str | None,
    report: AffectReport | None = None,
    oracle: OracleAffect | None = None,
    template: PromptTemplate = DEFAULT_TEMPLATE,
) -> str:
    """Overall affect (unless mode is 'none') and the transcript with per-segment annotations."""
    if isinstance(transcript, EmotionTranscript) and report is None:
        report = transcript.report
    lines: list[str] = []
    if mode == "predicted":
        if report is None:
            raise ValueError("mode 'predicted' needs an affect report")
        lines += ["Affect of the whole recording (speech-emotion model):", _overall_predicted(report.overall)]
        if report.warnings:
            lines += [f"Note: {w}" for w in report.warnings if "cannot detect" not in w and "no valence" not in w]
        stretches = affect_stretches(report)
        if len(stretches) >= 2 and len(stretches) > _timed_segments(transcript):  # the words do not show how it moved
            lines += ["", "Affect over time (speech-emotion model):"]
            lines += [f"{_span(s.start, s.end)} {_stretch_tag(s.affect)}" for s in stretches]
        lines.append("")
    elif mode == "oracle":
        if oracle is None:
            raise ValueError("mode 'oracle' needs the dataset's labels (OracleAffect)")
        lines += ["Affect of the whole recording (human annotation):", _overall_oracle(oracle)]
        if oracle.segments and len(oracle.segments) > _timed_segments(transcript):
            lines += ["", "Affect over time (human annotation):"]
            lines += [f"{_span(o.start, o.end)} {o.emotion}" for o in oracle.segments]
        lines.append("")
    annotate = mode != "none" and words_known(transcript)
    lines.append("Transcript" + (" with the affect of each segment:" if annotate else ":"))
    lines += _transcript_lines(transcript, mode, oracle, template) if transcript is not None else [template.no_transcript]
    return "\n".join(lines)


def words_known(transcript: EmotionTranscript | Transcript | str | None) -> bool:
    """True when the prompt carries what was said (a non-empty transcript)."""
    if transcript is None:
        return False
    if isinstance(transcript, str):
        return bool(transcript.strip())
    return any(s.text.strip() for s in transcript.segments)


def _timed_segments(transcript: EmotionTranscript | Transcript | str | None) -> int:
    return 0 if transcript is None or isinstance(transcript, str) else len(transcript.segments)


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


def _stretch_tag(a: Affect) -> str:
    if a.confidence < UNCERTAIN_BELOW:
        return f"uncertain, maybe {a.emotion}, conf {a.confidence:.2f}"
    return f"{a.emotion}, conf {a.confidence:.2f}"


def _overall_predicted(a: Affect) -> str:
    ranked = sorted(zip(EMOTIONS, a.probabilities.as_tuple()), key=lambda kv: -kv[1])
    others = ", ".join(f"{e} {p:.2f}" for e, p in ranked[1:3])
    head = f"{a.emotion} (uncertain)" if a.confidence < UNCERTAIN_BELOW else a.emotion
    text = f"- expressed emotion: {head}, confidence {a.confidence:.2f}; next most likely: {others}"
    if a.dimensions:
        d = a.dimensions
        text += f"\n- valence {d.valence:.2f}, arousal {d.arousal:.2f}, dominance {d.dominance:.2f}"
    return text


def _overall_oracle(o: OracleAffect) -> str:
    text = f"- emotion: {o.emotion}"
    dims = [f"{k} {v:.2f}" for k, v in (("valence", o.valence), ("arousal", o.arousal), ("dominance", o.dominance)) if v is not None]
    return text + (f"\n- {', '.join(dims)}" if dims else "")


def _span(start: float, end: float) -> str:
    return f"[{start:.1f}-{end:.1f}s]"


def _segment_tag(a: Affect | None) -> str:
    if a is None:
        return "(no voice analysed)"
    dims = f", V {a.dimensions.valence:.2f} A {a.dimensions.arousal:.2f} D {a.dimensions.dominance:.2f}" if a.dimensions else ""
    if a.confidence < UNCERTAIN_BELOW:
        return f"(uncertain, maybe {a.emotion}, conf {a.confidence:.2f}{dims})"
    return f"({a.emotion}, conf {a.confidence:.2f}{dims})"


def _transcript_lines(transcript: EmotionTranscript | Transcript | str, mode: str, oracle: OracleAffect | None,
                      template: PromptTemplate) -> list[str]:
    if isinstance(transcript, str):
        segments: Sequence = [TranscriptSegment(start=0.0, end=0.0, text=transcript.strip())] if transcript.strip() else []
        timed = False
    else:
        segments, timed = transcript.segments, True
    if not segments:
        return [template.no_transcript]
    out = []
    for s in segments:
        span = _span(s.start, s.end) + " " if timed else ""
        if mode == "predicted" and isinstance(transcript, EmotionTranscript):
            out.append(f"{span}{_segment_tag(s.affect)} {s.text}")
        elif mode == "oracle" and oracle is not None and oracle.segments and timed:
            label = _oracle_label(s.start, s.end, oracle.segments)
            out.append(f"{span}({label or 'no label'}) {s.text}")
        else:
            out.append(f"{span}{s.text}")
    return out


def _oracle_label(start: float, end: float, segments: Sequence[OracleSegment]) -> str | None:
    """The annotated emotion that overlaps [start, end] the most."""
    best, best_overlap = None, 0.0
    for o in segments:
        overlap = min(end, o.end) - max(start, o.start)
        if overlap > best_overlap:
            best, best_overlap = o.emotion, overlap
    return best
