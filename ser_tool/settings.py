"""Settings, read once at entry points (CLI, servers) from flags and SER_* environment variables.

Library code never reads the environment: entry points build a Settings and pass its parts down.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ser_tool.analyzer import MAX_WINDOWS
from ser_tool.errors import ConfigError
from ser_tool.segment import MAX_FLOOR_DB, MIN_FLOOR_DB

# Bounds on knobs that set how much work (and memory) one call costs. Below half a second a window
# holds too little speech to score, and tiny windows made the plan grow without end; more torch
# threads than a few per core only contend (and tens of thousands crash the OpenMP runtime).
MIN_WINDOW, MAX_WINDOW, MIN_HOP = 0.5, 60.0, 0.25
MAX_THREADS = min(256, 4 * (os.cpu_count() or 64))
MAX_BATCH_SIZE = 256


class Settings(BaseSettings):
    """Every knob, with its SER_ environment variable (e.g. SER_BACKEND=hf, SER_MODEL=path)."""

    model_config = SettingsConfigDict(env_prefix="SER_", extra="ignore")

    backend: Literal["embedded", "meralion", "hf"] = Field("embedded", description="Model family.")
    model: str | None = Field(None, description="Hub id or local directory of the model (meralion, hf, embedded).")
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto.")
    offline: bool = Field(False, description="Never contact the Hugging Face hub; use local files and the cache only.")
    label_map: str | None = Field(None, description="Extra model-label=emotion pairs for the hf backend, e.g. 'joy=happy,other='.")
    trust_remote_code: bool = Field(False, description="Allow an hf checkpoint's own Python code to run.")
    batch_size: int = Field(8, description=f"Windows per forward pass, 1..{MAX_BATCH_SIZE}.")
    threads: int | None = Field(None, description=f"torch CPU threads, 1..{MAX_THREADS} (default: 1 for embedded, torch's default otherwise).")
    window: float = Field(10.0, description=f"Analysis window, seconds ({MIN_WINDOW:g}..{MAX_WINDOW:g}).")
    hop: float | None = Field(None, description=f"Step between windows, seconds ({MIN_HOP:g}..window; default: window).")
    max_windows: int = Field(MAX_WINDOWS, description="Most analysis windows one recording may need; a longer plan is refused before the model runs.")
    vad: Literal["webrtc", "energy"] = Field("webrtc", description="Speech detector.")
    vad_floor_db: float | None = Field(
        None, description=f"Speech floor, dBFS ({MIN_FLOOR_DB:g}..{MAX_FLOOR_DB:g}): quieter sound is never speech. "
                          "Default: follow the recording (12 dB above its background, within -80..-50 dBFS).")
    max_duration: float = Field(7200.0, gt=0, description="Longest recording accepted, seconds.")
    max_file_mb: float = Field(1024.0, gt=0, description="Largest file accepted, MiB.")
    asr_model: str | None = Field(None, description="Speech recogniser for transcripts: a Whisper hub id or local directory "
                                                    "(transformers), or a CTranslate2 folder (faster-whisper).")
    language: str | None = Field(None, description="Language of the speech for the recogniser (e.g. 'en'); default: detect.")

    @field_validator("window")
    @classmethod
    def _check_window(cls, v: float) -> float:
        if not MIN_WINDOW <= v <= MAX_WINDOW:
            raise _bound_error("window", f"the analysis window must be {MIN_WINDOW:g} to {MAX_WINDOW:g} seconds, got {v:g}")
        return v

    @field_validator("hop")
    @classmethod
    def _check_hop(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None:
            return v
        window = info.data.get("window")
        top = window if window is not None else MAX_WINDOW
        if not MIN_HOP <= v <= top:
            raise _bound_error("hop", f"the hop must be {MIN_HOP:g} seconds to the window ({top:g} s), got {v:g}")
        return v

    @field_validator("vad_floor_db")
    @classmethod
    def _check_vad_floor_db(cls, v: float | None) -> float | None:
        if v is not None and not MIN_FLOOR_DB <= v <= MAX_FLOOR_DB:
            raise _bound_error("vad_floor_db", f"the speech floor must be {MIN_FLOOR_DB:g} to {MAX_FLOOR_DB:g} dBFS, got {v:g}")
        return v

    @field_validator("threads")
    @classmethod
    def _check_threads(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= MAX_THREADS:
            raise _bound_error("threads", f"threads must be 1 to {MAX_THREADS} on this machine, got {v}")
        return v

    @field_validator("batch_size")
    @classmethod
    def _check_batch_size(cls, v: int) -> int:
        if not 1 <= v <= MAX_BATCH_SIZE:
            raise _bound_error("batch_size", f"the batch size must be 1 to {MAX_BATCH_SIZE} windows, got {v}")
        return v

    @field_validator("max_windows")
    @classmethod
    def _check_max_windows(cls, v: int) -> int:
        if v < 1:
            raise _bound_error("max_windows", f"max_windows must be at least 1, got {v}")
        return v

    @field_validator("label_map")
    @classmethod
    def _check_label_map(cls, v: str | None) -> str | None:
        if v:
            parse_label_map(v)
        return v

    def label_map_dict(self) -> dict[str, str | None] | None:
        return parse_label_map(self.label_map) if self.label_map else None


def _bound_error(name: str, text: str) -> PydanticCustomError:
    flag, env = "--" + name.replace("_", "-"), "SER_" + name.upper()
    return PydanticCustomError("out_of_bounds", f"{text}; set {flag} or {env} within the range")


def parse_label_map(text: str) -> dict[str, str | None]:
    """'joy=happy, other=' -> {'joy': 'happy', 'other': None} (empty target = drop the label)."""
    out: dict[str, str | None] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in pair:
            raise ConfigError(f"label map entry {pair!r} needs the form MODEL_LABEL=EMOTION (or MODEL_LABEL= to drop it)")
        key, value = (x.strip() for x in pair.split("=", 1))
        out[key] = value or None
    return out
