"""Generated conversations for evaluating speaker attribution: held-out speakers taking turns.

Two or three speakers from the emotion corpora (RAVDESS actors, Emo-DB speakers) alternate turns of one to
three clips each, all clips of a turn in one emotion, with pauses between turns (some shorter than the
VAD's pause bridge, so a speech region can hold a speaker change) and never overlapping. The ground truth is
exact: each turn's span, speaker and emotion. Seeded: the same seed and clips give the same conversation.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ser_tool.audio import SAMPLE_RATE, load_audio
from ser_tool.data import Clip, read_corpus, split_by_speaker

CORPORA = ("ravdess", "emodb_trimmed2s")
TURN_PAUSE = (0.3, 1.2)  # seconds between turns (the VAD bridges pauses under 0.6 s)
CLIP_PAUSE = (0.05, 0.2)  # seconds between the clips of one turn
CLIPS_PER_TURN = (1, 3)
TURNS = (6, 10)
_TRIM_DB = 35.0  # clip edges quieter than the clip's loudest 20-ms frame by this much are cut


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str  # corpus speaker id, e.g. ravdess_21
    emotion: str


@dataclass(frozen=True)
class Conversation:
    samples: np.ndarray  # 16 kHz mono float32
    turns: list[Turn]

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def speakers(self) -> list[str]:
        """Speaker ids in order of first speech (speaker 1, speaker 2, ...)."""
        return list(dict.fromkeys(t.speaker for t in self.turns))


def speaker_pools(data_root: str | Path, split: str = "test", corpora: Sequence[str] = CORPORA) -> dict[str, list[Clip]]:
    """Clips by speaker for one side of the standard speaker-independent split (test: RAVDESS actors 19-24,
    Emo-DB speakers 15-16). RAVDESS 'calm' clips are left out (not one of the 7 emotions)."""
    clips = []
    for name in corpora:
        folder = Path(data_root) / name
        if (folder / "manifest.csv").is_file():
            clips.extend(read_corpus(folder).clips)
    chosen = split_by_speaker(clips)[split] if split != "dev+train" else [
        c for side in ("train", "dev") for c in split_by_speaker(clips)[side]]
    pools: dict[str, list[Clip]] = {}
    for c in sorted(chosen, key=lambda c: str(c.path)):
        if c.speaker:
            pools.setdefault(c.speaker, []).append(c)
    return pools


def trim(samples: np.ndarray) -> np.ndarray:
    """The clip without its quiet lead-in and tail (RAVDESS clips carry about a second of each)."""
    frame = SAMPLE_RATE // 50
    n = len(samples) // frame
    if n == 0:
        return samples
    rms = np.sqrt(np.mean(samples[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    loud = np.flatnonzero(db > db.max() - _TRIM_DB)
    return samples[loud[0] * frame: (loud[-1] + 1) * frame]


def generate(pools: dict[str, list[Clip]], n_speakers: int, seed: int, turns: tuple[int, int] = TURNS,
             cache: dict[Path, np.ndarray] | None = None) -> Conversation:
    """One conversation of `n_speakers` speakers drawn from `pools`, fully determined by `seed`."""
    rng = random.Random(seed)
    # mixing corpora would make speakers trivially separable by channel and language: one corpus per conversation
    by_corpus: dict[str, list[str]] = {}
    for spk, clips in sorted(pools.items()):
        by_corpus.setdefault(clips[0].corpus, []).append(spk)
    usable = sorted(c for c, s in by_corpus.items() if len(s) >= n_speakers)
    if not usable:
        raise ValueError(f"no corpus in the pools has {n_speakers} speakers")
    speakers = rng.sample(by_corpus[rng.choice(usable)], n_speakers)
    cache = {} if cache is None else cache
    pieces: list[np.ndarray] = []
    truth: list[Turn] = []
    t = 0.0
    prev = None
    for i in range(rng.randint(*turns)):
        choices = [s for s in speakers if s != prev]
        # every speaker speaks early: the first turns go round the speakers once
        spk = speakers[i] if i < n_speakers else rng.choice(choices)
        prev = spk
        emotion = rng.choice(sorted({c.label for c in pools[spk]}))
        clips = [c for c in pools[spk] if c.label == emotion]
        chosen = rng.sample(clips, min(len(clips), rng.randint(*CLIPS_PER_TURN)))
        if i:
            gap = np.zeros(int(rng.uniform(*TURN_PAUSE) * SAMPLE_RATE), dtype=np.float32)
            pieces.append(gap)
            t += len(gap) / SAMPLE_RATE
        start = t
        for k, clip in enumerate(chosen):
            if clip.path not in cache:
                cache[clip.path] = trim(load_audio(clip.path))
            if k:
                gap = np.zeros(int(rng.uniform(*CLIP_PAUSE) * SAMPLE_RATE), dtype=np.float32)
                pieces.append(gap)
                t += len(gap) / SAMPLE_RATE
            pieces.append(cache[clip.path])
            t += len(cache[clip.path]) / SAMPLE_RATE
        truth.append(Turn(round(start, 3), round(t, 3), spk, emotion))
    lead = np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32)  # a little silence before and after
    samples = np.concatenate([lead, *pieces, lead]).astype(np.float32)
    truth = [Turn(round(x.start + 0.5, 3), round(x.end + 0.5, 3), x.speaker, x.emotion) for x in truth]
    return Conversation(samples, truth)
