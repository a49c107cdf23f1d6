"""Dimensional targets for corpora that only carry categories.

The corpora label emotions, not valence/arousal/dominance. Each clip's V/A/D target is the anchor of
its emotion word in the NRC VAD Lexicon (Mohammad 2018, "Obtaining Reliable Human Ratings of Valence,
Arousal, and Dominance for 20,000 English Words", ACL 2018; scores on 0..1), moved towards the
extremes when the corpus marks the clip as strongly expressed. The dimensional head therefore learns
category-derived targets, not human V/A/D ratings of the audio: the model card says so.
"""

from __future__ import annotations

from ser_tool.labels import EMOTIONS

# NRC VAD Lexicon v1 entries (valence, arousal, dominance) for the words neutral, happy, sad, angry,
# fear, disgusted, surprised. "fearful" uses the entry for "fear".
VAD_ANCHORS: dict[str, tuple[float, float, float]] = {
    "neutral": (0.469, 0.184, 0.357),
    "happy": (1.000, 0.735, 0.772),
    "sad": (0.225, 0.333, 0.149),
    "angry": (0.122, 0.830, 0.604),
    "fearful": (0.073, 0.840, 0.293),
    "disgusted": (0.051, 0.773, 0.274),
    "surprised": (0.784, 0.855, 0.539),
}
assert tuple(VAD_ANCHORS) == EMOTIONS

STRONG_INTENSITY = {"strong", "high"}


def vad_target(emotion: str, intensity: str | None = None) -> tuple[float, float, float]:
    """The V/A/D target of a clip, each in 0..1.

    Strongly expressed non-neutral clips (intensity 'strong'/'high') are pushed outwards:
    valence 20 % further from 0.5, arousal 20 % of the way to 1, dominance 10 % further from 0.5.
    """
    v, a, d = VAD_ANCHORS[emotion]
    if intensity and intensity.strip().lower() in STRONG_INTENSITY and emotion != "neutral":
        v = 0.5 + 1.2 * (v - 0.5)
        a = a + 0.2 * (1.0 - a)
        d = 0.5 + 1.1 * (d - 0.5)
    return tuple(min(1.0, max(0.0, x)) for x in (v, a, d))
