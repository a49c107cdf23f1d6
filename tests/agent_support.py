"""Fixed inputs for the agent tests: a hand-made affect report and emotion-aware transcript (no model)."""

from __future__ import annotations

from ser_tool import AffectReport, EmotionTranscript, Transcript, TranscriptSegment
from ser_tool.report import SpokenSegment
from ser_tool.labels import EMOTIONS
from ser_tool.report import Affect, Dimensions, EmotionProbabilities, Segment


def affect(emotion: str, p: float, confidence: float, v: float, a: float, d: float) -> Affect:
    probs = [(1 - p) / 6] * 7
    probs[EMOTIONS.index(emotion)] = p
    return Affect(emotion=emotion, confidence=confidence, probabilities=EmotionProbabilities.from_sequence(probs),
                  dimensions=Dimensions(valence=v, arousal=a, dominance=d))


SAD = affect("sad", 0.64, 0.58, 0.22, 0.31, 0.35)
NEUTRAL_UNSURE = affect("neutral", 0.28, 0.16, 0.45, 0.40, 0.50)
OVERALL = affect("sad", 0.52, 0.44, 0.30, 0.34, 0.40)

REPORT = AffectReport(
    source="voicemail.wav", duration=9.0, speech_duration=8.0, sample_rate=16000, backend="embedded",
    model_id="ser-tool/embedded", emotions_supported=list(EMOTIONS), overall=OVERALL,
    timeline=[Segment(start=0.0, end=5.0, speech=True, affect=SAD), Segment(start=5.0, end=6.0, speech=False),
              Segment(start=6.0, end=9.0, speech=True, affect=NEUTRAL_UNSURE)],
    window=10.0, hop=10.0, description="The speaker's voice mainly expresses sadness (52%).",
    warnings=["Only 8.0 s of speech in a noisy recording; treat the readings with care."],
)

TRANSCRIPT = EmotionTranscript(
    source="voicemail.wav", duration=9.0, text="I waited all day for the delivery. It's fine, whatever.",
    language="en", asr_model="given",
    segments=[SpokenSegment(start=0.0, end=4.8, text="I waited all day for the delivery.", affect=SAD, speech_coverage=1.0),
              SpokenSegment(start=6.1, end=8.7, text="It's fine, whatever.", affect=NEUTRAL_UNSURE, speech_coverage=1.0)],
    report=REPORT,
)
QUESTION = "How does the caller feel about the delivery?"


CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_chat_lm(path):
    """A tiny random causal LM (Llama) with a byte-level tokenizer and a chat template, saved to `path`:
    exercises LocalChatModel's transformers loading and generation without the GGUF file."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    for special in ("<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|im_end|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"])
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


class CountingASR:
    """A stand-in speech recogniser: the same words over the whole recording; keeps the length of every
    waveform it was given (so tests can count ASR passes and check what it heard)."""

    model_id = "counting-asr"

    def __init__(self, text: str = "Kids are talking by the door") -> None:
        self.text = text
        self.heard: list[int] = []

    def transcribe(self, audio) -> Transcript:
        self.heard.append(len(audio))
        end = round(len(audio) / 16000, 3)
        return Transcript(text=self.text, segments=[TranscriptSegment(start=0.0, end=end, text=self.text)],
                          language="en", model_id=self.model_id)
