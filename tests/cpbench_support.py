"""Helpers for the CP-Bench tests: a tiny QA set on synthesised audio (the scripted chat model is
agents.testing.ScriptedChatModel)."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf
from conftest import SR, voice


def write_qa(folder: Path, n: int = 4, n_files: int = 1, keys: str = "A") -> Path:
    """A JSONL QA set: n clips x 3 question types, relative audio paths, choices A-D with 'A' correct
    (or the correct letter cycling through `keys`, the option 'right' moved there).
    The clips' audio: one file clip.wav, or n_files files clip0.wav, clip1.wav, ... used in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    names = ["clip.wav"] if n_files == 1 else [f"clip{k}.wav" for k in range(n_files)]
    for k, name in enumerate(names):
        sf.write(folder / name, voice(1.0, f0=140 + 20 * k), SR)
    types = ("content", "direct_paralinguistic", "contextual_paralinguistic")
    rows = []
    for i in range(n):
        for t in types:
            key = keys[len(rows) % len(keys)]
            choices = ["wrong one", "wrong two", "wrong three"]
            choices.insert("ABCD".index(key), "right")
            rows.append({"id": f"s{i}-{t}", "audio": names[i % len(names)], "question": f"Question {i} about {t}?",
                         "reference": f"ref {i}", "question_type": t, "transcript": "Kids are talking by the door",
                         "oracle_emotion": "happy", "choices": choices, "correct_choice": key})
    path = folder / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
