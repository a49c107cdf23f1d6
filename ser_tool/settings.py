"""Settings, read once at entry points (CLI, servers) from flags and SER_* environment variables.

Library code never reads the environment: an entry point declares the shared flags with
`add_model_flags(parser)`, builds `Settings.from_args(args)` (flags > SER_* environment > the entry
point's defaults > the defaults below) and passes its parts down: `backend_spec()`, `analysis_options()`.
`ser`, `ser-mcp`, `ser-agent` and `ser-eval` all do this; the server and the agent extend Settings
with their own knobs.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from ser_tool.analyzer import MAX_WINDOWS, AnalysisOptions, BackendSpec
from ser_tool.audio import AudioLimits
from ser_tool.backends import BACKENDS, DEFAULT_BACKEND
from ser_tool.errors import ConfigError, Hint, Wording
from ser_tool.representations.base import PRECISIONS
from ser_tool.segment import MAX_FLOOR_DB, MIN_FLOOR_DB, SegmentationOptions
from ser_tool.speakers import MAX_SPEAKERS, SpeakerCount, parse_speakers

__all__ = ["BACKENDS", "Settings", "add_model_flags", "flag_words", "parse_label_map"]

MiB = 2**20
# Where add_model_flags leaves, in the parsed arguments, the entry point's own defaults and flag names.
_FLAG_INFO = "_ser_settings_flags"

# Bounds on knobs that set how much work (and memory) one call costs. Below half a second a window
# holds too little speech to score, and tiny windows made the plan grow without end; more torch
# threads than a few per core only contend (and tens of thousands crash the OpenMP runtime).
MIN_WINDOW, MAX_WINDOW, MIN_HOP = 0.5, 60.0, 0.25
MAX_THREADS = min(256, 4 * (os.cpu_count() or 64))
MAX_BATCH_SIZE = 256


class Settings(BaseSettings):
    """Every knob, with its SER_ environment variable (e.g. SER_BACKEND=hf, SER_MODEL=path)."""

    model_config = SettingsConfigDict(env_prefix="SER_", extra="ignore")

    backend: Literal[BACKENDS] = Field(DEFAULT_BACKEND, description="Model family.")  # Literal of a tuple: its items
    model: str | None = Field(None, description="Hub id or local directory of the model (meralion, hf, embedded; voice: a `ser train --backbone` folder).")
    device: str = Field("cpu", description="cpu, cuda, cuda:N or auto.")
    offline: bool = Field(False, description="Never contact the Hugging Face hub; use local files and the cache only.")
    label_map: str | None = Field(None, description="Extra model-label=emotion pairs for the hf backend, e.g. 'joy=happy,other='.")
    trust_remote_code: bool = Field(False, description="Allow an hf checkpoint's own Python code to run.")
    batch_size: int = Field(8, description=f"Windows per forward pass, 1..{MAX_BATCH_SIZE}.")
    threads: int | None = Field(None, description=f"torch CPU threads, 1..{MAX_THREADS} (default: 1 for embedded and voice, torch's default otherwise).")
    precision: Literal[PRECISIONS] = Field(
        "auto", description="voice backend: precision of its Whisper encoder's projections (auto: bfloat16 on a CPU "
                            "that multiplies it natively, float32 elsewhere).")
    window: float = Field(10.0, description=f"Analysis window, seconds ({MIN_WINDOW:g}..{MAX_WINDOW:g}).")
    hop: float | None = Field(None, description=f"Step between windows, seconds ({MIN_HOP:g}..window; default: window).")
    max_windows: int = Field(MAX_WINDOWS, description="Most analysis windows one recording may need; a longer plan is refused before the model runs.")
    vad: Literal["webrtc", "energy"] = Field("webrtc", description="Speech detector.")
    vad_floor_db: float | None = Field(
        None, description=f"Speech floor, dBFS ({MIN_FLOOR_DB:g}..{MAX_FLOOR_DB:g}): quieter sound is never speech. "
                          "Default: follow the recording (12 dB above its background, within -96..-50 dBFS).")
    max_duration: float = Field(7200.0, gt=0, description="Longest recording accepted, seconds.")
    max_file_mb: float = Field(1024.0, gt=0, description="Largest file accepted, MiB.")
    asr_model: str | None = Field(None, description="Speech recogniser for transcripts: a Whisper hub id or local directory "
                                                    "(transformers), a CTranslate2 folder (faster-whisper), or 'offline'. "
                                                    "Unset: the offline Whisper-base when the [asr] extra is installed.")
    language: str | None = Field(None, description="Language of the speech for the recogniser (e.g. 'en'); default: detect.")
    speakers: int | Literal["auto"] | None = Field(
        None, description=f"Attribute speech to speakers: their number (1..{MAX_SPEAKERS}) or 'auto' to estimate it; "
                          "unset: no speaker attribution (needs the voice extra when set).")

    @field_validator("window")
    @classmethod
    def _check_window(cls, v: float) -> float:
        if not MIN_WINDOW <= v <= MAX_WINDOW:
            raise _bound_error("window", f"the analysis window must be {MIN_WINDOW:g} to {MAX_WINDOW:g} seconds")
        return v

    @field_validator("hop")
    @classmethod
    def _check_hop(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None:
            return v
        window = info.data.get("window")
        top = window if window is not None else MAX_WINDOW
        if not MIN_HOP <= v <= top:
            raise _bound_error("hop", f"the hop must be {MIN_HOP:g} seconds to the window ({top:g} s)")
        return v

    @field_validator("vad_floor_db")
    @classmethod
    def _check_vad_floor_db(cls, v: float | None) -> float | None:
        if v is not None and not MIN_FLOOR_DB <= v <= MAX_FLOOR_DB:
            raise _bound_error("vad_floor_db", f"the speech floor must be {MIN_FLOOR_DB:g} to {MAX_FLOOR_DB:g} dBFS")
        return v

    @field_validator("speakers", mode="before")
    @classmethod
    def _check_speakers(cls, v: object) -> SpeakerCount | None:
        try:
            return parse_speakers(v)
        except ConfigError as e:  # a validation error, so that it names the flag and the variable
            raise ValueError(str(e)) from None

    @field_validator("threads")
    @classmethod
    def _check_threads(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= MAX_THREADS:
            raise _bound_error("threads", f"threads must be 1 to {MAX_THREADS} on this machine")
        return v

    @field_validator("batch_size")
    @classmethod
    def _check_batch_size(cls, v: int) -> int:
        if not 1 <= v <= MAX_BATCH_SIZE:
            raise _bound_error("batch_size", f"the batch size must be 1 to {MAX_BATCH_SIZE} windows")
        return v

    @field_validator("max_windows")
    @classmethod
    def _check_max_windows(cls, v: int) -> int:
        if v < 1:
            raise _bound_error("max_windows", "max_windows must be at least 1")
        return v

    @field_validator("label_map")
    @classmethod
    def _check_label_map(cls, v: str | None) -> str | None:
        if v:
            try:
                parse_label_map(v)
            except ConfigError as e:  # a validation error, so that it names the setting
                raise ValueError(str(e)) from None
        return v

    def label_map_dict(self) -> dict[str, str | None] | None:
        return parse_label_map(self.label_map) if self.label_map else None

    def backend_spec(self) -> BackendSpec:
        """How to load the configured emotion model (an Analyzer loads it on first use)."""
        return BackendSpec(self.backend, self.model, self.device, self.offline, self.label_map_dict(),
                           self.trust_remote_code, self.threads, self.precision)

    def analysis_options(self) -> AnalysisOptions:
        """Segmentation, limits and batch size for an Analyzer."""
        return AnalysisOptions(
            segmentation=SegmentationOptions(window=self.window, hop=self.hop, vad=self.vad, vad_floor_db=self.vad_floor_db),
            limits=AudioLimits(max_duration=self.max_duration, max_file_bytes=int(self.max_file_mb * MiB)),
            batch_size=self.batch_size,
            max_windows=self.max_windows,
            speakers=self.speakers,
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace | None = None) -> Self:
        """Settings from parsed flags over SER_* environment variables over the defaults.

        A parsed value that is not None sets the field of the same name (the flag's `dest`); the
        defaults an entry point gave `add_model_flags` apply where neither a flag nor the environment
        sets a value. Invalid values raise ConfigError naming the flag and the variable.
        """
        info = getattr(args, _FLAG_INFO, None) or {"defaults": {}, "flags": {}}
        flags = {name: value for name in cls.model_fields if (value := getattr(args, name, None)) is not None}
        try:
            settings = cls(**flags)
            defaults = {k: v for k, v in info["defaults"].items() if k not in settings.model_fields_set}
            return cls(**defaults, **flags) if defaults else settings
        except ValidationError as e:
            problems = "; ".join(_problem(err, info["flags"]) for err in e.errors())
            raise ConfigError(f"invalid settings: {problems}") from None


def _problem(err: Mapping[str, Any], flags: Mapping[str, str]) -> str:
    name = str(err["loc"][0]) if err["loc"] else ""
    what = f"{_flag(name, flags)} / {_variable(name)}" if name else "settings"
    message = err["msg"].removeprefix("Value error, ")
    return f"{what}: {message[:1].lower()}{message[1:]} (got {err['input']!r})" if name else f"{what}: {message}"


# Units a setting's flag and variable take, said next to them in a hint.
_UNITS = {"max_duration": "seconds", "max_file_mb": "MiB", "window": "seconds", "hop": "seconds"}


def flag_words(args: argparse.Namespace | None = None) -> Wording:
    """How a command line words an error's hints: as its flag and SER_* variable, e.g.
    '--vad energy / SER_VAD=energy' or '--max-duration / SER_MAX_DURATION, in seconds'. `args`: the
    parsed arguments, for the flag names this command gave `add_model_flags` (e.g. --ser-model)."""
    flags = (getattr(args, _FLAG_INFO, None) or {}).get("flags", {})

    def words(hint: Hint) -> str | None:
        if hint.setting == "folder":  # a command line takes files; its messages say so already
            return None
        flag, variable = _flag(hint.setting, flags), _variable(hint.setting)
        if hint.value is True:
            return f"{flag} / {variable}=1"
        if hint.value is None:
            unit = _UNITS.get(hint.setting)
            return f"{flag} / {variable}" + (f", in {unit}" if unit else "")
        return f"{flag} {shlex.quote(str(hint.value))} / {variable}={hint.value}"

    return words


def _flag(name: str, flags: Mapping[str, str]) -> str:
    return flags.get(name, "--" + name.replace("_", "-"))


def _variable(name: str) -> str:
    return f"SER_{name.upper()}"


def add_model_flags(parser: argparse.ArgumentParser, *, model_flag: str = "--model", analysis: bool = True,
                    asr: bool = False, speakers: bool = False, defaults: Mapping[str, Any] | None = None,
                    asr_default: str = "the offline Whisper-base when the [asr] extra is installed, else none") -> None:
    """Declare the emotion-model flags on `parser` (every entry point uses this one set), for `Settings.from_args`.

    model_flag: the flag naming the emotion model; "--ser-model" where --model names a chat model.
    analysis: also the segmentation and limit flags (--window, --hop, --vad, --vad-floor-db, --max-duration,
    --max-file-mb, --max-windows).
    asr: also the speech recogniser's (--asr-model, --language); asr_default: what --asr-model's help says this
    entry point uses when no recogniser is named.
    speakers: also --speakers (speaker attribution: a number of speakers or 'auto').
    defaults: this entry point's own defaults for some settings, below the SER_* environment
    (e.g. {"vad": "energy"}); shown in the help.
    """
    defaults = dict(defaults or {})
    unknown = set(defaults) - set(Settings.model_fields)
    if unknown:
        raise ValueError(f"add_model_flags: no setting named {', '.join(sorted(unknown))}")

    def default(name: str) -> Any:
        value = defaults.get(name, Settings.model_fields[name].default)
        return f"{value:g}" if isinstance(value, float) else value

    m = parser.add_argument_group("emotion model")
    m.add_argument("--backend", choices=BACKENDS, help=f"model family (default: {default('backend')})")
    m.add_argument(model_flag, dest="model", metavar="MODEL",
                   help="hub id or local directory of the emotion model (default: the backend's)")
    m.add_argument("--device", help=f"cpu, cuda, cuda:N or auto (default {default('device')})")
    m.add_argument("--batch-size", type=int, help=f"audio windows per forward pass (default {default('batch_size')})")
    m.add_argument("--threads", type=int, help="torch CPU threads (default: 1 for the embedded and voice models, torch's default otherwise)")
    m.add_argument("--precision", choices=PRECISIONS,
                   help=f"voice backend: precision of its Whisper encoder (default {default('precision')}: bfloat16 on a "
                        "CPU that multiplies it natively - faster, probabilities within a few points - float32 elsewhere)")
    m.add_argument("--offline", action="store_true", default=None, help="never contact the Hugging Face hub")
    m.add_argument("--label-map", help="hf backend: extra MODEL_LABEL=EMOTION pairs, comma-separated ('other=' drops a label)")
    m.add_argument("--trust-remote-code", action="store_true", default=None, help="hf backend: allow the checkpoint's own code to run")
    names = {"model": model_flag}
    if analysis:
        s = parser.add_argument_group("segmentation and limits")
        s.add_argument("--window", type=float, help=f"analysis window in seconds (default {default('window')})")
        s.add_argument("--hop", type=float, help="step between windows in seconds (default: = window, no overlap)")
        s.add_argument("--vad", choices=("webrtc", "energy"),
                       help=f"speech detector (default {default('vad')}; energy = everything above the noise floor)")
        s.add_argument("--vad-floor-db", type=float, metavar="DBFS",
                       help="speech floor: quieter sound is never speech (default: follow the recording, 12 dB above "
                            "its background within -96..-50 dBFS; e.g. -90 for very faint speech)")
        s.add_argument("--max-duration", type=float, help=f"longest recording accepted, seconds (default {default('max_duration')})")
        s.add_argument("--max-file-mb", type=float, help=f"largest file accepted, MiB (default {default('max_file_mb')})")
        s.add_argument("--max-windows", type=int, help=f"most analysis windows one recording may need (default {default('max_windows')}); "
                                                       "a longer plan is refused before the model runs")
    if asr:
        r = parser.add_argument_group("speech recognition")
        r.add_argument("--asr-model", help="Whisper checkpoint for the words: hub id or local directory (transformers), "
                                           f"or a CTranslate2 folder (needs faster-whisper), or 'offline'; default: {asr_default}")
        r.add_argument("--language", help="language of the speech, e.g. en (default: the recogniser detects it)")
    if speakers:
        v = parser.add_argument_group("speakers")
        v.add_argument("--speakers", type=_speakers_flag, metavar="N|auto",
                       help="attribute speech to speakers (N voices, or 'auto' to estimate how many; needs the voice "
                            "extra): each speech segment gets its speaker, and the result a per-speaker summary "
                            "(default: no attribution)")
    parser.set_defaults(**{_FLAG_INFO: {"defaults": defaults, "flags": names}})


def _speakers_flag(value: str) -> SpeakerCount | None:
    try:
        return parse_speakers(value)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _bound_error(name: str, text: str) -> PydanticCustomError:
    """A range error; Settings.from_args names the flag and the SER_ variable in front of it."""
    return PydanticCustomError("out_of_bounds", text)


def parse_label_map(text: str) -> dict[str, str | None]:
    """'joy=happy, other=' -> {'joy': 'happy', 'other': None} (empty target = drop the label)."""
    out: dict[str, str | None] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in pair:
            raise ConfigError(f"label map entry {pair!r} needs the form MODEL_LABEL=EMOTION (or MODEL_LABEL= to drop it)")
        key, value = (x.strip() for x in pair.split("=", 1))
        out[key] = value or None
    return out
