"""The voice head: MERaLiON-SER's downstream network in miniature, over a frozen representation.

Input: a frame sequence (B, T, D) from one or more representations (ser_tool.representations,
25 frames/s), standardised with statistics stored in the model. Network: a 1-D conv stem, three
SE-Res2 blocks (dilations 2/3/4, GroupNorm as MERaLiON uses), multi-layer feature aggregation,
attentive statistics pooling with global context (ECAPA-TDNN), a 256-d shared embedding and two
heads: 7 emotion logits (EMOTIONS order) and 3 sigmoid outputs (valence, arousal, dominance).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ser_tool.labels import EMOTIONS


@dataclass(frozen=True)
class VoiceHeadConfig:
    input_dim: int
    representations: tuple[str, ...] = ("resemblyzer",)
    channels: int = 96
    scale: int = 4
    dilations: tuple[int, ...] = (2, 3, 4)
    attention_dim: int = 64
    embedding_dim: int = 256
    dropout: float = 0.2
    input_stats: bool = True  # also feed the clip's mean+std of the (standardised) input frames to the embedding
    stride: int = 2  # the stem halves the frame rate (25 -> 12.5 frames/s): half the cost, emotion cues are slower than that
    labels: tuple[str, ...] = field(default=EMOTIONS)


def std(x: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """Population standard deviation along `dim`, two-pass (mean, then mean squared deviation): the same values
    as `x.std(dim, unbiased=False)` to float rounding, about 10x faster on the CPU for a head's small tensors
    (torch's own takes ~0.8 ms for 250 frames x 512)."""
    return (x - x.mean(dim=dim, keepdim=True)).square().mean(dim=dim, keepdim=keepdim).sqrt()


class SERes2Block(nn.Module):
    def __init__(self, channels: int, scale: int, dilation: int) -> None:
        super().__init__()
        width = channels // scale
        self.scale = scale
        self.pre = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.ReLU(), nn.GroupNorm(8, channels))
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv1d(width, width, 3, dilation=dilation, padding=dilation), nn.ReLU(), nn.GroupNorm(4, width))
            for _ in range(scale - 1))
        self.post = nn.Sequential(nn.Conv1d(channels, channels, 1), nn.ReLU(), nn.GroupNorm(8, channels))
        self.se = nn.Sequential(nn.Linear(channels, channels // 4), nn.ReLU(), nn.Linear(channels // 4, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre(x)
        chunks = torch.chunk(h, self.scale, dim=1)
        out, y = [chunks[0]], None
        for conv, c in zip(self.convs, chunks[1:]):
            y = conv(c if y is None else c + y)
            out.append(y)
        h = self.post(torch.cat(out, dim=1))
        h = h * self.se(h.mean(dim=2)).unsqueeze(2)
        return x + h


class AttentiveStatsPool(nn.Module):
    def __init__(self, channels: int, attention_dim: int) -> None:
        super().__init__()
        self.attn = nn.Sequential(nn.Conv1d(3 * channels, attention_dim, 1), nn.Tanh(), nn.Conv1d(attention_dim, channels, 1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        t = h.shape[2]
        mean = h.mean(dim=2, keepdim=True).expand(-1, -1, t)
        std_ = std(h, 2, keepdim=True).clamp_min(1e-5).expand(-1, -1, t)
        w = torch.softmax(self.attn(torch.cat([h, mean, std_], dim=1)), dim=2)
        mu = (w * h).sum(dim=2)
        sigma = ((w * h * h).sum(dim=2) - mu * mu).clamp_min(1e-5).sqrt()
        return torch.cat([mu, sigma], dim=1)


class VoiceHead(nn.Module):
    def __init__(self, cfg: VoiceHeadConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.register_buffer("feat_mean", torch.zeros(cfg.input_dim))
        self.register_buffer("feat_std", torch.ones(cfg.input_dim))
        self.register_buffer("temperature", torch.ones(()))
        # -log(class weight) of the weighted cross-entropy it was trained with (0 until training sets it): added to
        # the logits, it turns the balanced-recall scores the weights teach into probabilities under the training mix
        self.register_buffer("prior_shift", torch.zeros(len(cfg.labels)))
        self.stem = nn.Sequential(nn.Dropout(cfg.dropout / 2), nn.Conv1d(cfg.input_dim, c, 5, stride=cfg.stride, padding=2), nn.ReLU(), nn.GroupNorm(8, c))
        self.blocks = nn.ModuleList(SERes2Block(c, cfg.scale, d) for d in cfg.dilations)
        self.mfa = nn.Sequential(nn.Conv1d(c * len(cfg.dilations), c * len(cfg.dilations), 1), nn.ReLU())
        self.pool = AttentiveStatsPool(c * len(cfg.dilations), cfg.attention_dim)
        pooled = 2 * c * len(cfg.dilations) + (2 * cfg.input_dim if cfg.input_stats else 0)
        self.embed = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(pooled, cfg.embedding_dim), nn.ReLU(), nn.Dropout(cfg.dropout))
        self.logits = nn.Linear(cfg.embedding_dim, len(cfg.labels))
        self.dims = nn.Linear(cfg.embedding_dim, 3)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames: (B, T, D) raw representation frames -> (logits (B, 7), dimensions (B, 3) in 0..1).

        The logits are calibrated: the prior shift undoes the class weights of training, then they are divided by
        the temperature fitted on dev (a head saved before either was set: 0 and 1, the logits as trained).
        """
        z = (frames - self.feat_mean) / self.feat_std  # (B, T, D)
        x = z.transpose(1, 2)
        h = self.stem(x)
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        pooled = self.pool(self.mfa(torch.cat(outs, dim=1)))
        if self.cfg.input_stats:  # the statistics a linear probe sees, so the head starts from what LR can do
            pooled = torch.cat([pooled, z.mean(dim=1), std(z, 1)], dim=1)
        e = self.embed(pooled)
        return (self.logits(e) + self.prior_shift) / self.temperature, torch.sigmoid(self.dims(e))


class VoiceHeadEnsemble(nn.Module):
    """Several VoiceHeads of one configuration (trained with different seeds), their probabilities and
    dimensions averaged. Its "logits" are the log of the averaged (calibrated) probabilities, so a softmax
    over them gives the ensemble's probabilities and every caller of a VoiceHead works unchanged."""

    def __init__(self, heads: list[VoiceHead]) -> None:
        super().__init__()
        if not heads or any(h.cfg != heads[0].cfg for h in heads):
            raise ValueError("an ensemble needs one or more heads of the same configuration")
        self.cfg = heads[0].cfg
        self.heads = nn.ModuleList(heads)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [head(frames) for head in self.heads]
        probs = torch.stack([torch.softmax(logits, dim=-1) for logits, _ in outs]).mean(dim=0)
        return torch.log(probs.clamp_min(1e-12)), torch.stack([dims for _, dims in outs]).mean(dim=0)


def save_voice_head(model: VoiceHead | VoiceHeadEnsemble, out_dir: str | Path, extra: dict | None = None) -> None:
    """model.safetensors + config.json in `out_dir`; an ensemble's weights are its heads' under `heads.K.`."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out_dir / "model.safetensors"))
    heads = len(model.heads) if isinstance(model, VoiceHeadEnsemble) else 1
    config = {"model_type": "ser-voice-head", **asdict(model.cfg), "heads": heads, **(extra or {})}
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_voice_head(model_dir: str | Path) -> tuple[VoiceHead | VoiceHeadEnsemble, dict]:
    from safetensors.torch import load_file

    from ser_tool.errors import ModelNotAvailableError

    model_dir = Path(model_dir)
    try:
        config = json.loads((model_dir / "config.json").read_text())
        state = load_file(str(model_dir / "model.safetensors"))
    except (OSError, ValueError) as e:
        raise ModelNotAvailableError(f"{model_dir} is not a voice-head folder (config.json + model.safetensors): {e}") from e
    if config.get("model_type") != "ser-voice-head":
        raise ModelNotAvailableError(f"{model_dir}/config.json is not a voice-head config (model_type {config.get('model_type')!r})")
    known = set(VoiceHeadConfig.__dataclass_fields__)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in known}
    cfg = VoiceHeadConfig(**kwargs)
    heads = int(config.get("heads", 1))
    model = VoiceHead(cfg) if heads == 1 else VoiceHeadEnsemble([VoiceHead(cfg) for _ in range(heads)])
    for key, value in model.state_dict().items():  # a head saved before the prior shift existed keeps its logits as trained
        if key.endswith("prior_shift") and key not in state:
            state[key] = torch.zeros_like(value)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        detail = [line.strip() for line in str(e).splitlines() if line.strip()]  # torch's heading, then the first mismatch
        raise ModelNotAvailableError(f"{model_dir}/model.safetensors does not match its config.json ({heads} head(s)): "
                                     f"{' '.join(detail[:2])}") from e
    return model.eval(), config
