"""Samples and their loaders: the plain local format (JSONL / CSV) and the hub layout of CPQA / CP-Bench
(`datasets.save_to_disk` folders with `context{text, audio{array, sampling_rate}}`, `instruction{text}`,
`answer{text}`, `other_attributes`)."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents import OracleSegment
from ser_tool import SAMPLE_RATE, ConfigError, TranscriptSegment, load_audio

__all__ = ["QUESTION_TYPES", "Sample", "load_samples", "load_local", "load_hub", "normalise_question_type"]

QUESTION_TYPES: tuple[str, ...] = ("content", "contextual_paralinguistic", "direct_paralinguistic")
LETTERS = "ABCDEFGHIJ"
HUB_COLUMNS = ("context", "instruction", "answer")
_TYPE_ALIASES = {
    "content": "content", "content_only": "content", "content-only": "content",
    "contextual_paralinguistic": "contextual_paralinguistic", "contextual": "contextual_paralinguistic",
    "cp": "contextual_paralinguistic", "contextual-paralinguistic": "contextual_paralinguistic",
    "direct_paralinguistic": "direct_paralinguistic", "direct": "direct_paralinguistic",
    "paralinguistic": "direct_paralinguistic", "direct-paralinguistic": "direct_paralinguistic",
}


def normalise_question_type(value: str | None) -> str:
    """One of QUESTION_TYPES for the usual spellings; any other label is kept (lower case); none -> 'unspecified'."""
    if value is None or not str(value).strip():
        return "unspecified"
    key = str(value).strip().lower().replace(" ", "_")
    return _TYPE_ALIASES.get(key, key)


class Sample(BaseModel):
    """One question about one recording."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    id: str = Field(description="Unique sample id.")
    audio: str | None = Field(default=None, description="Path of the audio file (absolute, or relative to the data file).")
    waveform: np.ndarray | None = Field(default=None, exclude=True, description="16 kHz mono float32 samples (hub datasets).")
    question: str = Field(description="The question asked about the recording.")
    reference: str = Field(description="The reference answer.")
    question_type: str = Field(default="unspecified", description=f"One of {', '.join(QUESTION_TYPES)} (or a dataset's own label).")
    transcript: str | list[TranscriptSegment] | None = Field(
        default=None, description="What was said, when known: plain text, or timed segments [{start, end, text}].")
    oracle_emotion: str | None = Field(default=None, description="The annotated emotion, for the 'oracle' affect mode.")
    oracle_segments: list[OracleSegment] | None = Field(
        default=None, description="The annotated emotion per stretch [{start, end, emotion}] (stitched recordings), for 'oracle'.")
    context: str | None = Field(default=None, description="The situation the recording was made in, given with the question.")
    choices: list[str] | None = Field(default=None, description="Options of the multiple-choice form, in letter order A, B, ...")
    correct_choice: str | None = Field(default=None, description="The letter of the correct option.")
    attributes: dict[str, Any] = Field(default_factory=dict, description="Anything else the dataset gives.")

    @field_validator("question_type", mode="before")
    @classmethod
    def _type(cls, v):
        return normalise_question_type(v)

    @model_validator(mode="after")
    def _check(self):
        if self.audio is None and self.waveform is None:
            raise ValueError(f"sample {self.id}: no audio (give an audio path)")
        if self.choices is not None:
            if not 2 <= len(self.choices) <= len(LETTERS):
                raise ValueError(f"sample {self.id}: 2..{len(LETTERS)} choices expected")
            letters = LETTERS[: len(self.choices)]
            if self.correct_choice is None or self.correct_choice.upper() not in letters:
                raise ValueError(f"sample {self.id}: correct_choice must be one of {', '.join(letters)}")
            self.correct_choice = self.correct_choice.upper()
        return self

    @property
    def words(self) -> str | list[TranscriptSegment] | None:
        """The transcript as the agent takes it (text or timed segments); None when unknown or empty."""
        if isinstance(self.transcript, str):
            return self.transcript if self.transcript.strip() else None
        return self.transcript or None

    def audio_input(self) -> tuple[str | np.ndarray, int | None]:
        """What the agent is given, as (audio, sample_rate): the file path (its rate is in the file), or the
        waveform itself with its rate - no re-encoding."""
        if self.audio is not None:
            return self.audio, None
        return self.waveform, SAMPLE_RATE


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def looks_like_hub_id(source: str) -> bool:
    """`owner/name` that is not a path on this machine (no file extension of a QA file, no ./, / or ~)."""
    return bool(_HUB_ID.match(source)) and Path(source).suffix.lower() not in (".jsonl", ".csv", ".json")


def load_samples(source: str | Path) -> list[Sample]:
    """Samples from a JSONL / CSV file, a hub-layout folder (`save_to_disk` output or a downloaded hub
    repository), or a hub dataset id (`owner/name`)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return load_hub(path)
    if path.suffix.lower() in (".jsonl", ".csv", ".json"):
        return load_local(path)
    if not path.exists():
        if looks_like_hub_id(str(source)):
            return load_hub(str(source))
        raise ConfigError(f"{source}: no such file or folder (give a .jsonl / .csv file, a datasets save_to_disk "
                          "folder, or a hub dataset id owner/name)")
    raise ConfigError(f"{source}: unknown format; give a .jsonl or .csv file, or a datasets save_to_disk folder")


def load_local(path: str | Path) -> list[Sample]:
    """The plain format: one sample per JSONL line / CSV row with id, audio, question, reference,
    question_type and optional transcript (text, or timed segments as a JSON list), oracle_emotion,
    oracle_segments (JSON list of {start, end, emotion}), context, choices (JSON list or '|'-separated),
    correct_choice, attributes (JSON object).
    Relative audio paths are read against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    samples = []
    for i, row in enumerate(rows):
        row = {k: v for k, v in row.items() if v not in ("", None)}
        missing = [c for c in ("audio", "question", "reference") if c not in row]
        if missing:
            raise ConfigError(f"{path}: row {i + 1} lacks the column(s) {', '.join(missing)}")
        if isinstance(row.get("choices"), str):
            text = row["choices"]
            row["choices"] = json.loads(text) if text.lstrip().startswith("[") else text.split("|")
        for key in ("transcript", "oracle_segments", "attributes"):  # JSON in a CSV cell
            if isinstance(row.get(key), str) and row[key].lstrip()[:1] in ("[", "{"):
                try:
                    row[key] = json.loads(row[key])
                except ValueError:
                    if key != "transcript":
                        raise ConfigError(f"{path}: row {i + 1}: {key} is not valid JSON") from None
        audio = Path(row["audio"]).expanduser()
        row["audio"] = str(audio if audio.is_absolute() else (path.parent / audio))
        row.setdefault("id", f"{path.stem}-{i}")
        try:
            samples.append(Sample.model_validate(row))
        except ValueError as e:
            raise ConfigError(f"{path}: row {i + 1}: {e}") from e
    return samples


def load_hub(source: str | Path) -> list[Sample]:
    """A CPQA / CP-Bench hub-layout dataset: a `save_to_disk` folder (Dataset or DatasetDict), or a hub id
    (downloaded with huggingface_hub.snapshot_download when the hub is reachable). Of a DatasetDict, the
    'test' split when there is one, else the first."""
    try:
        import datasets
    except ImportError as e:
        raise ConfigError("hub-layout datasets need the `datasets` package of the eval extra: pip install -e \".[eval]\" in "
                          "the ser-tool source folder") from e
    path = Path(source).expanduser()
    if not path.exists():
        path = download_hub_dataset(str(source))
    saved = (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()
    try:
        # a save_to_disk folder, or a repository as the hub stores it (parquet/arrow/json data files)
        ds = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"{path}: not a datasets save_to_disk folder or a dataset repository "
                          f"({type(e).__name__}: {_first_line(e)})") from e
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["test" if "test" in ds else next(iter(ds))]
    check_hub_schema(ds.column_names, dict(ds.features), str(path))
    if isinstance(ds.features["context"]["audio"], datasets.Audio):
        # decode the stored file bytes with ser-tool's decoder, not datasets' optional one
        features = ds.features.copy()
        features["context"]["audio"] = datasets.Audio(decode=False)
        ds = ds.cast(features)
    samples = []
    for i, row in enumerate(ds):
        attrs = row.get("other_attributes") or {}
        if not isinstance(attrs, dict):
            attrs = {"other_attributes": attrs}
        audio = row["context"]["audio"]
        if audio.get("array") is not None:
            wave_ = load_audio(np.asarray(audio["array"], dtype=np.float32), sample_rate=int(audio["sampling_rate"]))
        else:
            wave_ = load_audio(audio["bytes"] if audio.get("bytes") else audio["path"])
        qtype = next((attrs[k] for k in ("question_type", "type", "category", "task") if attrs.get(k)), None)
        emotion = next((attrs[k] for k in ("emotion", "oracle_emotion", "label") if attrs.get(k)), None)
        samples.append(Sample(
            id=str(attrs.get("id") or f"{path.name}-{i}"), waveform=wave_,
            question=row["instruction"]["text"], reference=row["answer"]["text"], question_type=qtype,
            transcript=(row["context"].get("text") or None), oracle_emotion=emotion,
            attributes={k: v for k, v in attrs.items() if isinstance(v, str | int | float | bool)},
        ))
    return samples


def download_hub_dataset(repo_id: str) -> Path:
    """The local folder of hub dataset `repo_id`: downloaded (or updated) when the hub can be reached, else the
    cached copy; without one, a ConfigError that says how to get it - in seconds, not after a minute of retries."""
    from huggingface_hub import snapshot_download

    from ser_tool.hub import hub_offline_reason

    reason = hub_offline_reason(False)
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", local_files_only=reason is not None))
    except Exception as e:  # noqa: BLE001 - offline, unknown id, auth
        if reason is not None:
            raise ConfigError(
                f"{repo_id}: no such file or folder here, and as a hub dataset id it is not in the local Hugging Face "
                f"cache while {reason}. Download it where the hub can be reached (`hf download --repo-type dataset "
                f"{repo_id}`), or pass a local copy: a datasets save_to_disk folder or the downloaded repository folder") from e
        raise ConfigError(
            f"{repo_id}: no such file or folder here, and the hub dataset of that id cannot be downloaded "
            f"({type(e).__name__}: {_first_line(e)}). Check the id; for a gated dataset accept its terms on "
            f"https://huggingface.co/datasets/{repo_id} and set HF_TOKEN") from e


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else repr(error)


def check_hub_schema(columns: Sequence[str], features: dict, where: str) -> None:
    """Fail with a message naming what the hub layout lacks."""
    missing = [c for c in HUB_COLUMNS if c not in columns]
    for parent, child in (("context", "audio"), ("instruction", "text"), ("answer", "text")):
        if parent in columns and child not in features.get(parent, {}):
            missing.append(f"{parent}.{child}")
    if "context" in columns and "audio" in features.get("context", {}):
        sub = features["context"]["audio"]
        if not (hasattr(sub, "sampling_rate") or (isinstance(sub, dict) and {"array", "sampling_rate"} <= set(sub))):
            missing.append("context.audio{array, sampling_rate}")
    if missing:
        raise ConfigError(
            f"{where}: the dataset lacks the column(s) {', '.join(missing)}; the hub layout is "
            "context{text, audio{array, sampling_rate}}, instruction{text}, answer{text}, other_attributes "
            f"(found columns: {', '.join(columns)})")
