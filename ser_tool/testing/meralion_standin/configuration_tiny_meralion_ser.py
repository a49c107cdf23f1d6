"""Configuration of a tiny stand-in for MERaLiON-SER-v1 (copied into the model folder by
ser_tool.testing.make_tiny_meralion_standin)."""

from transformers import PretrainedConfig


class TinyMeralionSERConfig(PretrainedConfig):
    model_type = "tiny_meralion_ser"

    def __init__(
        self,
        whisper_name="openai/whisper-medium",
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_resolutions=3,
        **kwargs,
    ):
        self.whisper_name = whisper_name
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.num_resolutions = num_resolutions
        super().__init__(**kwargs)
