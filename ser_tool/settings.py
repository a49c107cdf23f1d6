"""Settings, read once at entry points (CLI, servers) from flags and SER_* environment variables.

Library code never reads the environment: entry points build a Settings and pass its parts down.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ser_tool.errors import ConfigError


class Settings(BaseSettings):
    """Every knob, with its SER_ environment variable (e.g. SER_BACKEND=hf, SER_MODEL=path)."""

    model_config = SettingsConfigDict(env_prefix="SER_", extra="ignore")

    backend: Literal["embedded", "meralion", "hf", "voice"] = Field("embedded", description="Model family.")
    model: str | None = Field(None, description="Hub id or local directory of the model (meralion, hf, embedded).")
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto.")
    offline: bool = Field(False, description="Never contact the Hugging Face hub; use local files and the cache only.")
    label_map: str | None = Field(None, description="Extra model-label=emotion pairs for the hf backend, e.g. 'joy=happy,other='.")
    trust_remote_code: bool = Field(False, description="Allow an hf checkpoint's own Python code to run.")
    batch_size: int = Field(8, ge=1, description="Windows per forward pass.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: 1 for embedded, torch's default otherwise).")
    window: float = Field(10.0, gt=0, description="Analysis window, seconds.")
    hop: float | None = Field(None, gt=0, description="Step between windows, seconds (default: window).")
    vad: Literal["webrtc", "energy"] = Field("webrtc", description="Speech detector.")
    max_duration: float = Field(7200.0, gt=0, description="Longest recording accepted, seconds.")
    max_file_mb: float = Field(1024.0, gt=0, description="Largest file accepted, MiB.")
    asr_model: str | None = Field(None, description="Speech recogniser for transcripts: a Whisper hub id or local directory "
                                                    "(transformers), or a CTranslate2 folder (faster-whisper).")
    language: str | None = Field(None, description="Language of the speech for the recogniser (e.g. 'en'); default: detect.")

    @field_validator("label_map")
    @classmethod
    def _check_label_map(cls, v: str | None) -> str | None:
        if v:
            parse_label_map(v)
        return v

    def label_map_dict(self) -> dict[str, str | None] | None:
        return parse_label_map(self.label_map) if self.label_map else None


def parse_label_map(text: str) -> dict[str, str | None]:
    """'joy=happy, other=' -> {'joy': 'happy', 'other': None} (empty target = drop the label)."""
    out: dict[str, str | None] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in pair:
            raise ConfigError(f"label map entry {pair!r} needs the form MODEL_LABEL=EMOTION (or MODEL_LABEL= to drop it)")
        key, value = (x.strip() for x in pair.split("=", 1))
        out[key] = value or None
    return out
