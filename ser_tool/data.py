"""Labelled speech corpora: the manifest format, label mapping, speaker-independent splits and the
valence/arousal/dominance targets derived from categories. Shared by training (`ser train`) and the
evaluations (`ser-eval`), so both agree on which speakers are held out.

A corpus folder holds `manifest.csv` (columns: path, corpus, language, speaker, gender, label,
original_label, intensity, text, duration_s) and the audio files it names. This is the format of
../shared/data and the format users bring their own labelled audio in.

Dimensional targets: the corpora label emotions, not valence/arousal/dominance. Each clip's V/A/D
target is the anchor of its emotion word in the NRC VAD Lexicon (Mohammad 2018, "Obtaining Reliable
Human Ratings of Valence, Arousal, and Dominance for 20,000 English Words", ACL 2018; scores on 0..1),
moved towards the extremes when the corpus marks the clip as strongly expressed. The dimensional head
therefore learns category-derived targets, not human V/A/D ratings of the audio: the model card says so.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ser_tool.errors import ConfigError
from ser_tool.labels import EMOTIONS, canonical_emotion

__all__ = ["HIGH_AROUSAL", "LEVELS", "LEVEL_AROUSAL", "LEVEL_OF", "SPLITS", "VAD_ANCHORS", "Clip", "Corpus", "LevelClip", "read_corpus",
           "read_levels", "read_manifest", "split_by_speaker", "vad_target"]

SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("path", "label")


@dataclass(frozen=True)
class Clip:
    path: Path
    corpus: str
    label: str  # one of EMOTIONS
    speaker: str = ""  # "" = unknown: such clips can only go to the training split
    language: str = ""
    gender: str = ""
    intensity: str = ""
    original_label: str = ""
    dimensions: tuple[float, float, float] | None = None  # human V/A/D ratings on 0..1, when the manifest has them


@dataclass
class Corpus:
    name: str
    clips: list[Clip]
    dropped: Counter = field(default_factory=Counter)  # manifest label -> clips dropped (no emotion counterpart)


def read_manifest(folder: str | Path, required: Sequence[str] = REQUIRED_COLUMNS) -> list[dict[str, str]]:
    """The rows of `folder/manifest.csv`, which must have the `required` columns (ConfigError naming them)."""
    folder = Path(folder)
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise ConfigError(f"{folder} has no manifest.csv; a corpus folder needs one with at least the columns {', '.join(required)}")
    with manifest.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{manifest} lacks the column(s) {', '.join(missing)}")
        return list(reader)


def read_corpus(folder: str | Path) -> Corpus:
    """Read `folder/manifest.csv`; labels are mapped onto EMOTIONS (calm -> neutral), others dropped."""
    folder = Path(folder)
    manifest = folder / "manifest.csv"
    rows = read_manifest(folder)
    name = (rows[0].get("corpus") if rows else None) or folder.name
    clips, dropped = [], Counter()
    for row in rows:
        label = canonical_emotion(row["label"])
        if label is None:
            dropped[row["label"]] += 1
            continue
        clips.append(Clip(
            path=folder / row["path"], corpus=row.get("corpus") or name, label=label,
            speaker=(row.get("speaker") or "").strip(), language=row.get("language") or "",
            gender=row.get("gender") or "", intensity=row.get("intensity") or "",
            original_label=row.get("original_label") or row["label"],
            dimensions=_dimensions(row, manifest),
        ))
    return Corpus(name, clips, dropped)


def split_by_speaker(clips: list[Clip], test_fraction: float = 0.25, dev_fraction: float = 0.1) -> dict[str, list[Clip]]:
    """Speaker-independent train/dev/test split, stratified by corpus.

    Within each corpus, speakers are sorted by id; the last `test_fraction` of them are test, the
    `dev_fraction` before those dev, the rest train (for RAVDESS: actors 19-24 test, 17-18 dev - the
    usual split). The rule is deterministic, so training and evaluation agree on it without sharing
    files. A speaker id that appears in several corpora (RAVDESS speech and song) is placed once, by
    the first corpus in name order, and stays on that side everywhere. Clips without a speaker id go
    to train.
    """
    if not (0 <= test_fraction < 1 and 0 <= dev_fraction < 1 and test_fraction + dev_fraction < 1):
        raise ConfigError("test and dev fractions must be in [0, 1) and sum to less than 1")
    side: dict[str, str] = {}
    by_corpus: dict[str, set[str]] = {}
    for c in clips:
        if c.speaker:
            by_corpus.setdefault(c.corpus, set()).add(c.speaker)
    for corpus in sorted(by_corpus):
        speakers = sorted(s for s in by_corpus[corpus] if s not in side)
        n = len(speakers)
        n_test = round(test_fraction * n) if n >= 3 else 0
        n_dev = max(1, round(dev_fraction * n)) if n - n_test >= 3 and dev_fraction > 0 else 0
        for i, s in enumerate(speakers):
            side[s] = "test" if i >= n - n_test else "dev" if i >= n - n_test - n_dev else "train"
    out: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for c in clips:
        out[side.get(c.speaker, "train") if c.speaker else "train"].append(c)
    return out


def _dimensions(row: dict, manifest: Path) -> tuple[float, float, float] | None:
    """Optional valence/arousal/dominance columns (0..1); all three or none."""
    values = [row.get(k) for k in ("valence", "arousal", "dominance")]
    if not any(values):
        return None
    try:
        dims = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ConfigError(f"{manifest}: valence/arousal/dominance must all be numbers in 0..1, got {values} for {row['path']}") from None
    if not all(0.0 <= d <= 1.0 for d in dims):
        raise ConfigError(f"{manifest}: valence/arousal/dominance must be in 0..1, got {dims} for {row['path']}")
    return dims


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


# Expressed-emotion levels: corpora with no categories, only how strongly an emotion is expressed (BAVED: low =
# tired or down, normal = neutral, high = strong positive or negative emotion; RAVDESS says normal / strong).
LEVELS = ("low", "normal", "high")  # level 0, 1, 2
LEVEL_OF = {"low": 0, "normal": 1, "high": 2, "strong": 2}  # manifest `intensity` -> level
# The categories whose arousal anchor is high (NRC VAD arousal >= 0.5): all but neutral and sad.
HIGH_AROUSAL = tuple(e for e in EMOTIONS if VAD_ANCHORS[e][1] >= 0.5)
# The arousal a level is trained toward (`ser train --arousal-corpus`): normal at the neutral anchor, high at the
# mean of the high-arousal categories' anchors, low below neutral (tired, down).
LEVEL_AROUSAL = (0.10, VAD_ANCHORS["neutral"][1], round(sum(VAD_ANCHORS[e][1] for e in HIGH_AROUSAL) / len(HIGH_AROUSAL), 3))


@dataclass(frozen=True)
class LevelClip:
    path: Path
    corpus: str
    speaker: str
    language: str
    level: int  # index into LEVELS
    label: str  # the manifest's label, as written


def read_levels(folder: str | Path) -> tuple[list[LevelClip], dict[str, int]]:
    """Clips of `folder/manifest.csv` whose `intensity` names a level; (clips, {unknown intensity: count})."""
    folder = Path(folder)
    rows = read_manifest(folder, ("path", "intensity"))
    clips, skipped = [], {}
    for row in rows:
        level = LEVEL_OF.get((row.get("intensity") or "").strip().lower())
        if level is None:
            key = (row.get("intensity") or "").strip() or "(empty)"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        clips.append(LevelClip(folder / row["path"], row.get("corpus") or folder.name, (row.get("speaker") or "").strip(),
                               row.get("language") or "", level, row.get("label") or ""))
    return clips, skipped
