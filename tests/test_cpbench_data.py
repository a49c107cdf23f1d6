"""QA-set loading (local JSONL / CSV, the CPQA hub layout through datasets.save_to_disk) and the
CP-style generator's determinism."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from conftest import SHARED_DATA, SR, voice
from cpbench_support import write_qa

from ser_tool import ConfigError

from evals.cli import main
from evals.cpbench.dataset import load_samples
from evals.cpbench.generate import generate, write_jsonl

datasets = pytest.importorskip("datasets")


def hub_dataset(folder, *, drop: str | None = None):
    rows = {
        "context": [{"text": "Kids are talking by the door", "audio": {"array": voice(1.0, f0=f0).tolist(), "sampling_rate": SR}}
                    for f0 in (120.0, 220.0)],
        "instruction": [{"text": "What is the speaker's attitude?"}, {"text": "What is said?"}],
        "answer": [{"text": "Annoyed."}, {"text": "Kids are talking by the door."}],
        "other_attributes": [{"question_type": "contextual paralinguistic", "emotion": "angry", "id": "q1"},
                             {"question_type": "content", "emotion": "neutral", "id": "q2"}],
    }
    if drop:
        rows.pop(drop)
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder))
    return folder


def test_hub_layout_loads(tmp_path):
    samples = load_samples(hub_dataset(tmp_path / "cpqa"))
    assert [s.id for s in samples] == ["q1", "q2"]
    assert samples[0].question_type == "contextual_paralinguistic" and samples[1].question_type == "content"
    assert samples[0].oracle_emotion == "angry" and samples[0].transcript == "Kids are talking by the door"
    assert samples[0].reference == "Annoyed." and samples[0].waveform.dtype == np.float32
    audio, rate = samples[0].audio_input()  # the waveform itself goes to the agent: no WAV round trip
    assert audio is samples[0].waveform and rate == 16000


def hub_repository(folder):
    """The hub layout as a dataset repository stores it (what `hf download --repo-type dataset` gives): parquet."""
    saved = hub_dataset(folder.parent / (folder.name + "-saved"))
    (folder / "data").mkdir(parents=True)
    datasets.load_from_disk(str(saved)).to_parquet(str(folder / "data" / "test-00000-of-00001.parquet"))
    return folder


def test_a_downloaded_hub_repository_loads(tmp_path):
    samples = load_samples(hub_repository(tmp_path / "repo"))
    assert [s.id for s in samples] == ["q1", "q2"] and samples[0].waveform.dtype == np.float32


def test_a_hub_id_is_fetched_from_the_hub(tmp_path, monkeypatch):
    import huggingface_hub

    repo = hub_repository(tmp_path / "repo")
    asked = []
    monkeypatch.setattr("ser_tool.hub.hub_offline_reason", lambda offline: None)  # the hub answers
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo_id, **kw: asked.append((repo_id, kw)) or str(repo))
    samples = load_samples("AudioLLMs/cp-style-qa")
    assert [s.id for s in samples] == ["q1", "q2"]
    assert asked == [("AudioLLMs/cp-style-qa", {"repo_type": "dataset", "local_files_only": False})]


def test_a_hub_id_without_a_hub_says_how_to_get_it(tmp_path, monkeypatch):
    import time

    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr("ser_tool.hub.hub_offline_reason", lambda offline: "the Hugging Face hub cannot be reached")
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_samples("AudioLLMs/cp-style-qa")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "cannot be reached" in message and "hf download --repo-type dataset AudioLLMs/cp-style-qa" in message
    with pytest.raises(ConfigError, match="no such file or folder"):  # not an id: a path that is not there
        load_samples("runs/missing-set")
    with pytest.raises(ConfigError, match="no such file"):
        load_samples("runs/missing/qa.jsonl")


def test_hub_layout_missing_column_is_named(tmp_path):
    with pytest.raises(ConfigError, match="lacks the column.*answer"):
        load_samples(hub_dataset(tmp_path / "bad", drop="answer"))


def test_local_csv_and_jsonl(tmp_path):
    jsonl = write_qa(tmp_path / "qa", n=1)
    samples = load_samples(jsonl)
    assert len(samples) == 3 and samples[0].audio == str(tmp_path / "qa" / "clip.wav")
    assert samples[0].correct_choice == "A"
    path = tmp_path / "qa" / "qa.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["audio", "question", "reference", "question_type", "choices", "correct_choice"])
        w.writeheader()
        w.writerow({"audio": "clip.wav", "question": "q?", "reference": "r", "question_type": "direct",
                    "choices": "happy|sad", "correct_choice": "b"})
    (s,) = load_samples(path)
    assert (s.question_type, s.choices, s.correct_choice, s.id) == ("direct_paralinguistic", ["happy", "sad"], "B", "qa-0")
    path.write_text("audio,question\nclip.wav,q?\n")
    with pytest.raises(ConfigError, match="reference"):
        load_samples(path)


def synthetic_corpus(folder):
    (folder / "audio").mkdir(parents=True)
    rows = []
    for spk in range(1, 9):
        for k, label in enumerate(("neutral", "happy", "sad", "angry")):
            name = f"audio/s{spk}_{k}.wav"
            sf.write(folder / name, voice(0.5), SR)
            rows.append({"path": name, "corpus": "toy", "language": "en", "speaker": f"toy_{spk:02d}", "label": label,
                         "text": ["Kids are talking by the door", "Dogs are sitting by the door"][k % 2]})
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder


def test_generator_is_deterministic_and_uses_test_speakers(tmp_path):
    corpus = synthetic_corpus(tmp_path / "toy")
    a = [s.model_dump() for s in generate([corpus], n_clips=6)]
    b = [s.model_dump() for s in generate([corpus], n_clips=6)]
    assert a == b and len(a) == 18
    assert {s["question_type"] for s in a} == {"content", "direct_paralinguistic", "contextual_paralinguistic"}
    assert {s["attributes"]["speaker"] for s in a} <= {"toy_07", "toy_08"}  # the last 25% of speakers
    for s in a:
        assert s["choices"][ord(s["correct_choice"]) - 65] in s["reference"] or s["question_type"] == "content"
        assert len(s["choices"]) == 4 and len(set(s["choices"])) == 4
    assert [s.model_dump() for s in generate([corpus], n_clips=6, seed=1)] != a
    out = write_jsonl(generate([corpus], n_clips=6), tmp_path / "set" / "cp.jsonl")
    assert [s.model_dump() for s in load_samples(out)] == a


def test_cli_generate(tmp_path, capsys):
    corpus = synthetic_corpus(tmp_path / "toy")
    assert main(["cpbench", "generate", str(corpus), "--out", str(tmp_path / "o"), "--n-clips", "4"]) == 0
    lines = (tmp_path / "o" / "cpstyle.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["audio"].endswith(".wav")
    assert main(["cpbench", "run", str(tmp_path / "o" / "cpstyle.jsonl")]) == 2  # neither --mc nor --judge
    assert "--judge" in capsys.readouterr().err


@pytest.mark.data
def test_generated_ravdess_set_is_reproducible():
    ravdess = SHARED_DATA / "ravdess"
    if not (ravdess / "manifest.csv").is_file():
        pytest.skip("../shared/data/ravdess is absent")
    a, b = generate([ravdess], n_clips=10), generate([ravdess], n_clips=10)
    assert [s.model_dump() for s in a] == [s.model_dump() for s in b]
    assert all(int(s.attributes["speaker"].split("_")[1]) >= 19 for s in a)
