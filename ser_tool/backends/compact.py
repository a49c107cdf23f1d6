"""CompactSER: the architecture of the embedded model, its config and its safetensors load/save.

waveform (B, N) 16 kHz
  -> log-mel (25 ms / 10 ms, 64 bands 20-7600 Hz), per-utterance mean removed per band
  -> Conv1d stem -> 3 SE-Res2Net blocks (ECAPA-TDNN style, dilations 2/3/4)
  -> multi-layer feature aggregation -> attentive statistics pooling
  -> 128-d shared embedding -> 7 emotion logits  and  3 sigmoid outputs (valence, arousal, dominance)

A scaled-down MERaLiON-style design. Everything, the mel filterbank included, is a torch module and
the filterbank is saved with the weights, so inference needs only torch, numpy and the safetensors
file (no transformers). BatchNorm (not GroupNorm as in MERaLiON) is fine here: inference runs in eval
mode. The embedded backend runs it; `ser train` (ser_tool.train) trains it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ser_tool.labels import EMOTIONS

__all__ = ["CONFIG_FILE", "MIN_SAMPLES", "WEIGHTS_FILE", "CompactSER", "ModelConfig", "load_model", "mel_filterbank", "save_model"]


@dataclass(frozen=True)
class ModelConfig:
    sample_rate: int = 16_000
    n_mels: int = 64
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    f_min: float = 20.0
    f_max: float = 7600.0
    channels: int = 128
    dilations: tuple[int, ...] = (2, 3, 4)
    res2_scale: int = 4
    se_bottleneck: int = 64
    mfa_channels: int = 384
    attention_channels: int = 128
    embedding: int = 128
    labels: tuple[str, ...] = field(default_factory=lambda: EMOTIONS)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("dilations", "labels"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (Auditory Toolbox; librosa's default): linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) * (27.0 / np.log(6.4)), 3.0 * hz / 200.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0)), 200.0 * mel / 3.0)


def mel_filterbank(n_fft: int, n_mels: int, f_min: float, f_max: float, sample_rate: int) -> np.ndarray:
    """Triangular mel filters on Slaney's scale with Slaney area normalisation: (n_mels, n_fft // 2 + 1).

    The same filters as librosa.filters.mel(norm="slaney") and transformers' mel_filter_bank(norm="slaney",
    mel_scale="slaney"), computed in float64 like them, so the float32 result matches the filterbank
    saved in the shipped weights bit for bit.
    """
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"mel band edges must satisfy 0 <= f_min < f_max <= sample_rate / 2, got {f_min}..{f_max} Hz at {sample_rate} Hz")
    edges = _mel_to_hz(np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))  # (n_mels + 2,) Hz
    bins = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)  # FFT bin frequencies, Hz
    slopes = edges[None, :] - bins[:, None]  # (bins, n_mels + 2)
    width = np.diff(edges)
    down = -slopes[:, :-2] / width[:-1]
    up = slopes[:, 2:] / width[1:]
    filters = np.maximum(0.0, np.minimum(down, up))  # (bins, n_mels)
    filters *= (2.0 / (edges[2:] - edges[:-2]))[None, :]  # equal area per band (Slaney)
    return filters.T


class LogMel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_fft, self.win, self.hop = cfg.n_fft, cfg.win_length, cfg.hop_length
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        # Persistent: saved with the weights, so a trained model keeps its own filters whatever builds them here.
        fb = mel_filterbank(cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max, cfg.sample_rate)
        self.register_buffer("filterbank", torch.tensor(fb, dtype=torch.float32))  # (n_mels, n_fft//2+1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, n_mels, T)
        spec = torch.stft(wave, self.n_fft, self.hop, self.win, self.window, center=True, return_complex=True)
        mel = torch.log(self.filterbank @ spec.abs().pow(2) + 1e-6)
        return mel - mel.mean(dim=-1, keepdim=True)  # removes the channel / microphone colouring


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, bottleneck: int):
        super().__init__()
        self.down, self.up = nn.Conv1d(channels, bottleneck, 1), nn.Conv1d(bottleneck, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.up(F.relu(self.down(x.mean(dim=-1, keepdim=True)))))


def _conv_bn(c_in: int, c_out: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2),
                         nn.ReLU(), nn.BatchNorm1d(c_out))


class SERes2Block(nn.Module):
    """1x1 conv -> Res2Net multi-scale dilated convs -> 1x1 conv -> squeeze-excitation, with a residual."""

    def __init__(self, channels: int, dilation: int, scale: int, se_bottleneck: int):
        super().__init__()
        self.scale = scale
        width = channels // scale
        self.pre = _conv_bn(channels, channels)
        self.branches = nn.ModuleList(_conv_bn(width, width, 3, dilation) for _ in range(scale - 1))
        self.post = _conv_bn(channels, channels)
        self.se = SqueezeExcite(channels, se_bottleneck)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.chunk(self.pre(x), self.scale, dim=1)
        outs, y = [parts[0]], None
        for part, branch in zip(parts[1:], self.branches):
            y = branch(part if y is None else part + y)
            outs.append(y)
        return x + self.se(self.post(torch.cat(outs, dim=1)))


class AttentiveStatsPool(nn.Module):
    """ECAPA's attentive statistics pooling with global context: (B, C, T) -> (B, 2C)."""

    def __init__(self, channels: int, attention: int):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(3 * channels, attention, 1), nn.Tanh(), nn.Conv1d(attention, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[-1]
        mean = x.mean(dim=-1, keepdim=True).expand(-1, -1, t)
        std = x.var(dim=-1, keepdim=True, unbiased=False).clamp(min=1e-5).sqrt().expand(-1, -1, t)
        w = torch.softmax(self.attention(torch.cat([x, mean, std], dim=1)), dim=-1)
        mu = (w * x).sum(dim=-1)
        sigma = ((w * x * x).sum(dim=-1) - mu * mu).clamp(min=1e-5).sqrt()
        return torch.cat([mu, sigma], dim=1)


class CompactSER(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig()
        self.logmel = LogMel(cfg)
        self.stem = _conv_bn(cfg.n_mels, cfg.channels, 5)
        self.blocks = nn.ModuleList(SERes2Block(cfg.channels, d, cfg.res2_scale, cfg.se_bottleneck) for d in cfg.dilations)
        self.mfa = nn.Sequential(nn.Conv1d(cfg.channels * len(cfg.dilations), cfg.mfa_channels, 1), nn.ReLU())
        self.pool = AttentiveStatsPool(cfg.mfa_channels, cfg.attention_channels)
        self.embed = nn.Sequential(nn.BatchNorm1d(2 * cfg.mfa_channels), nn.Linear(2 * cfg.mfa_channels, cfg.embedding),
                                   nn.BatchNorm1d(cfg.embedding))
        self.emotion_head = nn.Linear(cfg.embedding, len(cfg.labels))
        self.dimension_head = nn.Linear(cfg.embedding, 3)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wave (B, N) float32 at 16 kHz -> (emotion logits (B, 7), valence/arousal/dominance (B, 3) in 0..1)."""
        x = self.stem(self.logmel(wave))
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        e = self.embed(self.pool(self.mfa(torch.cat(outs, dim=1))))
        return self.emotion_head(e), torch.sigmoid(self.dimension_head(e))


MIN_SAMPLES = 400  # one STFT window; shorter input is zero-padded

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_model(model: CompactSER, directory, extra_config: dict | None = None) -> None:
    """Write model.safetensors (weights and filterbank) and config.json into `directory`.

    Each file is written beside its place and renamed into it, so an interrupted save (Ctrl-C, a kill) leaves
    the model that was there before, not half of the new one."""
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    from ser_tool.files import replaced_atomically

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = {"architecture": "CompactSER", **model.cfg.to_dict(), **(extra_config or {})}
    with replaced_atomically(directory / WEIGHTS_FILE) as weights, replaced_atomically(directory / CONFIG_FILE) as cfg:
        save_file(state, weights, metadata={"format": "pt", "architecture": "CompactSER"})
        cfg.write_text(json.dumps(config, indent=2) + "\n")


def load_model(directory) -> CompactSER:
    """Build a CompactSER from config.json and load model.safetensors (strictly: every tensor must match)."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    directory = Path(directory)
    config = json.loads((directory / CONFIG_FILE).read_text())
    if config.get("architecture") != "CompactSER":
        raise ValueError(f"{directory / CONFIG_FILE} describes a {config.get('architecture')!r}, not a CompactSER model")
    model = CompactSER(ModelConfig.from_dict(config))
    model.load_state_dict(load_file(directory / WEIGHTS_FILE), strict=True)
    return model.eval()
