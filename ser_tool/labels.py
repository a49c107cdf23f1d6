"""The label set every surface shares, and the mapping of foreign label names onto it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# MERaLiON-SER-v1 logit index order. Every probability vector in this package uses it.
EMOTIONS: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
DIMENSIONS: tuple[str, ...] = ("valence", "arousal", "dominance")

# Spellings seen in public checkpoints and corpora (IEMOCAP/SUPERB abbreviations, emotion2vec,
# RAVDESS, CREMA-D, MELD, MERaLiON's capitalised names). "calm" counts as neutral, as in
# RAVDESS-based training and evaluation. Everything not listed here is unmapped.
LABEL_ALIASES: Mapping[str, str] = {
    **{e: e for e in EMOTIONS},
    "neu": "neutral", "calm": "neutral", "neutrality": "neutral",
    "hap": "happy", "happiness": "happy", "joy": "happy", "joyful": "happy", "exc": "happy",
    "sadness": "sad",
    "ang": "angry", "anger": "angry", "angriness": "angry",
    "fea": "fearful", "fear": "fearful", "fearfulness": "fearful", "afraid": "fearful",
    "dis": "disgusted", "disgust": "disgusted",
    "sur": "surprised", "surprise": "surprised", "sup": "surprised",
}


def canonical_emotion(label: str, overrides: Mapping[str, str | None] | None = None) -> str | None:
    """Map one foreign label onto EMOTIONS, or None when it has no counterpart.

    `overrides` wins over the built-in aliases; a value of None drops that label explicitly.
    Emotion2vec-style names such as "生气/angry" are matched on their last "/" part.
    """
    key = label.strip()
    if overrides:
        lowered = {k.strip().lower(): v for k, v in overrides.items()}
        if key.lower() in lowered:
            target = lowered[key.lower()]
            if target is not None and target not in EMOTIONS:
                raise ValueError(f"label map sends {label!r} to {target!r}, which is not one of {EMOTIONS}")
            return target
    norm = key.lower().rsplit("/", 1)[-1].strip()
    return LABEL_ALIASES.get(norm)


def label_index_map(
    labels: Iterable[str], overrides: Mapping[str, str | None] | None = None
) -> list[int | None]:
    """For each model label, the index in EMOTIONS it maps to (None = unmapped)."""
    out: list[int | None] = []
    for label in labels:
        target = canonical_emotion(label, overrides)
        out.append(None if target is None else EMOTIONS.index(target))
    return out
