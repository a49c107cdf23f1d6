"""A CP-style QA set (v2) generated reproducibly from corpora in the manifest format (../shared/data).

Acted corpora such as RAVDESS speak emotionally neutral sentences ("Kids are talking by the door") with
every emotion, so a question about the speaker's attitude can only be answered from the voice. Five
question types, each with a reference answer and a multiple-choice form (one correct option among
`n_choices`):
- content: what was said (answerable from the words);
- direct_paralinguistic: which emotion the voice expresses;
- contextual_paralinguistic: the speaker's attitude towards what they said (the words and the voice);
- situational: a short situation is given ("A customer speaks right after their delivery arrived"), the
  words are neutral, the question asks the speaker's attitude towards the situation (only the voice tells);
- temporal: 2-4 clips of one speaker joined with pauses, the emotion changing from part to part: "in
  which part does the voice sound angry", "how does the mood change". The per-stretch labels (start, end,
  emotion) go to the 'oracle' mode; the words come as timed segments, one per part.

The set is split by speaker into dev (tune prompt presentation here) and test (report here), from the
held-out speakers of ser_tool.data's split (RAVDESS: actors 17-18 dev, 19-24 test), so the shipped SER
model never trained on any of them. Single clips are referenced by path, never copied; stitched
recordings are written under the set's folder (`write`), never into the repository.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ser_tool.audio import SAMPLE_RATE, load_audio, write_wav
from ser_tool.data import Clip, read_corpus, split_by_speaker

from evals.cpbench.dataset import LETTERS, Sample

__all__ = ["ATTITUDES", "DEFAULT_SEED", "GENERATED_TYPES", "SET_SPLITS", "SITUATIONS", "GeneratedSet", "generate",
           "write_jsonl"]

DEFAULT_SEED = 20251
SET_SPLITS = ("dev", "test")
GENERATED_TYPES = ("content", "direct_paralinguistic", "contextual_paralinguistic", "situational", "temporal")
# Silence between joined clips: long enough that the segmenter keeps the parts apart even for clips
# without silent margins (it bridges pauses < 0.6 s, pads 0.15 s and snaps to a 0.5-s grid).
PAUSE_S = (1.5, 2.0)
ORDINALS = ("first", "second", "third", "fourth")
# How a speaker who says a neutral sentence with this emotion relates to what they say.
ATTITUDES = {
    "neutral": "matter-of-fact and indifferent: they simply state it without feeling either way",
    "happy": "pleased and delighted about it",
    "sad": "saddened and downcast about it",
    "angry": "annoyed and irritated about it",
    "fearful": "worried and afraid about it",
    "disgusted": "repelled and disgusted by it",
    "surprised": "astonished by it, as if they did not expect it",
}
# Situations for the situational questions: (who speaks when, what it is about). Each is used with every
# emotion across the set, so the situation alone does not give the answer away.
SITUATIONS = (
    ("A customer speaks right after their delivery arrived.", "the delivery"),
    ("A colleague speaks just after hearing about the new office plan.", "the new office plan"),
    ("A parent speaks after reading their child's school report.", "the school report"),
    ("A tenant speaks after the landlord announced a visit for tomorrow.", "the landlord's visit"),
    ("A traveller speaks after the gate for their flight was changed.", "the gate change"),
    ("A student speaks right after the exam results were posted.", "the exam results"),
    ("A neighbour speaks after seeing the new building next door.", "the new building"),
    ("A patient speaks after the doctor called about their test results.", "the doctor's call"),
)
# The speaker's attitude towards the situation's topic, per expressed emotion.
SITUATION_ATTITUDES = {
    "neutral": "indifferent to {topic}: it is routine to them",
    "happy": "pleased and delighted about {topic}",
    "sad": "disappointed and saddened by {topic}",
    "angry": "annoyed and irritated by {topic}",
    "fearful": "worried and anxious about {topic}",
    "disgusted": "repelled and disgusted by {topic}",
    "surprised": "astonished by {topic}: they did not expect it",
}
# Extra content options for corpora with few distinct sentences (neutral, same length and style).
FILLER_SENTENCES = (
    "Kids are sitting by the window", "Dogs are talking by the fence", "The chair is next to the table",
    "Cars are parked by the house", "Birds are singing in the garden", "The keys are on the shelf",
)


@dataclass
class GeneratedSet:
    """The generated questions per split ('dev', 'test'); stitched recordings are held as waveforms until
    `write` puts them under the set's folder."""

    samples: dict[str, list[Sample]]
    seed: int
    corpora: list[str]
    speakers: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        return {split: {t: sum(s.question_type == t for s in items) for t in GENERATED_TYPES}
                for split, items in self.samples.items()}

    def write(self, out: str | Path) -> dict[str, Path]:
        """OUT/dev.jsonl, OUT/test.jsonl, OUT/audio/*.wav (the stitched recordings, referenced relative to
        the JSONL files) and OUT/set.json (seed, corpora, speakers and counts per split)."""
        out = Path(out)
        paths: dict[str, Path] = {}
        written: set[str] = set()
        for split, items in self.samples.items():
            rows = []
            for s in items:
                if s.audio is None and s.waveform is not None:  # a stitched recording: written once, referenced relatively
                    rel = f"audio/{s.attributes['recording']}.wav"
                    if rel not in written:
                        write_wav(out / rel, s.waveform)
                        written.add(rel)
                    s = s.model_copy(update={"audio": rel})
                rows.append(s)
            paths[split] = write_jsonl(rows, out / f"{split}.jsonl")
        meta = {"kind": "cpbench-set", "version": 2, "seed": self.seed, "corpora": self.corpora,
                "speakers": self.speakers, "questions": self.counts()}
        paths["meta"] = out / "set.json"
        paths["meta"].write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        return paths


def generate(corpus_dirs: Sequence[str | Path], *, n_clips: int = 28, n_situational: int | None = None,
             n_stitched: int = 16, dev_ratio: float = 0.5, seed: int = DEFAULT_SEED, n_choices: int = 4) -> GeneratedSet:
    """The v2 set: per split, `n_clips` single clips (content, direct and contextual questions each),
    `n_situational` other clips (one situational question each; default n_clips; clips of the first kind
    when the split has too few) and `n_stitched` stitched recordings (two temporal questions each),
    balanced over emotions; dev gets `dev_ratio` times as many. A split with fewer clips than asked for
    gets fewer questions (`GeneratedSet.counts` says how many). Same corpora and seed -> the same set."""
    if not 2 <= n_choices <= 4:
        raise ValueError(f"n_choices must be 2..4 (the temporal questions have at most 4 parts), got {n_choices}")
    if min(n_clips, n_stitched) < 0 or (n_situational is not None and n_situational < 0) or not 0 <= dev_ratio <= 4:
        raise ValueError("the counts must be >= 0 and dev_ratio in 0..4")
    clips, texts = [], {}
    for folder in corpus_dirs:
        clips += read_corpus(folder).clips
        texts.update(_manifest_texts(folder))
    _text = lambda clip: texts.get(str(clip.path), "")  # noqa: E731
    splits = split_by_speaker(clips)
    sentences = sorted({_text(c) for c in clips if _text(c)} | set(FILLER_SENTENCES))
    rng = np.random.default_rng(seed)
    samples: dict[str, list[Sample]] = {}
    speakers: dict[str, list[str]] = {}
    for split in SET_SPLITS:
        pool = sorted((c for c in splits[split] if c.label in ATTITUDES and _text(c)), key=lambda c: str(c.path))
        scale = dev_ratio if split == "dev" else 1.0
        counts = [round(scale * n) for n in (n_clips, n_clips if n_situational is None else n_situational, n_stitched)]
        if not pool:
            if any(counts):
                raise ValueError(f"no {split}-split clips with a transcript (column text) in the given corpora")
            samples[split], speakers[split] = [], []
            continue
        speakers[split] = sorted({c.speaker for c in pool})
        ctx = _Context(rng=rng, split=split, n_choices=n_choices, text=_text, sentences=sentences)
        chosen = _balanced(pool, counts[0] + counts[1], rng)
        single = chosen[: counts[0]]
        situational = chosen[counts[0]:]
        if len(situational) < counts[1]:  # a small pool: situational questions also about the clips asked about above
            taken = {c.path for c in situational}
            situational += [c for c in _balanced(single, counts[1], rng) if c.path not in taken][: counts[1] - len(situational)]
        items = []
        for clip in single:
            items += _single_clip_questions(clip, ctx)
        for k, clip in enumerate(situational):
            items.append(_situational_question(clip, SITUATIONS[k % len(SITUATIONS)], ctx))
        for k in range(counts[2]):
            items += _temporal_questions(pool, k, ctx)
        samples[split] = items
    return GeneratedSet(samples=samples, seed=seed, corpora=[str(Path(d)) for d in corpus_dirs], speakers=speakers)


@dataclass(frozen=True)
class _Context:
    rng: np.random.Generator
    split: str
    n_choices: int
    text: object  # clip -> its sentence
    sentences: list[str]


def _balanced(pool: list[Clip], n: int, rng: np.random.Generator) -> list[Clip]:
    """n clips (at most the pool), round-robin over emotions, each emotion's clips in a seeded order."""
    by_label: dict[str, list[Clip]] = {}
    for c in pool:
        by_label.setdefault(c.label, []).append(c)
    for label in by_label:
        by_label[label] = [by_label[label][i] for i in rng.permutation(len(by_label[label]))]
    chosen, labels = [], sorted(by_label)
    while len(chosen) < min(n, len(pool)):
        for label in labels:
            if by_label[label] and len(chosen) < n:
                chosen.append(by_label[label].pop())
    return chosen


def _options(correct: str, pool: Sequence[str], n: int, rng: np.random.Generator) -> tuple[list[str], str]:
    others = sorted({p for p in pool if p != correct})
    picked = [others[i] for i in rng.choice(len(others), size=min(n - 1, len(others)), replace=False)]
    return _shuffled(picked + [correct], correct, rng)


def _shuffled(options: list[str], correct: str, rng: np.random.Generator) -> tuple[list[str], str]:
    options = [options[i] for i in rng.permutation(len(options))]
    return options, LETTERS[options.index(correct)]


def _common(clip: Clip, ctx: _Context) -> dict:
    return {"audio": str(Path(clip.path).resolve()), "transcript": ctx.text(clip), "oracle_emotion": clip.label,
            "attributes": {"corpus": clip.corpus, "speaker": clip.speaker, "intensity": clip.intensity, "split": ctx.split}}


def _stem(clip: Clip, ctx: _Context) -> str:
    return f"{ctx.split}-{clip.corpus}-{Path(clip.path).stem}"


def _single_clip_questions(clip: Clip, ctx: _Context) -> list[Sample]:
    text, label, stem, rng, n = ctx.text(clip), clip.label, _stem(clip, ctx), ctx.rng, ctx.n_choices
    emotions = sorted(ATTITUDES)
    common = _common(clip, ctx)
    out = []
    opts, key = _options(text, ctx.sentences, n, rng)
    out.append(Sample(id=f"{stem}-content", question_type="content", question="What sentence does the speaker say?",
                      reference=f'The speaker says: "{text}".', choices=opts, correct_choice=key, **common))
    opts, key = _options(label, emotions, n, rng)
    out.append(Sample(id=f"{stem}-direct", question_type="direct_paralinguistic",
                      question="Which emotion does the speaker's voice express?",
                      reference=f"The voice sounds {label}.", choices=opts, correct_choice=key, **common))
    opts, key = _options(ATTITUDES[label], [ATTITUDES[e] for e in emotions], n, rng)
    out.append(Sample(id=f"{stem}-contextual", question_type="contextual_paralinguistic",
                      question=f'The speaker says "{text}". How does the speaker feel about what they are describing?',
                      reference=f"The speaker is {ATTITUDES[label]}.", choices=opts, correct_choice=key, **common))
    return out


def _situational_question(clip: Clip, situation: tuple[str, str], ctx: _Context) -> Sample:
    scene, topic = situation
    attitude = SITUATION_ATTITUDES[clip.label].format(topic=topic)
    pool = [a.format(topic=topic) for a in SITUATION_ATTITUDES.values()]
    opts, key = _options(attitude, pool, ctx.n_choices, ctx.rng)
    common = _common(clip, ctx)
    common["attributes"]["situation"] = scene
    return Sample(id=f"{_stem(clip, ctx)}-situational", question_type="situational", context=scene,
                  question=f'In this situation the speaker says "{ctx.text(clip)}". What is their attitude towards {topic}?',
                  reference=f"The speaker is {attitude}.", choices=opts, correct_choice=key, **common)


def _temporal_questions(pool: list[Clip], k: int, ctx: _Context) -> list[Sample]:
    """One stitched recording (2-4 clips of one speaker, each part a different emotion) and its two questions."""
    rng = ctx.rng
    speakers = sorted({c.speaker for c in pool})
    speaker = speakers[k % len(speakers)]
    own: dict[str, list[Clip]] = {}
    for c in pool:
        if c.speaker == speaker:
            own.setdefault(c.label, []).append(c)
    emotions = sorted(own)
    if len(emotions) < 2:
        raise ValueError(f"speaker {speaker} has clips of fewer than 2 emotions; cannot stitch a change of emotion")
    n_parts = int(rng.integers(2, min(4, len(emotions)) + 1))
    target = emotions[k % len(emotions)]  # the asked emotion cycles, so each is asked about
    others = [e for e in emotions if e != target]
    parts = [target] + [others[i] for i in rng.choice(len(others), size=n_parts - 1, replace=False)]
    parts = [parts[i] for i in rng.permutation(n_parts)]
    picked = [own[e][int(rng.integers(len(own[e])))] for e in parts]
    pieces, segments, words, offset = [], [], [], 0
    for i, clip in enumerate(picked):
        if i:
            gap = np.zeros(int(round(rng.uniform(*PAUSE_S) * 100)) * SAMPLE_RATE // 100, dtype=np.float32)
            pieces.append(gap)
            offset += len(gap)
        wave = load_audio(str(clip.path))
        start, end = offset / SAMPLE_RATE, (offset + len(wave)) / SAMPLE_RATE
        segments.append({"start": start, "end": end, "emotion": clip.label})
        words.append({"start": start, "end": end, "text": ctx.text(clip)})
        pieces.append(wave)
        offset += len(wave)
    waveform = np.concatenate(pieces)
    recording = f"{ctx.split}-stitch{k:03d}-{speaker}"
    sequence = ", then ".join(parts)
    common = {"waveform": waveform, "transcript": words, "oracle_emotion": sequence, "oracle_segments": segments,
              "attributes": {"corpus": picked[0].corpus, "speaker": speaker, "split": ctx.split, "recording": recording,
                             "parts": n_parts, "clips": [str(Path(c.path).resolve()) for c in picked]}}
    labels = [f"the {ORDINALS[i]} part ({s['start']:.1f}-{s['end']:.1f} s)" for i, s in enumerate(segments)]
    where = labels[parts.index(target)]
    fillers = ["in none of the parts", "in every part"]
    opts, key = _shuffled(labels + fillers[: max(0, ctx.n_choices - n_parts)], where, rng)
    if len(opts) > ctx.n_choices:  # fewer options than parts: keep the right one and random others
        opts, key = _options(where, labels, ctx.n_choices, rng)
    part_q = Sample(id=f"{recording}-part", question_type="temporal",
                    question=f"The recording has {n_parts} parts separated by pauses. In which part does the speaker's voice sound {target}?",
                    reference=f"In {where}: the voice sounds {target} there ({sequence} over the parts).",
                    choices=opts, correct_choice=key, **common)
    change = _change_options(parts, emotions, ctx.n_choices, rng)
    change_q = Sample(id=f"{recording}-change", question_type="temporal",
                      question="How does the mood of the speaker's voice change over the recording?",
                      reference=f"The voice sounds {sequence}.", choices=change[0], correct_choice=change[1],
                      **{**common, "attributes": dict(common["attributes"])})
    return [part_q, change_q]


def _change_options(parts: list[str], emotions: list[str], n: int, rng: np.random.Generator) -> tuple[list[str], str]:
    """The right sequence of emotions and distractors: the reverse order, one part's emotion swapped for
    one that does not occur, and 'the same throughout'."""
    say = lambda seq: "first " + ", then ".join(seq)  # noqa: E731
    correct = say(parts)
    unused = [e for e in emotions if e not in parts]
    candidates = [say(parts[::-1])]
    if unused:
        swapped = list(parts)
        swapped[int(rng.integers(len(parts)))] = unused[int(rng.integers(len(unused)))]
        candidates.append(say(swapped))
    candidates.append(f"it stays {parts[0]} throughout")
    for _ in range(20):  # more distractors when the above run short: other orders of the same emotions
        if len(set(candidates) - {correct}) >= n - 1:
            break
        candidates.append(say([parts[i] for i in rng.permutation(len(parts))]))
    distractors = [c for c in dict.fromkeys(candidates) if c != correct][: n - 1]
    return _shuffled(distractors + [correct], correct, rng)


def write_jsonl(samples: Sequence[Sample], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n"
                            for s in samples), encoding="utf-8")
    return path


def _manifest_texts(folder: str | Path) -> dict[str, str]:
    """path -> transcript from the manifest's `text` column (read_corpus keeps labels only)."""
    import csv

    folder = Path(folder)
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as f:
        return {str(folder / row["path"]): (row.get("text") or "").strip() for row in csv.DictReader(f)}
