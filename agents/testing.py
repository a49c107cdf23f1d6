"""Chat models for tests and examples: a scripted one (no network, no key, no weights) and a tiny random
local one (the real transformers loading and generation path, in seconds).

    ScriptedChatModel(replies=["Tense.", "Sure."])               # answers in turn
    ScriptedChatModel(rule=lambda text: "A" if "happy" in text else "B")   # answers by rule
    ScriptedChatModel(rule=..., fail_after=5)                    # the connection drops after 5 calls
    chat_model(f"local:{make_tiny_chat_lm(folder)}")             # a tiny random causal LM from a folder
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

__all__ = ["ScriptedChatModel", "make_tiny_chat_lm"]


class ScriptedChatModel(BaseChatModel):
    """Replies with `replies` in turn (AIMessages, possibly with tool_calls, or plain strings), or, when
    they run out (or none were given), with `rule(text of the last message)`.

    `calls` keeps every list of messages it received (a failed call is kept too, except one refused by
    `fail_after`); `call_kwargs` the keyword arguments of each call (e.g. a bound temperature);
    `bound_tools` the tools given to bind_tools. The lists are shared with copies, so calls made through
    `chat_model(model, temperature=...)` (which copies the model) are counted on the original.
    fail_with: every call raises RuntimeError(fail_with). fail_after: calls after the first N raise
    RuntimeError("connection lost"), as a provider that went away mid-run.
    """

    replies: list[Any] = Field(default_factory=list)
    rule: Callable[[str], str] | None = None
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    call_kwargs: list[dict] = Field(default_factory=list)
    bound_tools: list[Any] = Field(default_factory=list)
    temperature: float | None = None
    fail_with: str | None = None
    fail_after: int | None = None

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        if self.fail_after is not None and self.n_calls >= self.fail_after:
            raise RuntimeError("connection lost")
        self.calls.append(list(messages))
        self.call_kwargs.append(dict(kwargs))
        if self.fail_with:
            raise RuntimeError(self.fail_with)
        if self.replies:
            reply = self.replies.pop(0)
        elif self.rule is not None:
            reply = self.rule(messages[-1].text)
        else:
            raise AssertionError("the scripted model ran out of replies (give more replies, or a rule)")
        message = reply if isinstance(reply, AIMessage) else AIMessage(content=str(reply))
        return ChatResult(generations=[ChatGeneration(message=message)])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any):
        self.bound_tools = list(tools)
        return self


_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_chat_lm(path):
    """A tiny random causal LM (Llama) with a byte-level tokenizer and a chat template, saved to `path`:
    exercises LocalChatModel's transformers loading and generation without the GGUF file. Random weights:
    the words are noise; assert structure, never text."""
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
    tokenizer.chat_template = _CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=vocab["<|im_start|>"], eos_token_id=vocab["<|im_end|>"])
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
