"""QA-set loading (local JSONL / CSV, the CPQA hub layout through datasets.save_to_disk) and the
CP-style set v2 generator: seeded reproducibility, dev/test speakers disjoint, stitched recordings whose
labelled stretches are exactly the joined clips."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from evals.cli import main
from evals.cpbench.dataset import load_samples
from evals.cpbench.generate import PAUSE_S, SITUATIONS, generate
from ser_tool import ConfigError
from ser_tool import load_audio
from ser_tool.testing import SR, voice
from tests.helpers import SHARED_DATA, write_qa

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


def synthetic_corpus(folder, labels=("neutral", "happy", "sad", "angry")):
    """8 speakers x len(labels) clips, each clip a different pitch (so a stretch of stitched audio can be
    traced back to its clip), the two RAVDESS sentences."""
    (folder / "audio").mkdir(parents=True)
    rows = []
    for spk in range(1, 9):
        for k, label in enumerate(labels):
            name = f"audio/s{spk}_{k}.wav"
            sf.write(folder / name, voice(0.5 + 0.1 * k, f0=100.0 + 7 * k + 3 * spk), SR)
            rows.append({"path": name, "corpus": "toy", "language": "en", "speaker": f"toy_{spk:02d}", "label": label,
                         "text": ["Kids are talking by the door", "Dogs are sitting by the door"][k % 2]})
    with (folder / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return folder


def dumped(made):
    return {split: [s.model_dump() for s in items] for split, items in made.samples.items()}


def test_generator_is_deterministic_and_splits_by_speaker(tmp_path):
    corpus = synthetic_corpus(tmp_path / "toy")
    made = generate([corpus], n_clips=4, n_stitched=2)
    again = generate([corpus], n_clips=4, n_stitched=2)
    assert dumped(made) == dumped(again)
    waves = [s.waveform for s in made.samples["test"] if s.waveform is not None]
    assert waves and all(np.array_equal(a, b) for a, b in zip(waves, [s.waveform for s in again.samples["test"] if s.waveform is not None]))
    assert dumped(generate([corpus], n_clips=4, n_stitched=2, seed=1)) != dumped(made)
    # dev and test: disjoint held-out speakers (ser_tool.data's split: the last 25% test, the 10% before dev)
    speakers = {split: {s.attributes["speaker"] for s in items} for split, items in made.samples.items()}
    assert speakers["test"] <= {"toy_07", "toy_08"} and speakers["dev"] == {"toy_06"}
    assert made.speakers == {"dev": ["toy_06"], "test": ["toy_07", "toy_08"]}
    assert all(s.attributes["split"] == split for split, items in made.samples.items() for s in items)
    assert made.counts()["test"] == {"content": 4, "direct_paralinguistic": 4, "contextual_paralinguistic": 4,
                                     "situational": 4, "temporal": 4}
    assert made.counts()["dev"] == {"content": 2, "direct_paralinguistic": 2, "contextual_paralinguistic": 2,
                                    "situational": 2, "temporal": 2}  # dev_ratio 0.5
    for s in made.samples["test"] + made.samples["dev"]:
        assert len(s.choices) == 4 and len(set(s.choices)) == 4
        right = s.choices[ord(s.correct_choice) - 65]
        if s.question_type == "temporal":
            assert right.split(" (")[0].removeprefix("first ") in s.reference
        elif s.question_type != "content":
            assert right in s.reference
    single = [s for s in made.samples["test"] if s.question_type != "temporal"]
    assert all(s.audio and s.waveform is None and isinstance(s.transcript, str) for s in single)
    situational = [s for s in made.samples["test"] if s.question_type == "situational"]
    assert all(s.context and s.context in {sc for sc, _ in SITUATIONS} for s in situational)
    assert not {s.audio for s in situational} & {s.audio for s in single if s.question_type == "content"}  # other clips
    assert generate([corpus], n_clips=6, n_stitched=0).counts()["test"]["situational"] == 6  # few clips: reused


def test_stitched_recordings_match_their_labels(tmp_path):
    corpus = synthetic_corpus(tmp_path / "toy")
    made = generate([corpus], n_clips=0, n_situational=0, n_stitched=6)
    temporal = made.samples["test"]
    assert len(temporal) == 12 and {s.question_type for s in temporal} == {"temporal"}
    for s in temporal:
        wave, segs = s.waveform, s.oracle_segments
        assert 2 <= len(segs) <= 4 and len({o.emotion for o in segs}) == len(segs)  # each part another emotion
        assert [(w.start, w.end) for w in s.transcript] == [(o.start, o.end) for o in segs]
        assert segs[0].start == 0.0 and segs[-1].end == pytest.approx(len(wave) / SR)
        for o, clip in zip(segs, s.attributes["clips"]):
            piece = wave[round(o.start * SR):round(o.end * SR)]
            assert np.array_equal(piece, load_audio(clip))  # the stretch is exactly that clip
            assert clip.split("/")[-1].startswith("s") and o.emotion in {"neutral", "happy", "sad", "angry"}
        for a, b in zip(segs, segs[1:]):
            assert PAUSE_S[0] - 0.01 <= b.start - a.end <= PAUSE_S[1] + 0.01
            assert not wave[round(a.end * SR):round(b.start * SR)].any()  # the pause is silence
        assert s.oracle_emotion == ", then ".join(o.emotion for o in segs)
        asked = s.question.rsplit("sound ", 1)[-1].rstrip("?") if s.id.endswith("-part") else None
        if asked:
            k = [o.emotion for o in segs].index(asked)
            assert s.choices[ord(s.correct_choice) - 65].startswith(f"the {('first', 'second', 'third', 'fourth')[k]} part")
        else:
            assert s.choices[ord(s.correct_choice) - 65] == "first " + s.oracle_emotion
    # written under the set's folder, referenced relatively; the decoded file is the waveform (16-bit)
    paths = made.write(tmp_path / "set")
    loaded = load_samples(paths["test"])
    assert [s.id for s in loaded] == [s.id for s in temporal]
    for s, orig in zip(loaded, temporal):
        assert s.audio.startswith(str(tmp_path / "set" / "audio")) and s.oracle_segments == orig.oracle_segments
        assert np.abs(load_audio(s.audio) - orig.waveform).max() < 1e-3
    assert len(list((tmp_path / "set" / "audio").glob("*.wav"))) == 6 + 3  # test + dev recordings, one file each
    meta = json.loads(paths["meta"].read_text())
    assert meta["version"] == 2 and meta["questions"]["test"]["temporal"] == 12 and meta["speakers"]["dev"] == ["toy_06"]


def test_cli_generate(tmp_path, capsys):
    corpus = synthetic_corpus(tmp_path / "toy")
    out = tmp_path / "o"
    assert main(["cpbench", "generate", str(corpus), "--out", str(out), "--n-clips", "4", "--n-stitched", "2"]) == 0
    test_lines = (out / "test.jsonl").read_text().splitlines()
    assert len(test_lines) == 4 * 3 + 4 + 2 * 2 and len((out / "dev.jsonl").read_text().splitlines()) == 2 * 3 + 2 + 2
    rows = [json.loads(line) for line in test_lines]
    assert rows[0]["audio"].endswith(".wav") and rows[-1]["audio"].startswith("audio/")
    assert "test: 20 questions" in capsys.readouterr().out
    assert main(["cpbench", "run", str(out / "test.jsonl")]) == 2  # neither --mc nor --judge
    assert "--judge" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["cpbench", "generate", str(corpus), "--out", str(out), "--choices", "5"])
    assert exit_.value.code == 2 and "from 2 to 4" in capsys.readouterr().err


@pytest.mark.data
def test_generated_ravdess_set_is_reproducible(tmp_path):
    ravdess = SHARED_DATA / "ravdess"
    if not (ravdess / "manifest.csv").is_file():
        pytest.skip("../shared/data/ravdess is absent")
    a, b = (generate([ravdess], n_clips=7, n_stitched=3) for _ in range(2))
    assert dumped(a) == dumped(b)
    actor = lambda s: int(s.attributes["speaker"].split("_")[1])  # noqa: E731
    assert all(actor(s) >= 19 for s in a.samples["test"]) and all(actor(s) in (17, 18) for s in a.samples["dev"])
    assert {s.oracle_emotion for s in a.samples["test"] if s.question_type == "direct_paralinguistic"} == {
        "neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised"}  # balanced over emotions
    for s in (s for s in a.samples["test"] if s.question_type == "temporal"):
        assert s.oracle_segments[-1].end == pytest.approx(len(s.waveform) / 16000)
