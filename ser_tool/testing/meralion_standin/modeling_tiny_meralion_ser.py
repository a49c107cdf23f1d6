"""A tiny stand-in for MERaLiON-SER-v1's remote code (copied into the model folder by
ser_tool.testing.make_tiny_meralion_standin). Random weights.

Same contract as the release: input_features (B, 80, 3000) and attention_mask (B, 3000) in,
{"logits": (B, num_labels), "dims": sigmoid (B, 3)} out, forward under torch.no_grad().
It also reproduces the release's two loading pitfalls:
1. __init__ reads a Whisper config from `config.whisper_name`, a hub id ("openai/whisper-medium")
   unless the loader passes a local directory instead. To stay tiny, only the input geometry
   (mel bins, source positions) is taken from it; widths and depth come from this model's config.
   What it read is kept in `self.reference_whisper` so tests can see which config was used.
2. __init__ turns a torch.logspace into Python ints, which fails when transformers builds the
   model on the meta device.
"""

import math

import torch
from torch import nn
from transformers import PreTrainedModel, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from .configuration_tiny_meralion_ser import TinyMeralionSERConfig


class MultiResolutionPooling(nn.Module):
    def __init__(self, channels, num_resolutions, min_kernel=3, max_kernel=15):
        super().__init__()
        kernel_sizes = [int(k) for k in torch.logspace(math.log10(min_kernel), math.log10(max_kernel), num_resolutions)]
        self.kernel_sizes = [k if k % 2 else k + 1 for k in kernel_sizes]
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, k, padding=k // 2) for k in self.kernel_sizes)
        self.score = nn.Linear(channels, 1)

    def forward(self, hidden, mask):
        pooled = []
        for conv in self.convs:
            h = conv(hidden.transpose(1, 2)).transpose(1, 2)
            scores = self.score(torch.tanh(h)).squeeze(-1).masked_fill(mask <= 0, -1e4)
            weights = torch.softmax(scores, dim=-1).unsqueeze(-1)
            pooled.append((weights * h).sum(dim=1))
        return torch.stack(pooled).mean(dim=0)


class TinyMeralionSERForAudioClassification(PreTrainedModel):
    config_class = TinyMeralionSERConfig
    main_input_name = "input_features"
    base_model_prefix = "ser"

    def __init__(self, config):
        super().__init__(config)
        reference = WhisperConfig.from_pretrained(config.whisper_name)
        self.reference_whisper = {
            "whisper_name": str(config.whisper_name),
            "d_model": reference.d_model,
            "encoder_layers": reference.encoder_layers,
            "num_mel_bins": reference.num_mel_bins,
            "max_source_positions": reference.max_source_positions,
        }
        encoder_config = WhisperConfig(
            num_mel_bins=reference.num_mel_bins,
            max_source_positions=reference.max_source_positions,
            d_model=config.hidden_size,
            encoder_layers=config.num_hidden_layers,
            encoder_attention_heads=config.num_attention_heads,
            encoder_ffn_dim=config.intermediate_size,
            decoder_layers=1,
            decoder_attention_heads=config.num_attention_heads,
            decoder_ffn_dim=config.intermediate_size,
        )
        self.encoder = WhisperEncoder(encoder_config)
        self.pooling = MultiResolutionPooling(config.hidden_size, config.num_resolutions)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.dims_head = nn.Linear(config.hidden_size, 3)
        self.post_init()

    @torch.no_grad()
    def forward(self, input_features, attention_mask=None, **kwargs):
        hidden = self.encoder(input_features).last_hidden_state
        if attention_mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=hidden.dtype, device=hidden.device)
        else:
            # the encoder halves the frame rate (stride-2 convolution)
            mask = attention_mask[:, ::2][:, : hidden.shape[1]].to(hidden.dtype)
        embedding = self.pooling(hidden, mask)
        return {"logits": self.classifier(embedding), "dims": torch.sigmoid(self.dims_head(embedding))}
