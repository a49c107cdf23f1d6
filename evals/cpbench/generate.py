"""A CP-style QA set generated reproducibly from corpora in the manifest format (../shared/data).

Acted corpora such as RAVDESS speak emotionally neutral sentences ("Kids are talking by the door") with
every emotion, so a question about the speaker's attitude towards what they said can only be answered
from the voice. For each chosen clip the generator writes three questions, one per type, each with a
reference answer and a multiple-choice form (one correct option among `n_choices`):
- content: what was said (answerable from the words);
- direct_paralinguistic: which emotion the voice expresses;
- contextual_paralinguistic: the speaker's attitude towards what they said (needs the words and the voice).
Only held-out (test-split) speakers are used, so the shipped SER model never trained on them. Audio is
referenced by path, never copied.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ser_tool.data import read_corpus, split_by_speaker

from evals.cpbench.dataset import LETTERS, Sample

__all__ = ["ATTITUDES", "DEFAULT_SEED", "generate", "write_jsonl"]

DEFAULT_SEED = 20251
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
# Extra content options for corpora with few distinct sentences (neutral, same length and style).
FILLER_SENTENCES = (
    "Kids are sitting by the window", "Dogs are talking by the fence", "The chair is next to the table",
    "Cars are parked by the house", "Birds are singing in the garden", "The keys are on the shelf",
)


def _options(correct: str, pool: Sequence[str], n: int, rng: np.random.Generator) -> tuple[list[str], str]:
    others = sorted({p for p in pool if p != correct})
    picked = [others[i] for i in rng.choice(len(others), size=min(n - 1, len(others)), replace=False)]
    options = picked + [correct]
    order = rng.permutation(len(options))
    options = [options[i] for i in order]
    return options, LETTERS[options.index(correct)]


def generate(corpus_dirs: Sequence[str | Path], *, n_clips: int = 40, seed: int = DEFAULT_SEED,
             n_choices: int = 4) -> list[Sample]:
    """Three samples (one per question type) for each of `n_clips` test-split clips, balanced over emotions."""
    clips, texts = [], {}
    for folder in corpus_dirs:
        clips += read_corpus(folder).clips
        texts.update(_manifest_texts(folder))
    _text = lambda clip: texts.get(str(clip.path), "")  # noqa: E731
    test = sorted((c for c in split_by_speaker(clips)["test"] if c.label in ATTITUDES and _text(c)),
                  key=lambda c: str(c.path))
    if not test:
        raise ValueError("no test-split clips with a transcript (column text) in the given corpora")
    rng = np.random.default_rng(seed)
    by_label: dict[str, list] = {}
    for c in test:
        by_label.setdefault(c.label, []).append(c)
    for label in by_label:  # round-robin over emotions, each list in a seeded order
        by_label[label] = [by_label[label][i] for i in rng.permutation(len(by_label[label]))]
    chosen, labels = [], sorted(by_label)
    while len(chosen) < min(n_clips, len(test)):
        for label in labels:
            if by_label[label] and len(chosen) < n_clips:
                chosen.append(by_label[label].pop())
    sentences = sorted({_text(c) for c in clips if _text(c)} | set(FILLER_SENTENCES))
    emotions = sorted({c.label for c in test})
    samples = []
    for clip in chosen:
        text, label, stem = _text(clip), clip.label, f"{clip.corpus}-{Path(clip.path).stem}"
        common = {"audio": str(Path(clip.path).resolve()), "transcript": text, "oracle_emotion": label,
                  "attributes": {"corpus": clip.corpus, "speaker": clip.speaker, "intensity": clip.intensity}}
        opts, key = _options(text, sentences, n_choices, rng)
        samples.append(Sample(id=f"{stem}-content", question_type="content",
                              question="What sentence does the speaker say?",
                              reference=f'The speaker says: "{text}".', choices=opts, correct_choice=key, **common))
        opts, key = _options(label, emotions, n_choices, rng)
        samples.append(Sample(id=f"{stem}-direct", question_type="direct_paralinguistic",
                              question="Which emotion does the speaker's voice express?",
                              reference=f"The voice sounds {label}.", choices=opts, correct_choice=key, **common))
        opts, key = _options(ATTITUDES[label], [ATTITUDES[e] for e in emotions], n_choices, rng)
        samples.append(Sample(id=f"{stem}-contextual", question_type="contextual_paralinguistic",
                              question=f'The speaker says "{text}". How does the speaker feel about what they are describing?',
                              reference=f"The speaker is {ATTITUDES[label]}.", choices=opts, correct_choice=key, **common))
    return samples


def write_jsonl(samples: Sequence[Sample], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s.model_dump(exclude_none=True), ensure_ascii=False) + "\n" for s in samples),
                    encoding="utf-8")
    return path


def _manifest_texts(folder: str | Path) -> dict[str, str]:
    """path -> transcript from the manifest's `text` column (read_corpus keeps labels only)."""
    import csv

    folder = Path(folder)
    with (folder / "manifest.csv").open(newline="", encoding="utf-8") as f:
        return {str(folder / row["path"]): (row.get("text") or "").strip() for row in csv.DictReader(f)}
