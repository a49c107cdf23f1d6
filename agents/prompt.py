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
The affect pieces inside the block (overall affect, stretches, segment tags) are rendered by
ser_tool.describe, the one home of report -> text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ser_tool import Affect, AffectReport, EmotionTranscript, Transcript, TranscriptSegment
from ser_tool.describe import UNCERTAIN_BELOW, Stretch, affect_lines, affect_stretches, affect_tag, span_text, stretch_lines

__all__ = [
    "AFFECT_MODES", "DEFAULT_TEMPLATE", "AffectMode", "OracleAffect", "OracleSegment", "PromptTemplate",
    "RenderedPrompt", "Stretch", "affect_stretches", "render_affect_block", "render_prompt", "words_known",
]

AffectMode = Literal["none", "predicted", "oracle"]
AFFECT_MODES: tuple[str, ...] = ("none", "predicted", "oracle")


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


_PREDICTED_SCALES = f"""\
- emotion: what the voice expresses (neutral, happy, sad, angry, fearful, disgusted, surprised). It is \
expressed in the tone of voice - not necessarily felt - and it ignores the meaning of the words.
- confidence 0..1: how clearly that emotion stands out; below {UNCERTAIN_BELOW} it is only a guess ("uncertain").
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
        lines += ["Affect of the whole recording (speech-emotion model):", affect_lines(report.overall)]
        lines += _speaker_lines(report)
        if report.warnings:
            lines += [f"Note: {w}" for w in report.warnings if "cannot detect" not in w and "no valence" not in w]
        stretches = affect_stretches(report)
        if len(stretches) >= 2 and len(stretches) > _timed_segments(transcript):  # the words do not show how it moved
            lines += ["", "Affect over time (speech-emotion model):"]
            lines += stretch_lines(stretches)
        lines.append("")
    elif mode == "oracle":
        if oracle is None:
            raise ValueError("mode 'oracle' needs the dataset's labels (OracleAffect)")
        lines += ["Affect of the whole recording (human annotation):", _overall_oracle(oracle)]
        if oracle.segments and len(oracle.segments) > _timed_segments(transcript):
            lines += ["", "Affect over time (human annotation):"]
            lines += [f"{span_text(o.start, o.end)} {o.emotion}" for o in oracle.segments]
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


def _speaker_lines(report: AffectReport) -> list[str]:
    """One line per attributed speaker (only when the report has speakers)."""
    out = []
    for spk in report.speakers or ():
        a = spk.overall
        head = f"{a.emotion} (uncertain)" if a.uncertain else a.emotion
        line = (f"- {spk.name} ({spk.speaking_time:.1f}s of speech, {spk.turns} turns, first at {spk.first_speech:.1f}s): "
                f"{head}, confidence {a.confidence:.2f}")
        out.append(line + (f"; over time: {spk.change}" if spk.change else ""))
    return out


def _overall_oracle(o: OracleAffect) -> str:
    text = f"- emotion: {o.emotion}"
    dims = [f"{k} {v:.2f}" for k, v in (("valence", o.valence), ("arousal", o.arousal), ("dominance", o.dominance)) if v is not None]
    return text + (f"\n- {', '.join(dims)}" if dims else "")


def _segment_tag(a: Affect | None) -> str:
    return "(no voice analysed)" if a is None else f"({affect_tag(a, dimensions=True)})"


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
        span = span_text(s.start, s.end) + " " if timed else ""
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
