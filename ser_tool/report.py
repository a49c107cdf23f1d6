"""The affect report: the one result type every surface shares (CLI, MCP, LangChain, agents, evals);
and the emotion-aware transcript, which carries one.

Field names and descriptions are user-facing API: they become the JSON schema that MCP clients
publish and that LLMs read. Change them deliberately.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ser_tool.labels import DIMENSIONS, EMOTIONS

SCHEMA_VERSION = "1.0"
UNCERTAIN_BELOW = 0.3  # confidence under this: the top emotion is a guess (`Affect.uncertain`)


class EmotionProbabilities(BaseModel):
    """Probability of each expressed emotion. Always these 7 keys in this order; they sum to 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    neutral: float = Field(ge=0.0, le=1.0, description="Probability that the voice expresses no particular emotion.")
    happy: float = Field(ge=0.0, le=1.0, description="Probability of expressed happiness / joy.")
    sad: float = Field(ge=0.0, le=1.0, description="Probability of expressed sadness.")
    angry: float = Field(ge=0.0, le=1.0, description="Probability of expressed anger.")
    fearful: float = Field(ge=0.0, le=1.0, description="Probability of expressed fear / anxiety.")
    disgusted: float = Field(ge=0.0, le=1.0, description="Probability of expressed disgust.")
    surprised: float = Field(ge=0.0, le=1.0, description="Probability of expressed surprise.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> EmotionProbabilities:
        total = sum(self.as_tuple())
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"emotion probabilities must sum to 1, got {total:.4f}")
        return self

    def as_tuple(self) -> tuple[float, ...]:
        return tuple(getattr(self, e) for e in EMOTIONS)

    @classmethod
    def from_sequence(cls, values) -> EmotionProbabilities:
        vals = [float(v) for v in values]
        if len(vals) != len(EMOTIONS):
            raise ValueError(f"expected {len(EMOTIONS)} probabilities, got {len(vals)}")
        total = sum(vals)
        vals = [v / total for v in vals] if total > 0 else vals
        return cls(**{e: round(v, 6) for e, v in zip(EMOTIONS, vals)})


class Dimensions(BaseModel):
    """Continuous affect dimensions, each on 0..1 (0.5 is the midpoint, not 'unknown')."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    valence: float = Field(ge=0.0, le=1.0, description="How positive the expressed affect is: 0 = very negative, 0.5 = neutral, 1 = very positive.")
    arousal: float = Field(ge=0.0, le=1.0, description="How activated / energetic the voice is: 0 = very calm or sleepy, 1 = very active or excited.")
    dominance: float = Field(ge=0.0, le=1.0, description="How in-control / assertive the voice sounds: 0 = weak or submissive, 1 = strong or dominant.")

    @classmethod
    def from_sequence(cls, values) -> Dimensions:
        vals = [min(1.0, max(0.0, float(v))) for v in values]
        if len(vals) != len(DIMENSIONS):
            raise ValueError(f"expected {len(DIMENSIONS)} dimensions (valence, arousal, dominance), got {len(vals)}")
        return cls(**{d: round(v, 6) for d, v in zip(DIMENSIONS, vals)})


Emotion = Literal["neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"]


class Affect(BaseModel):
    """What the voice expresses over one stretch of audio."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    emotion: Emotion = Field(description="The most probable expressed emotion.")
    confidence: float = Field(
        ge=0.0, le=1.0,
        description=(
            "How clearly the top emotion stands out, 0..1: (p_top - 1/K) / (1 - 1/K) with K the number of "
            "emotions the model can output. 0 = the distribution is flat (a guess), 1 = all probability on "
            f"one emotion. Below about {UNCERTAIN_BELOW}, treat the emotion as uncertain."
        ),
    )
    probabilities: EmotionProbabilities = Field(description="Probability of each of the 7 emotions, summing to 1.")
    dimensions: Dimensions | None = Field(
        default=None, description="Valence, arousal and dominance on 0..1, or null when the model has no dimensional head."
    )
    unmapped_probability: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description=(
            "Share of the model's raw probability that fell on labels outside the 7 emotions (e.g. 'other'); "
            "it was removed and the rest renormalised. Null when the model's labels all map."
        ),
    )

    @property
    def uncertain(self) -> bool:
        """True when no emotion clearly stands out (confidence below `UNCERTAIN_BELOW`): the top one is a guess."""
        return self.confidence < UNCERTAIN_BELOW


class Segment(BaseModel):
    """One stretch of the recording on the timeline: speech with its affect, or a gap without speech."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float = Field(ge=0.0, description="Start time in seconds from the beginning of the recording.")
    end: float = Field(ge=0.0, description="End time in seconds from the beginning of the recording.")
    speech: bool = Field(description="True if speech was detected here; false for silence, noise or music without speech.")
    affect: Affect | None = Field(default=None, description="The expressed affect in this segment; null when speech is false.")
    speaker: int | None = Field(
        default=None, ge=1, exclude_if=lambda v: v is None,
        description=(
            "Who speaks in this segment: 1 = speaker 1, 2 = speaker 2, ... numbered in order of first speech "
            "(see `speakers`). Present only on speech segments, and only when speaker attribution was asked for."
        ),
    )


class SpeakerSummary(BaseModel):
    """One voice in the recording (speaker attribution) and the affect it expresses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    speaker: int = Field(ge=1, description="Speaker number: 1, 2, ... in order of first speech; matches `speaker` on timeline segments.")
    name: str = Field(description="How the description names this speaker: 'speaker 1', 'speaker 2', ...")
    first_speech: float = Field(ge=0.0, description="Seconds from the beginning of the recording at which this speaker first speaks.")
    speaking_time: float = Field(ge=0.0, description="Seconds of speech attributed to this speaker.")
    share: float = Field(ge=0.0, le=1.0, description="This speaker's share of all detected speech, 0..1.")
    turns: int = Field(ge=1, description="Number of turns: stretches of this speaker's speech not interrupted by another speaker.")
    overall: Affect = Field(
        description="Affect of this speaker's speech: its segments' probabilities and dimensions averaged, weighted by duration."
    )
    change: str | None = Field(
        default=None,
        description=(
            "How this speaker's expressed emotion moves over time, in words (e.g. 'neutral 0:00-0:12; angry "
            "0:40-1:05'); null when it stays the same throughout or the speaker has a single segment."
        ),
    )


class AffectReport(BaseModel):
    """How something was said: the emotion a speaker's voice expresses in one recording.

    Scores describe emotion as *expressed* in the voice (prosody, tone), not what the speaker actually
    feels, and they ignore the meaning of the words.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: str = Field(default=SCHEMA_VERSION, description="Version of this report format.")
    source: str = Field(description="What was analysed: a file name, or '<bytes>' / '<array>' for in-memory audio.")
    duration: float = Field(ge=0.0, description="Length of the recording in seconds.")
    speech_duration: float = Field(ge=0.0, description="Seconds of the recording in which speech was detected.")
    sample_rate: int = Field(description="Sample rate (Hz) the audio was converted to before analysis.")
    backend: str = Field(description="Which model family produced the scores: 'voice', 'embedded', 'meralion' or 'hf'.")
    model_id: str = Field(description="Identifier or path of the model that produced the scores.")
    emotions_supported: list[Emotion] = Field(
        description="The emotions this model can output; the others always have probability 0."
    )
    overall: Affect = Field(
        description=(
            "Affect of the whole recording: the speech segments' probabilities and dimensions averaged, each "
            "segment weighted by its duration; the top emotion and confidence are computed from that average."
        )
    )
    timeline: list[Segment] | None = Field(
        default=None,
        description=(
            "Segments in time order covering the recording, speech and non-speech; present when the recording "
            "is longer than one analysis window (or when asked for). Null otherwise."
        ),
    )
    speakers: list[SpeakerSummary] | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description=(
            "Per-speaker summary, in order of first speech; present only when speaker attribution was asked for "
            "(then every speech segment of the timeline carries its `speaker`). Speakers are told apart by voice "
            "alone (no names); overlapping speech is attributed to one speaker."
        ),
    )
    window: float = Field(description="Analysis window length in seconds used to cut speech into segments.")
    hop: float = Field(description="Step between the starts of consecutive analysis windows in seconds (the step used: equal to window means no overlap, shorter means the windows overlap).")
    description: str = Field(
        description="A short plain-English summary for an LLM prompt: dominant expressed emotion, changes over time, certainty."
    )
    warnings: list[str] = Field(default_factory=list, description="Anything the reader should know about the reliability of this report.")


class SpokenSegment(BaseModel):
    """One transcript segment with the affect the voice expresses while it is spoken."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float = Field(ge=0.0, description="Start time in seconds from the beginning of the recording.")
    end: float = Field(ge=0.0, description="End time in seconds from the beginning of the recording.")
    text: str = Field(description="The words spoken in this segment.")
    affect: Affect | None = Field(
        default=None,
        description="Expressed emotion, confidence and valence/arousal/dominance over this segment (the overlapping speech "
                    "windows, weighted by overlap); null when no analysed speech overlaps it.",
    )
    speech_coverage: float = Field(
        ge=0.0, le=1.0, description="Share of this segment's time covered by analysed speech windows (0..1)."
    )
    speaker: int | None = Field(
        default=None, ge=1, exclude_if=lambda v: v is None,
        description=(
            "Who speaks these words: the speaker (1, 2, ... as in the report's `speakers`) whose speech overlaps "
            "this segment longest. Present only when speaker attribution was asked for and speech overlaps it."
        ),
    )


class EmotionTranscript(BaseModel):
    """What was said and how: the transcript, segment by segment, with the expressed emotion of each.

    Emotion describes the tone of voice (expressed, not felt), not the meaning of the words.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="What was analysed (file name, or '<bytes>' / '<array>').")
    duration: float = Field(ge=0.0, description="Length of the recording in seconds.")
    text: str = Field(description="The whole transcript.")
    language: str | None = Field(default=None, description="Language code when known.")
    asr_model: str = Field(description="Which speech recogniser produced the words ('given' for a transcript passed in).")
    segments: list[SpokenSegment] = Field(description="Transcript segments in time order, each with its expressed affect.")
    report: AffectReport = Field(description="The full affect report of the recording (overall affect, timeline, description).")


def report_json_schema() -> dict:
    """The JSON schema of AffectReport (what `ser schema` prints and MCP publishes)."""
    return AffectReport.model_json_schema()
